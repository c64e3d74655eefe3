"""A MariaDB read replica replicates: both replication threads run, the lag is small,
and the server is read_only (a writable replica would drift from the primary)."""

from __future__ import annotations

import argparse
from typing import Any

from pandafacility.probes.plugin import CRITICAL, OK, Perf, Result, above, worst


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="replica", description=__doc__)
    p.add_argument("--defaults-file", default="/etc/panda-facility/probe-my.cnf",
                   help="client options file with the monitor user's credentials")  # fmt: skip
    p.add_argument("--warn", type=float, default=60.0, help="seconds behind the primary")
    p.add_argument("--crit", type=float, default=300.0, help="seconds behind the primary")
    return p


def judge(status: dict[str, Any] | None, read_only: bool, warn: float, crit: float) -> Result:
    """The replica's state from SHOW REPLICA STATUS (a row as a dict) and @@read_only."""
    if status is None:
        return Result(CRITICAL, "not a replica (no replication configured)")
    problems, statuses = [], [OK]
    for thread in ("Slave_IO_Running", "Slave_SQL_Running"):
        if status.get(thread) != "Yes":
            statuses.append(CRITICAL)
            problems.append(f"{thread.split('_')[1]} thread {status.get(thread)}")
    error = status.get("Last_SQL_Error") or status.get("Last_IO_Error")
    if error:
        problems.append(str(error)[:200])
    if not read_only:
        statuses.append(CRITICAL)
        problems.append("read_only is OFF")
    lag = status.get("Seconds_Behind_Master")
    perf = []
    if lag is None:
        statuses.append(CRITICAL)
        problems.append("lag unknown")
    else:
        statuses.append(above(float(lag), warn, crit))
        perf.append(Perf("lag", float(lag), "s", warn, crit, 0))
        problems.insert(0, f"{lag} s behind")
    return Result(worst(statuses), ", ".join(problems), perf)


def check(args: argparse.Namespace) -> Result:
    import pymysql  # only this probe needs it

    conn = pymysql.connect(read_default_file=args.defaults_file, connect_timeout=10,
                           cursorclass=pymysql.cursors.DictCursor)  # fmt: skip
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW REPLICA STATUS")
            status = cur.fetchone()
            cur.execute("SELECT @@read_only AS ro")
            read_only = bool(cur.fetchone()["ro"])
    finally:
        conn.close()
    return judge(status, read_only, args.warn, args.crit)
