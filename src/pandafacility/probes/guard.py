"""The slow-query guard runs, and how many long queries it caught (killed or, in dry
run, found) lately, from its log; many in the window are a WARNING: something keeps
sending queries that run too long."""

from __future__ import annotations

import argparse
import subprocess
from datetime import datetime, timedelta, timezone

from pandafacility.probes.plugin import CRITICAL, Perf, Result, above


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="guard", description=__doc__)
    p.add_argument("--unit", default="panda-db-guard")
    p.add_argument("--log", default="/var/log/panda/slow-query-guard.log")
    p.add_argument("--hours", type=float, default=1.0, help="the window")
    p.add_argument("--warn", type=int, default=5, help="queries caught in the window")
    return p


def recent(lines: list[str], since: datetime) -> int:
    """Log lines (ISO time first) from ``since`` on."""
    count = 0
    for line in lines:
        try:
            # The guard writes "...T10:00:00Z"; fromisoformat reads a "Z" only from 3.11.
            stamp = line.split()[0]
            at = datetime.fromisoformat(stamp[:-1] + "+00:00" if stamp.endswith("Z") else stamp)
        except (IndexError, ValueError):
            continue
        if (at if at.tzinfo else at.replace(tzinfo=timezone.utc)) >= since:
            count += 1
    return count


def check(args: argparse.Namespace) -> Result:
    active = subprocess.run(["systemctl", "is-active", args.unit],
                            capture_output=True, text=True, timeout=30).stdout.strip()  # fmt: skip
    if active != "active":
        return Result(CRITICAL, f"{args.unit} is {active or 'unknown'}")
    try:
        with open(args.log, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except FileNotFoundError:
        lines = []  # nothing killed yet
    caught = recent(lines, datetime.now(timezone.utc) - timedelta(hours=args.hours))
    perf = [Perf("caught", caught, "", args.warn, None, 0)]
    text = f"{args.unit} running, {caught} long queries caught in the last {args.hours:g} h"
    return Result(above(caught, args.warn, None), text, perf)
