"""Cleanup works: the oldest file in each cleaned directory is younger than the age
after which the cleanup should have removed it (plus some slack)."""

from __future__ import annotations

import argparse
import os
import time

from pandafacility.probes.plugin import CRITICAL, Perf, Result, above, worst


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cleanup", description=__doc__)
    spec = "DIR:AGE, the directory and its cleanup age (30d, 12h, 2w); repeat"
    p.add_argument("--dir", action="append", required=True, help=spec)
    p.add_argument("--slack", type=float, default=1.0, help="days past the age: WARNING")
    return p


_UNITS = {"h": 1 / 24, "d": 1.0, "w": 7.0}


def age_days(text: str) -> float:
    """A systemd-tmpfiles style age (30d, 12h, 2w; a bare number is days) in days."""
    unit = text[-1:] if text[-1:] in _UNITS else "d"
    return float(text.rstrip("hdw")) * _UNITS[unit]


def oldest(directory: str) -> float:
    """Age in days of the oldest regular file below ``directory`` (0 when empty)."""
    now, oldest_mtime = time.time(), None
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:  # removed while we walked: cleanup at work
                continue
            mtime = st.st_mtime  # what systemd-tmpfiles' mM age looks at
            oldest_mtime = mtime if oldest_mtime is None else min(oldest_mtime, mtime)
    return 0.0 if oldest_mtime is None else (now - oldest_mtime) / 86400


def check(args: argparse.Namespace) -> Result:
    statuses, parts, perf = [], [], []
    for spec in args.dir:
        directory, _, age_text = spec.rpartition(":")
        days = age_days(age_text)
        if not os.path.isdir(directory):
            statuses.append(CRITICAL)
            parts.append(f"{directory} missing")
            continue
        age = oldest(directory)
        warn, crit = days + args.slack, days + 3 * args.slack
        statuses.append(above(age, warn, crit))
        parts.append(f"{directory} oldest {age:.1f} d (cleaned at {days:g} d)")
        perf.append(Perf(directory, round(age, 2), "d", warn, crit, 0))
    return Result(worst(statuses), ", ".join(parts), perf)
