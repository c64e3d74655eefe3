"""Space used on the file systems that hold the given paths."""

from __future__ import annotations

import argparse
import os

from pandafacility.probes.plugin import CRITICAL, Perf, Result, above, worst


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="disk", description=__doc__)
    p.add_argument("--path", action="append", required=True, help="repeat for several")
    p.add_argument("--warn", type=float, default=80.0, help="percent used")
    p.add_argument("--crit", type=float, default=90.0, help="percent used")
    return p


def used_percent(path: str) -> float:
    st = os.statvfs(path)
    usable = st.f_blocks - st.f_bfree + st.f_bavail  # what non-root users can fill
    return 100.0 * (st.f_blocks - st.f_bfree) / usable if usable else 100.0


def check(args: argparse.Namespace) -> Result:
    statuses, parts, perf = [], [], []
    for path in args.path:
        try:
            used = used_percent(path)
        except OSError as exc:
            statuses.append(CRITICAL)
            parts.append(f"{path}: {exc.strerror}")
            continue
        statuses.append(above(used, args.warn, args.crit))
        parts.append(f"{path} {used:.0f}% used")
        perf.append(Perf(path, round(used, 1), "%", args.warn, args.crit, 0, 100))
    return Result(worst(statuses), ", ".join(parts), perf)
