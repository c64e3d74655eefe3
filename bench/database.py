#!/usr/bin/env python3
"""Benchmark of the database tier in the lab: read queries/s and replication lag.

Brings the lab's database hosts up and converged, then in one run:
  1. sysbench oltp_read_only against the primary, then against a replica, same load
     (over TLS, as an account of its own for the controller's address, on a database of
     its own: the facility's accounts admit only their hosts and may not create tables),
     and prints queries/s, p95 and the ratio;
  2. a bounded write load (sysbench oltp_write_only at a fixed rate) on the primary while
     heartbeats measure how long a write takes to be readable on the replica.
Prints figures only; exits non-zero when a step fails, never on a figure.

    .venv/bin/python bench/database.py [--seconds 20] [--threads 4] [--write-rate 100]
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lib"))

import lab
from sitecheck import ROOT, run_site

INVENTORY = ROOT / "inventories" / "lab"
PRIMARY, REPLICA = ("db1", "172.28.10.41"), ("db2", "172.28.10.42")
# The controller as the lab's database sees it (the docker network's gateway).
CONTROLLER = "172.28.10.1"
BENCH = "panda_bench"  # its account and database, made for the run and dropped after
TABLES, TABLE_SIZE = 4, 20000


TLS_DIR = Path(tempfile.mkdtemp(prefix="panda-bench-tls-"))


def client_tls() -> None:
    """sysbench 1.0 reads client-key.pem, client-cert.pem and cacert.pem from its working
    directory: the lab CA, and a client certificate that CA signs for the benchmark."""
    ca = ROOT / ".lab" / "ca"
    (TLS_DIR / "cacert.pem").write_bytes((ca / "ca.crt").read_bytes())
    key, csr, crt = (TLS_DIR / n for n in ("client-key.pem", "client.csr", "client-cert.pem"))
    for cmd in (
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-subj",
            "/CN=panda-bench",
            "-out",
            str(csr),
        ],
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca / "ca.crt"),
            "-CAkey",
            str(ca / "ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            str(crt),
        ],
    ):
        subprocess.run(cmd, check=True, capture_output=True, cwd=TLS_DIR)


def sysbench(test: str, host: str, user: str, password: str, *args: str) -> str:
    cmd = [
        "sysbench",
        test,
        "--db-driver=mysql",
        f"--mysql-host={host}",
        "--mysql-ssl=on",
        f"--mysql-user={user}",
        f"--mysql-password={password}",
        f"--mysql-db={BENCH}",
        f"--tables={TABLES}",
        f"--table-size={TABLE_SIZE}",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=TLS_DIR)
    if proc.returncode != 0:
        raise SystemExit(f"sysbench {test} on {host} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def figures(report: str) -> tuple[float, float]:
    """Queries per second and 95th percentile latency (ms) from a sysbench report."""
    qps = float(re.search(r"queries:\s+\d+\s+\(([\d.]+) per sec", report).group(1))
    p95 = float(re.search(r"95th percentile:\s+([\d.]+)", report).group(1))
    return qps, p95


def sql(container: str, query: str) -> str:
    proc = subprocess.run(
        ["docker", "exec", f"lab-{container}", "mariadb", "-N", "-B", "-e", query],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{container}: {query}: {proc.stderr}")
    return proc.stdout.strip()


def heartbeat_lags(stop: threading.Event, lags: list[float]) -> None:
    """Each heartbeat: write the primary's clock, wait on the replica until that write
    is applied, then read how old it is there (containers share the host's clock). The
    docker exec in between makes each figure an upper bound, by about its own cost."""
    sql(
        PRIMARY[0],
        f"CREATE TABLE IF NOT EXISTS {BENCH}.heartbeat (id INT PRIMARY KEY, ts DATETIME(6))",
    )
    while not stop.is_set():
        pos = sql(
            PRIMARY[0],
            f"REPLACE INTO {BENCH}.heartbeat VALUES (1, NOW(6)); SELECT @@gtid_binlog_pos",
        )
        age = sql(
            REPLICA[0],
            f"SELECT MASTER_GTID_WAIT('{pos}', 30); "
            "SELECT TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) "
            f"FROM {BENCH}.heartbeat WHERE id = 1",
        ).split()[-1]
        lags.append(int(age) / 1000)
        stop.wait(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--write-rate", type=int, default=100, help="write transactions/s")
    args = parser.parse_args()
    if shutil.which("sysbench") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "sysbench"], check=True)
    lab.up(INVENTORY)
    converge = run_site(INVENTORY, "--limit", "db_primary:db_replicas")
    if converge.returncode != 0:
        print(converge.output[-3000:])
        return 1

    client_tls()
    app = secrets.token_urlsafe(18)
    sql(
        PRIMARY[0],
        f"CREATE DATABASE IF NOT EXISTS {BENCH}; "
        f"CREATE OR REPLACE USER '{BENCH}'@'{CONTROLLER}' IDENTIFIED BY '{app}' REQUIRE SSL; "
        f"GRANT ALL ON {BENCH}.* TO '{BENCH}'@'{CONTROLLER}'",
    )
    try:
        return run(args, app)
    finally:
        sql(PRIMARY[0], f"DROP USER IF EXISTS '{BENCH}'@'{CONTROLLER}'; DROP DATABASE {BENCH}")


def run(args: argparse.Namespace, app: str) -> int:
    sysbench("oltp_read_only", PRIMARY[1], BENCH, app, "cleanup")
    sysbench("oltp_read_only", PRIMARY[1], BENCH, app, f"--threads={TABLES}", "prepare")
    pos = sql(PRIMARY[0], "SELECT @@gtid_binlog_pos")
    sql(REPLICA[0], f"SELECT MASTER_GTID_WAIT('{pos}', 120)")

    load = [f"--threads={args.threads}", f"--time={args.seconds}", "run"]
    primary = figures(sysbench("oltp_read_only", PRIMARY[1], BENCH, app, *load))
    replica = figures(sysbench("oltp_read_only", REPLICA[1], BENCH, app, *load))

    lags: list[float] = []
    stop = threading.Event()
    sampler = threading.Thread(target=heartbeat_lags, args=(stop, lags))
    sampler.start()
    writes = sysbench("oltp_write_only", PRIMARY[1], BENCH, app, f"--rate={args.write_rate}", *load)
    stop.set()
    sampler.join()
    tps = float(re.search(r"transactions:\s+\d+\s+\(([\d.]+) per sec", writes).group(1))
    sysbench("oltp_read_only", PRIMARY[1], BENCH, app, "cleanup")

    print(
        f"read load: sysbench oltp_read_only, {args.threads} threads, {args.seconds} s, "
        f"{TABLES}x{TABLE_SIZE} rows, TLS"
    )
    print(f"  primary  {PRIMARY[0]}: {primary[0]:9.0f} queries/s   p95 {primary[1]:6.1f} ms")
    print(f"  replica  {REPLICA[0]}: {replica[0]:9.0f} queries/s   p95 {replica[1]:6.1f} ms")
    print(f"  replica / primary:  {replica[0] / primary[0]:.2f}")
    print(f"write load: oltp_write_only at {args.write_rate} tx/s asked, {tps:.0f} tx/s done")
    print(
        f"  replication lag over {len(lags)} heartbeats (upper bound): "
        f"p50 {statistics.median(lags):.0f} ms, max {max(lags):.0f} ms"
    )
    status = subprocess.run(
        ["docker", "exec", f"lab-{REPLICA[0]}", "mariadb", "-e", "SHOW REPLICA STATUS\\G"],
        capture_output=True,
        text=True,
    ).stdout
    behind = re.search(r"Seconds_Behind_Master: (\S+)", status)
    print(f"  Seconds_Behind_Master after the load: {behind.group(1) if behind else 'n/a'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
