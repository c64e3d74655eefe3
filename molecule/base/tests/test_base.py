"""The base layer: service account, cleanup by age, log limits."""

from __future__ import annotations

import pytest

from conftest import run_ok

USER = "panda"
HOME = "/var/lib/panda"


def test_service_account_is_not_root(host):
    user = host.user(USER)
    assert user.exists
    assert user.uid != 0 and user.gid != 0
    assert user.home == HOME
    assert user.shell.endswith("nologin")


def test_home_is_local_and_private(host):
    home = host.file(HOME)
    assert home.is_directory
    assert home.user == USER and home.mode == 0o750
    fstype = run_ok(host, f"findmnt --noheadings --output FSTYPE --target {HOME}").strip()
    assert fstype not in {"nfs", "nfs4", "afs", "cifs", "ceph", "lustre", "gpfs"}


@pytest.mark.parametrize("path,age_days", [("/var/log/panda", 30), ("/var/tmp/panda", 7)])
def test_tmpfiles_removes_only_old_files(host, path, age_days):
    old, new = f"{path}/verify-old.log", f"{path}/verify-new.log"
    run_ok(host, f"touch -d '{age_days + 2} days ago' {old} && touch {new}")
    run_ok(host, "systemd-tmpfiles --clean /etc/tmpfiles.d/panda-facility.conf")
    assert not host.file(old).exists, f"{old} older than {age_days}d survived cleanup"
    assert host.file(new).exists, f"{new} was removed although fresh"
    host.run(f"rm -f {new}")


def test_cleanup_timer_runs_hourly(host):
    timer = host.service("systemd-tmpfiles-clean.timer")
    assert timer.is_running
    unit = run_ok(host, "systemctl cat systemd-tmpfiles-clean.timer")
    assert "OnUnitActiveSec=1h" in unit


def test_journal_is_limited(host, journal):
    assert host.service("systemd-journald").is_running, journal("systemd-journald")
    limits = host.file("/etc/systemd/journald.conf.d/panda-facility.conf").content_string
    assert "SystemMaxUse=1G" in limits


def test_logrotate_rotates_a_log_past_its_size(host):
    log = "/var/log/panda/verify-big.log"
    run_ok(host, f"head -c 2M /dev/zero > {log} && chown panda:panda {log}")
    run_ok(host, "logrotate --state /tmp/verify-logrotate.state /etc/logrotate.d/panda-facility")
    assert host.file(f"{log}.1").exists, "a 2 MiB log was not rotated at maxsize 1M"
    assert host.file(log).size == 0
    host.run(f"rm -f {log} {log}.*")


def test_no_time_daemon_in_a_container(host):
    assert not host.package("chrony").is_installed
