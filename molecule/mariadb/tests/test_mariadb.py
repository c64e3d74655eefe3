"""MariaDB tier: replication over TLS, read-only replicas, the guard, backups."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import only_on, other_host, run_ok

PRIMARY, REPLICAS = "mol-db1", ("mol-db2", "mol-db3")
ADDRESS = {"mol-db1": "172.28.30.11", "mol-db2": "172.28.30.12", "mol-db3": "172.28.30.13"}
CA = "/etc/panda-facility/tls/ca.crt"


def secret(name: str) -> str:
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets" / name
    return path.read_text().split()[0]


def sql(host, query: str) -> str:
    """As root over the local socket."""
    return run_ok(host, f"mariadb -N -B -e {query!r}").strip()


def app_sql(host, query: str, tls: bool = True):
    """As the PanDA app user over TCP, to the host's own address, TLS verified."""
    name = host.backend.get_hostname()
    flags = f"--ssl --ssl-ca={CA} --ssl-verify-server-cert" if tls else "--skip-ssl"
    return host.run(
        f"mariadb -N -B {flags} -h {ADDRESS[name]} -u panda_rw -p{secret('app')} panda -e {query!r}"
    )


def status(host) -> dict[str, str]:
    out = run_ok(host, "mariadb -e 'SHOW REPLICA STATUS\\G'")
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def wait_replicated(replica, primary) -> None:
    pos = sql(primary, "SELECT @@gtid_binlog_pos")
    assert sql(replica, f"SELECT MASTER_GTID_WAIT('{pos}', 30)") == "0", "replica did not catch up"


def test_write_on_primary_is_read_on_both_replicas(host):
    only_on(host, PRIMARY)
    token = f"verify-{time.time_ns()}"
    sql(host, "CREATE TABLE IF NOT EXISTS panda.verify_rep (t VARCHAR(64) PRIMARY KEY)")
    # For the next test's writes as the application (which may not create tables).
    sql(host, "CREATE TABLE IF NOT EXISTS panda.verify_ro (i INT)")
    sql(host, f"INSERT INTO panda.verify_rep VALUES ('{token}')")
    for name in REPLICAS:
        replica = other_host(name)
        wait_replicated(replica, host)
        assert sql(replica, f"SELECT COUNT(*) FROM panda.verify_rep WHERE t='{token}'") == "1"


def test_replicas_refuse_writes_and_primary_takes_them(host):
    name = host.backend.get_hostname()
    cmd = app_sql(host, "INSERT INTO verify_ro VALUES (1)")
    if name == PRIMARY:
        assert cmd.rc == 0, cmd.stderr
    else:
        assert cmd.rc != 0 and "read-only" in cmd.stderr, cmd.stdout + cmd.stderr


def test_schema_applied_on_the_primary_and_the_app_cannot_change_it(host):
    only_on(host, PRIMARY)
    assert sql(host, "SELECT COUNT(*) FROM panda.schema_migrations") != "0"
    for statement in ("CREATE TABLE verify_ddl (i INT)", "DELETE FROM jobs WHERE 1 = 0"):
        cmd = app_sql(host, statement)
        assert cmd.rc != 0 and "command denied" in cmd.stderr, cmd.stdout + cmd.stderr
    hosts = sql(host, "SELECT Host FROM mysql.user WHERE User = 'panda_rw' ORDER BY Host")
    assert hosts.split() == sorted(ADDRESS.values())


def test_replication_runs_with_gtid_over_tls_and_no_lag(host):
    if host.backend.get_hostname() == PRIMARY:
        assert sql(host, "SELECT @@read_only") == "0"
        return
    st = status(host)
    assert st["Slave_IO_Running"] == "Yes" and st["Slave_SQL_Running"] == "Yes", st
    assert st["Master_Host"] == ADDRESS[PRIMARY]
    assert st["Using_Gtid"] == "Slave_Pos" and st["Master_SSL_Allowed"] == "Yes"
    assert st["Master_SSL_Verify_Server_Cert"] == "Yes"
    assert st["Seconds_Behind_Master"] == "0", st
    assert sql(host, "SELECT @@read_only") == "1"


