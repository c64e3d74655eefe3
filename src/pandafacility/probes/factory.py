"""The pilot factory cycles and its queues have no errors (its status.json); perfdata
of idle, running and held pilots per queue for the pilot dashboard's history."""

from __future__ import annotations

import argparse
import json
import time

from pandafacility.probes.plugin import CRITICAL, WARNING, Perf, Result, above, worst


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="factory", description=__doc__)
    p.add_argument("--status", default="/var/lib/panda/autopilot/status.json")
    p.add_argument("--warn", type=float, default=300.0, help="seconds since the last cycle")
    p.add_argument("--crit", type=float, default=900.0, help="seconds since the last cycle")
    p.add_argument("--held-warn", type=int, default=10, help="held pilots in one queue")
    return p


def check(args: argparse.Namespace) -> Result:
    try:
        with open(args.status, encoding="utf-8") as f:
            status = json.load(f)
    except (OSError, ValueError) as exc:
        return Result(CRITICAL, f"no factory status in {args.status}: {exc}")
    age = time.time() - float(status["cycle_at"])
    statuses = [above(age, args.warn, args.crit)]
    parts = [f"last cycle {age:.0f} s ago"]
    perf = [Perf("cycle_age", round(age), "s", args.warn, args.crit, 0)]
    for q in status.get("queues", []):
        name = q["queue"]
        if q.get("last_error"):
            statuses.append(WARNING)
            parts.append(f"{name}: {q['last_error']}")
        if q.get("held", 0) >= args.held_warn:
            statuses.append(WARNING)
            parts.append(f"{name}: {q['held']} held")
        perf += [
            Perf(f"{name}_{k}", q.get(k, 0), "", minimum=0) for k in ("idle", "running", "held")
        ]
    queues = len(status.get("queues", []))
    parts.insert(1, f"{queues} queue{'s' if queues != 1 else ''}")
    return Result(worst(statuses), ", ".join(parts), perf)
