"""The README's deploy path: a fresh lab converges, then stays converged (a second run,
a limited run and a check run change nothing), and the facility answers through its
VIPs: replication, VRRP, the stats page, the services and pilots of both queues.

Run by `make test` (stage lab) after the molecule scenarios; conftest.py recreates the
lab containers, so it is not part of the quick controller-side suite.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

import testpki
from labhosts import (
    ADDRESSES,
    CA_CERT,
    CA_KEY,
    INVENTORY,
    LOGS,
    ROOT,
    USER_DN,
    Soak,
    backend_stats,
    exec_in,
    server_connections,
)  # fmt: skip
from sitecheck import run_site


def test_fresh_lab_converges(first_run):
    assert first_run.returncode == 0, first_run.failures()
    assert len(first_run.recap) == 13
    assert first_run.total("failed") == 0 and first_run.total("unreachable") == 0


def serials() -> dict[str, str]:
    """The serial of the host certificate of a few hosts (a load balancer among them)."""
    cmd = ["openssl", "x509", "-noout", "-serial", "-in", "/etc/panda-facility/tls/host.crt"]
    return {host: exec_in(host, *cmd).stdout.strip() for host in ("lb1", "srv1", "db1")}


def test_second_run_changes_nothing(first_run, tmp_path):
    """And reissues no certificate, and the pandaserver VIP answers every fresh
    connection meanwhile (a soak of one request every half second): a first request
    never goes out on a pooled server connection, which the server may close at that
    instant (http-reuse safe, with a retry_on that does not make HAProxy count on its
    own retries)."""
    pem = testpki.user_pem(USER_DN, testpki.load_ca(CA_CERT, CA_KEY), tmp_path / "u.pem")
    before = serials()
    with Soak(pem) as soak:
        second = run_site(INVENTORY, log=LOGS / "second.log")
    assert second.returncode == 0, second.failures()
    assert second.changed_hosts() == {}
    assert serials() == before and all(before.values()), before
    assert soak.sent > 20 and soak.errors == [], f"{len(soak.errors)}/{soak.sent}: {soak.errors}"
    assert all(reuse == 0 for _, reuse in server_connections().values()), server_connections()


def test_limited_run_agrees_with_the_full_one(first_run):
    """Under --limit, roles learn the addresses of hosts outside the run by delegated
    fact gathering; they must come to the same configuration. This run takes Ansible's
    plain linear strategy (the others Mitogen's), so that both paths stay tested. The
    one change: a wildcard account of an earlier release, planted here, is dropped."""
    stale = "CREATE USER IF NOT EXISTS 'panda_ro'@'%' IDENTIFIED BY 'stale-wildcard'"
    assert exec_in("db1", "mariadb", "-e", stale).returncode == 0
    limited = run_site(
        INVENTORY, "--limit", "loadbalancers:panda_servers:db_primary",
        log=LOGS / "limited.log", mitogen=False,
    )  # fmt: skip
    assert limited.returncode == 0, limited.failures()
    assert limited.changed_hosts() == {"db1": 1}
    left = exec_in("db1", "mariadb", "-N", "-e", "SELECT COUNT(*) FROM mysql.user WHERE Host='%'")
    assert left.stdout.strip() == "0", left.stdout + left.stderr


def test_check_diff_on_converged_lab_changes_nothing(first_run):
    check = run_site(INVENTORY, "--check", "--diff", log=LOGS / "check.log")
    assert check.returncode == 0, check.failures()
    assert check.changed_hosts() == {}


@pytest.mark.parametrize(
    "host,name,verifies",
    [
        ("srv1", "pandaserver.lab.panda.test", True),
        ("srv1", "pandamon.lab.panda.test", True),
        ("lb1", "pandaserver.lab.panda.test", True),
        ("lb2", "pandamon.lab.panda.test", True),
        ("db1", "db1.lab.panda.test", True),
        ("db1", "pandaserver.lab.panda.test", False),
    ],
)
def test_lab_certificates_carry_the_vip_names(converged, host, name, verifies):
    tls = "/etc/panda-facility/tls"
    proc = exec_in(
        host,
        "openssl",
        "verify",
        "-CAfile",
        f"{tls}/ca.crt",
        "-verify_hostname",
        name,
        f"{tls}/host.crt",
    )
    assert (proc.returncode == 0) is verifies, proc.stdout + proc.stderr


def test_lab_database_replicates_and_guards(converged):
    token = f"lab-{converged.seconds:.3f}"
    create = "CREATE TABLE IF NOT EXISTS panda.lab_check (t VARCHAR(32) PRIMARY KEY)"
    assert exec_in("db1", "mariadb", "-e", create).returncode == 0
    insert = exec_in(
        "db1",
        "mariadb",
        "-N",
        "-e",
        f"INSERT IGNORE INTO panda.lab_check VALUES ('{token}'); SELECT @@gtid_binlog_pos",
    )
    assert insert.returncode == 0, insert.stderr
    waited = exec_in(
        "db2",
        "mariadb",
        "-N",
        "-e",
        f"SELECT MASTER_GTID_WAIT('{insert.stdout.strip()}', 30), @@read_only",
    )
    assert waited.stdout.split() == ["0", "1"], waited.stdout + waited.stderr
    for host in ("db1", "db2"):
        guard = exec_in(host, "systemctl", "is-active", "panda-db-guard")
        assert guard.stdout.strip() == "active", host
    timer = exec_in("db2", "systemctl", "is-active", "panda-db-backup.timer")
    assert timer.stdout.strip() == "active"


def test_lab_database_accounts_are_per_host_and_least_privilege(converged):
    """Each network account exists for its client hosts' addresses only; the servers'
    account reads and writes rows but cannot change tables, and its password alone gets
    nobody in from another host."""
    rows = exec_in(
        "db1", "mariadb", "-N", "-B", "-e",
        "SELECT User, Host FROM mysql.user WHERE User LIKE 'panda%' ORDER BY User, Host",
    )  # fmt: skip
    got = {tuple(line.split("\t")) for line in rows.stdout.splitlines()}
    assert got == {
        ("panda", "localhost"),  # the guard, unix_socket
        ("panda_backup", "localhost"),
        ("panda_mon", "localhost"),
        ("panda_ro", ADDRESSES["srv1"]),
        ("panda_ro", ADDRESSES["srv2"]),
        ("panda_rw", ADDRESSES["srv1"]),
        ("panda_rw", ADDRESSES["srv2"]),
        ("panda_repl", ADDRESSES["db1"]),
        ("panda_repl", ADDRESSES["db2"]),
    }, rows.stdout
    app = (
        "import json, sys; from pandafacility.db import DbSettings, connect; "
        "s = json.load(open('/etc/panda-facility/server.json'))['database']; "
        "c = connect(DbSettings.from_dict(s)); cur = c.cursor(); "
        "cur.execute(sys.argv[1]); print(cur.fetchall())"
    )

    def as_app(statement: str) -> subprocess.CompletedProcess[str]:
        return exec_in(
            "srv1", "env", "PYTHONPATH=/opt/panda-facility/lib", "python3", "-c", app, statement
        )

    assert as_app("SELECT COUNT(*) AS n FROM jobs").returncode == 0
    # Statements that would change nothing if they were allowed.
    for statement in (
        "CREATE TABLE lab_ddl (i INT)",
        "DROP TABLE IF EXISTS lab_ddl",
        "DELETE FROM jobs WHERE 1 = 0",
    ):
        denied = as_app(statement)
        assert denied.returncode != 0 and "command denied" in denied.stderr, denied.stderr
    password = (ROOT / ".lab" / "secrets" / "mariadb_app").read_text().split()[0]
    elsewhere = exec_in(
        "db2", "mariadb", "--ssl", "--ssl-ca=/etc/panda-facility/tls/ca.crt",
        "-h", ADDRESSES["db1"], "-u", "panda_rw", f"-p{password}", "panda", "-e", "SELECT 1",
    )  # fmt: skip
    assert elsewhere.returncode != 0, elsewhere.stdout
    refused = elsewhere.stderr
    assert "Access denied" in refused or "not allowed" in refused, refused


def test_lab_vips_are_held_by_lb1_alone(converged):
    for lb, holds in (("lb1", True), ("lb2", False)):
        addrs = exec_in(lb, "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
        for vip in ("172.28.10.100", "172.28.10.101"):
            assert (f" {vip}/" in addrs) is holds, (lb, addrs)
        for unit in ("haproxy", "keepalived"):
            assert exec_in(lb, "systemctl", "is-active", unit).stdout.strip() == "active"


def test_lab_stats_page_lists_each_service(converged):
    password = (ROOT / ".lab" / "secrets" / "haproxy_stats").read_text().split()[0]
    proc = exec_in(
        "lb1", "curl", "-fsS", "-u", f"admin:{password}", "http://172.28.10.11:8404/;csv"
    )
    assert proc.returncode == 0, proc.stderr
    assert "pandaserver,BACKEND" in proc.stdout and "pandamon,BACKEND" in proc.stdout


def curl_json(host: str, url: str) -> dict:
    proc = exec_in(host, "curl", "-fsS", "--cacert", "/etc/panda-facility/tls/ca.crt", url)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_lab_panda_services_answer_through_their_vips(converged):
    # The load balancers check the backends every few seconds: allow them to come up.
    deadline = time.monotonic() + 60
    while True:
        alive = exec_in(
            "mon1",
            "curl",
            "-sS",
            "--cacert",
            "/etc/panda-facility/tls/ca.crt",
            "https://pandaserver.lab.panda.test:25443/server/panda/isAlive",
        )
        if alive.stdout == "alive=yes" or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert alive.stdout == "alive=yes", alive.stdout + alive.stderr
    queue = curl_json(
        "mon1", "https://pandaserver.lab.panda.test:25443/cache/schedconfig/LAB_SITE2.all.json"
    )
    assert queue["corecount"] == 8
    seen = {
        curl_json("mon1", "https://pandamon.lab.panda.test/servers?format=json")["served_by"]
        for _ in range(6)
    }
    assert seen == {"srv1", "srv2"}, seen
    page = curl_json("mon1", "https://pandamon.lab.panda.test/servers?format=json")
    assert all(s["alive"] for s in page["servers"]) and len(page["servers"]) == 2, page
    logger = exec_in(
        "mon1",
        "curl",
        "-fsS",
        "--cacert",
        "/etc/panda-facility/tls/ca.crt",
        "https://log1.lab.panda.test:8443/logger/isAlive",
    )
    assert logger.stdout == "alive=yes", logger.stderr


def served_by_through_the_vip(count: int) -> set[str]:
    seen = set()
    for _ in range(count):
        head = exec_in(
            "mon1", "curl", "-sS", "-o", "/dev/null", "-D", "-", "--cacert",
            "/etc/panda-facility/tls/ca.crt",
            "https://pandaserver.lab.panda.test:25443/server/panda/isAlive",
        )  # fmt: skip
        seen |= {
            line.split(":", 1)[1].strip()
            for line in head.stdout.splitlines()
            if line.lower().startswith("x-served-by:")
        }
    return seen


def wait_status(server: str, status: str) -> None:
    deadline = time.monotonic() + 30
    while backend_stats()[server]["status"] != status:
        assert time.monotonic() < deadline, backend_stats()[server]
        time.sleep(1)


def test_lab_server_whose_database_path_breaks_leaves_the_pool(converged):
    """srv1 loses its routes to both database hosts: its health check tells HAProxy,
    which takes it out while the VIP answers from srv2; with the routes back it
    returns. (A database away for every server keeps them all in: the package tests
    show that on the test database.)"""
    routes = [["unreachable", f"{ADDRESSES[db]}/32"] for db in ("db1", "db2")]
    try:
        for route in routes:
            assert exec_in("srv1", "ip", "route", "add", *route).returncode == 0
        wait_status("srv1", "DOWN")
        assert served_by_through_the_vip(6) == {"srv2"}
    finally:
        for route in routes:
            exec_in("srv1", "ip", "route", "del", *route)
    wait_status("srv1", "UP")
    # Both serve again (polled: on a busy machine a health check of srv2 may lag once).
    deadline, seen = time.monotonic() + 30, set()
    while seen != {"srv1", "srv2"} and time.monotonic() < deadline:
        seen |= served_by_through_the_vip(6)
    assert seen == {"srv1", "srv2"}, backend_stats()
