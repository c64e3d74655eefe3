"""The base layer on the converged lab: the service account on every host, cleanup by
age, the journal's and logrotate's limits, no time daemon in a container."""

from __future__ import annotations

import pytest

from labhosts import HOSTS, lab_host, run_ok

USER, HOME = "panda", "/var/lib/panda"


@pytest.mark.parametrize("name", HOSTS)
def test_service_account_is_not_root_and_home_is_private(converged, name):
    host = lab_host(name)
    user = host.user(USER)
    assert user.exists and user.uid != 0 and user.gid != 0
    assert user.home == HOME and user.shell.endswith("nologin")
    home = host.file(HOME)
    assert home.is_directory and home.user == USER and home.mode == 0o750
    fstype = run_ok(host, f"findmnt --noheadings --output FSTYPE --target {HOME}").strip()
    assert fstype not in {"nfs", "nfs4", "afs", "cifs", "ceph", "lustre", "gpfs"}


@pytest.mark.parametrize("path,age_days", [("/var/log/panda", 30), ("/var/tmp/panda", 7)])
def test_tmpfiles_removes_only_old_files(converged, path, age_days):
    host = lab_host("srv2")
    old, new = f"{path}/verify-old.log", f"{path}/verify-new.log"
    run_ok(host, f"touch -d '{age_days + 2} days ago' {old} && touch {new}")
    run_ok(host, "systemd-tmpfiles --clean /etc/tmpfiles.d/panda-facility.conf")
    assert not host.file(old).exists, f"{old} older than {age_days}d survived cleanup"
    assert host.file(new).exists, f"{new} was removed although fresh"
    host.run(f"rm -f {new}")


def test_cleanup_timer_runs_hourly_and_the_journal_is_limited(converged):
    host = lab_host("db2")
    assert host.service("systemd-tmpfiles-clean.timer").is_running
    assert "OnUnitActiveSec=1h" in run_ok(host, "systemctl cat systemd-tmpfiles-clean.timer")
    assert host.service("systemd-journald").is_running
    limits = host.file("/etc/systemd/journald.conf.d/panda-facility.conf").content_string
    assert "SystemMaxUse=1G" in limits


def test_logrotate_rotates_a_log_past_its_size(converged):
    host = lab_host("site2")
    log = "/var/log/panda/verify-big.log"
    # A sparse file past the default 100M: logrotate reads its size, not its blocks.
    run_ok(host, f"truncate -s 101M {log} && chown panda:panda {log}")
    run_ok(host, "logrotate --state /tmp/verify-logrotate.state /etc/logrotate.d/panda-facility")
    assert host.file(f"{log}.1").exists, "a 101 MiB log was not rotated at maxsize 100M"
    assert host.file(log).size == 0
    host.run(f"rm -f {log} {log}.*")


def test_no_time_daemon_in_a_container(converged):
    assert not lab_host("lb2").package("chrony").is_installed
