"""The base layer on the converged lab: the service account on every host, cleanup by
age, the journal's and logrotate's limits, no time daemon in a container; the host
firewall, which accepts each flow the inventory implies and refuses the rest."""

from __future__ import annotations

import pytest

from labhosts import ADDRESSES, HOSTS, SERVER_VIP, lab_host, run_ok

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


def connects(source: str, address: str, port: int) -> bool:
    """Whether a TCP connection from lab host ``source`` to address:port opens."""
    probe = f"timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/{port}'"
    return lab_host(source).run(probe).rc == 0


# Pairs: the same port once from a host the inventory lets in and once from one it
# does not, so that a refusal is the firewall's and not a daemon's that is down.
FLOWS = [
    ("srv1", "db1", 3306, True),  # a server reaches the primary
    ("site1", "db1", 3306, False),  # a grid site does not
    ("srv2", "db2", 3306, True),  # a monitor reaches its replica
    ("submit1", "db2", 3306, False),
    ("mon1", "db2", 5666, True),  # Nagios reaches NRPE
    ("srv1", "db2", 5666, False),  # a server does not
    ("lb2", "srv1", 25443, True),  # a load balancer reaches a backend
    ("site1", "srv1", 25443, False),  # a pilot goes through the VIP only
    ("submit2", "site1", 9618, True),  # any submit host reaches a site's HTCondor
    ("cache1", "site1", 9618, False),
    ("site2", "cache1", 443, True),  # pilots fetch their code (HTTPS)
    ("db1", "cache1", 443, False),
    ("site2", "log1", 8443, True),  # pilots write to the logger
    ("db2", "log1", 8443, False),
]


@pytest.mark.parametrize("source,dest,port,allowed", FLOWS,
                         ids=[f"{s}-{d}:{p}" for s, d, p, _ in FLOWS])  # fmt: skip
def test_firewall_accepts_only_the_inventorys_flows(converged, source, dest, port, allowed):
    assert connects(source, ADDRESSES[dest], port) is allowed


def test_firewall_is_closed_by_default_and_keeps_the_vip_with_one_holder(converged):
    """firewalld runs the facility's closed zone; pilots reach the VIP; VRRP passes
    between the load balancers, so only one holds the VIP."""
    host = lab_host("cache1")
    assert run_ok(host, "firewall-cmd --get-default-zone").strip() == "panda"
    assert run_ok(host, "firewall-cmd --state").strip() == "running"
    assert not connects("site1", ADDRESSES["cache1"], 8081)  # the origin: loopback only
    assert not connects("site1", ADDRESSES["cache1"], 80)  # plain HTTP: loopback only
    assert connects("site1", SERVER_VIP, 25443)
    holders = [lb for lb in ("lb1", "lb2") if SERVER_VIP in run_ok(lab_host(lb), "ip -4 -o addr")]
    assert holders == ["lb1"]