def test_semisync_the_primary_waits_for_a_replica(host):
    rows = sql(host, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_%'").splitlines()
    status = dict(row.split("\t") for row in rows)
    if host.backend.get_hostname() == PRIMARY:
        assert status["Rpl_semi_sync_master_status"] == "ON", status
        assert status["Rpl_semi_sync_master_clients"] == "2", status
    else:
        assert status["Rpl_semi_sync_slave_status"] == "ON", status
        assert status["Rpl_semi_sync_master_status"] == "OFF", status


def test_plain_tcp_is_refused(host):
    cmd = app_sql(host, "SELECT 1", tls=False)
    assert cmd.rc != 0 and "insecure transport" in cmd.stderr, cmd.stdout + cmd.stderr


def test_server_ids_are_unique(host):
    only_on(host, PRIMARY)
    ids = {sql(other_host(n), "SELECT @@server_id") for n in (PRIMARY, *REPLICAS)}
    assert len(ids) == 3 and "1" not in ids


def test_mariadb_key_copy_is_private(host):
    key = host.file("/etc/panda-facility/mariadb-tls/host.key")
    assert key.user == "mysql" and key.mode == 0o600


def test_guard_kills_a_slow_query_logs_and_mails_it(host):
    only_on(host, PRIMARY)
    guard = host.service("panda-db-guard")
    assert guard.is_running, host.run("journalctl -n 30 -u panda-db-guard").stdout
    assert run_ok(host, "systemctl show -p User --value panda-db-guard").strip() == "panda"
    start = time.monotonic()
    app_sql(host, "SELECT SLEEP(25) AS verify_guard")
    assert time.monotonic() - start < 20, "the guard did not stop a 25 s query"
    log = host.file("/var/log/panda/slow-query-guard.log").content_string
    line = next(ln for ln in log.splitlines() if "verify_guard" in ln)
    assert "KILLED" in line and "user=panda_rw" in line and "host=172.28.30.11" in line
    assert "SLEEP(25)" in line
    for _ in range(20):
        mailbox = host.run("cat /var/mail/panda").stdout
        if "[panda-db-guard]" in mailbox and "verify_guard" in mailbox:
            break
        time.sleep(0.5)
    else:
        pytest.fail("no guard report in /var/mail/panda:\n" + mailbox[-2000:])


def test_backup_restores_to_a_scratch_instance(host):
    only_on(host, "mol-db2")
    primary = other_host(PRIMARY)
    sql(primary, "CREATE TABLE IF NOT EXISTS panda.verify_backup (i INT PRIMARY KEY)")
    sql(primary, "INSERT IGNORE INTO panda.verify_backup SELECT seq FROM panda.seq_1_to_5000")
    wait_replicated(host, primary)
    rows = sql(host, "SELECT COUNT(*) FROM panda.verify_backup")
    run_ok(
        host,
        "systemctl start panda-db-backup.service "
        "|| { journalctl -u panda-db-backup -n 30 --no-pager; exit 1; }",
    )
    latest = run_ok(host, "ls -1d /var/backups/mariadb/2*Z | tail -n 1").strip()
    scratch = "/var/tmp/verify-restore"
    # The restore procedure of roles/mariadb/README.md, into a scratch data directory.
    run_ok(
        host,
        f"rm -rf {scratch} && mariadb-backup --copy-back --target-dir={latest} "
        f"--datadir={scratch} && chown -R mysql:mysql {scratch}",
    )
    run_ok(
        host,
        f"systemd-run --unit=verify-restore --collect -p User=mysql mariadbd "
        f"--no-defaults --datadir={scratch} --socket={scratch}.sock "
        "--skip-networking --skip-grant-tables --skip-slave-start",
    )
    try:
        run_ok(
            host,
            f"for i in $(seq 60); do mariadb -S {scratch}.sock -e 'SELECT 1' "
            ">/dev/null 2>&1 && exit 0; sleep 0.5; done; exit 1",
        )
        restored = run_ok(
            host, f"mariadb -S {scratch}.sock -N -B -e 'SELECT COUNT(*) FROM panda.verify_backup'"
        ).strip()
        assert restored == rows == "5000"
    finally:
        host.run("systemctl stop verify-restore")
