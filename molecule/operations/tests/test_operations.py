"""Operations, as the operators see them: on the healthy facility every Nagios check is
OK; then one component of each kind is broken (a server backend stopped, a replica's SQL
thread stopped, a host certificate about to expire, a schedd stopped, a disk filled past
the threshold). The matching alert must reach the operators' mailbox and the ticket
mailbox, a problem that lasts is re-notified and reaches the second line, and each one
clears (a RECOVERY mail) once it is repaired.

Checks are forced through Nagios' command pipe, as an operator does after a repair, so
the suite does not wait for the next minute's round; mail goes through Postfix."""

from __future__ import annotations

import base64
import mailbox
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import testinfra

from conftest import only_on, other_host, run_ok

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "tools"))
import nagiosstatus
import testpki

WORK = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
NAGIOS = "mol-ops-log1"
HOSTS = ["mol-ops-db1", "mol-ops-db2", "mol-ops-srv1", "mol-ops-srv2", NAGIOS, "mol-ops-submit1"]
TLS = "/etc/panda-facility/tls"

# host, Nagios service, how it is broken, how it is repaired
CERT = f"{TLS}/host.crt"
FAULTS = [
    ("mol-ops-srv2", "pandaserver isAlive", "systemctl stop apache2", "systemctl start apache2"),
    (
        "mol-ops-db2",
        "replication",
        "mariadb -e 'STOP SLAVE SQL_THREAD'",
        "mariadb -e 'START SLAVE SQL_THREAD'",
    ),
    ("mol-ops-srv1", "host certificate", None, f"mv {CERT}.saved {CERT}"),
    (
        "mol-ops-submit1",
        "schedd and idle pilots",
        "condor_off -daemon schedd",
        "condor_on -daemon schedd",
    ),
    (
        NAGIOS,
        "disk",
        "fallocate -l 31M /var/log/panda/filler",
        "rm -f /var/log/panda/filler",
    ),
]


def force_checks(host: testinfra.host.Host, names: list[str]) -> None:
    """Every check of these hosts now, through Nagios' command pipe."""
    for name in names:
        line = nagiosstatus.force_checks(name)
        run_ok(host, f"printf '%s\\n' '{line}' > {nagiosstatus.COMMAND_FILE}")


def service_status(host: testinfra.host.Host) -> dict[tuple[str, str], dict[str, str]]:
    return nagiosstatus.services(host.file(nagiosstatus.STATUS_FILE).content_string)


def messages(host: testinfra.host.Host, user: str) -> list[str]:
    """Subjects of the mails in a local mailbox, unfolded."""
    mbox = host.file(f"/var/mail/{user}")
    if not mbox.exists:
        return []
    with tempfile.NamedTemporaryFile("wb", suffix=".mbox") as copy:
        copy.write(mbox.content)
        copy.flush()
        box = mailbox.mbox(copy.name, create=False)
        return [" ".join(str(m["Subject"]).split()) for m in box]


def wait_for(what: str, ready: Callable[[], object], timeout: float = 240.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = ready()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(5)


def subject(kind: str, host: str, service: str, state: str = "") -> str:
    return f"[panda] {kind}: {host}/{service} is {state}"


def test_every_check_is_ok_on_the_healthy_facility(host):
    only_on(host, NAGIOS)
    since = int(time.time())
    force_checks(host, HOSTS)

    def all_checked():
        status = service_status(host)
        fresh = all(int(s["last_check"]) >= since for s in status.values())
        return status if status and fresh else None

    status = wait_for("every service checked after forcing", all_checked, timeout=180)
    bad = nagiosstatus.not_ok(status)
    assert not bad, f"not OK on the healthy facility: {bad}"
    # Every kind of check the issue names is there.
    described = {desc for _, desc in status}
    for want in ("memory", "disk", "cleanup", "host certificate", "replication",
                 "slow-query guard", "pandaserver isAlive", "pandamon page", "logger isAlive",
                 "schedd and idle pilots", "pilot factory", "pilot credential"):  # fmt: skip
        assert want in described
    assert {h for h, _ in status} == set(HOSTS)


@pytest.fixture
def broken(host):
    """Break each component of FAULTS, and repair them all whatever the test did."""
    ca = testpki.load_ca(WORK / "ca" / "ca.crt", WORK / "ca" / "ca.key")
    cert, _ = testpki.issue("/DC=test/DC=panda/CN=mol-ops-srv1.mol.panda.test", ca, hours=24)
    short_lived = base64.b64encode(testpki.pem(cert)).decode()
    breaks = {"host certificate": f"cp -p {CERT} {CERT}.saved && echo {short_lived} "
                                  f"| base64 -d > {CERT}"}  # fmt: skip
    for name, service, cause, _ in FAULTS:
        run_ok(other_host(name), cause or breaks[service])
    yield
    for name, _, _, repair in FAULTS:
        other_host(name).run(repair)


def test_faults_alert_escalate_and_recover(host, broken):
    only_on(host, NAGIOS)
    before = {user: len(messages(host, user)) for user in ("ops", "oncall", "tickets")}

    def new(user: str) -> list[str]:
        return messages(host, user)[before[user] :]

    force_checks(host, [name for name, *_ in FAULTS])
    for name, service, *_ in FAULTS:
        problem = subject("PROBLEM", name, service)
        wait_for(f"{problem!r} in the operators' mailbox",
                 lambda p=problem: any(s.startswith(p) for s in new("ops")))  # fmt: skip
    ops = new("ops")
    assert any(subject("PROBLEM", "mol-ops-db2", "replication", "CRITICAL") == s for s in ops)
    assert any(subject("PROBLEM", NAGIOS, "disk", "CRITICAL") == s for s in ops)
    # One ticket per problem, opened with its first notification.
    for name, service, *_ in FAULTS:
        assert any(s.startswith(subject("PROBLEM", name, service)) for s in new("tickets"))

    # A problem that lasts is notified again, and from then on the second line too.
    escalated = subject("PROBLEM", NAGIOS, "disk", "CRITICAL")
    wait_for("the disk problem escalated to the second line",
             lambda: escalated in new("oncall"), timeout=180)  # fmt: skip
    assert new("ops").count(escalated) >= 2

    for name, _, _, repair in FAULTS:
        run_ok(other_host(name), repair)
    force_checks(host, [name for name, *_ in FAULTS])
    for name, service, *_ in FAULTS:
        recovery = subject("RECOVERY", name, service, "OK")
        wait_for(f"{recovery!r} in the operators' mailbox",
                 lambda r=recovery: r in new("ops"))  # fmt: skip
        assert recovery in new("tickets")
    # Tickets: the first notification and the recovery only, never a repeat.
    assert new("tickets").count(escalated) == 1
