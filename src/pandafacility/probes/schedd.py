"""A submit host's schedd answers, and each pilot factory queue has idle pilots waiting
at its site (WARNING below --min-idle: the site is not being fed)."""

from __future__ import annotations

import argparse
import subprocess

from pandafacility.factory import parse_condor_q
from pandafacility.probes.plugin import CRITICAL, OK, WARNING, Perf, Result, worst


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="schedd", description=__doc__)
    p.add_argument("--queue", action="append", default=[], help="queues that must have pilots")
    p.add_argument("--min-idle", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0)
    return p


def condor_q(timeout: float) -> str:
    proc = subprocess.run(
        ["condor_q", "-allusers", "-constraint", "PandaQueue =!= undefined",
         "-af", "PandaQueue", "JobStatus", "ClusterId", "ProcId"],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr or proc.stdout).strip()[:300])
    return proc.stdout


def check(args: argparse.Namespace) -> Result:
    try:
        counts = parse_condor_q(condor_q(args.timeout))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return Result(CRITICAL, f"schedd does not answer: {exc}")
    statuses, parts, perf = [OK], [], []
    for queue in sorted(set(args.queue) | set(counts)):
        c = counts.get(queue)
        idle, running, held = (c.idle, c.running, c.held) if c else (0, 0, 0)
        if queue in args.queue and idle < args.min_idle:
            statuses.append(WARNING)
        parts.append(f"{queue} {idle} idle/{running} running/{held} held")
        perf += [Perf(f"{queue}_idle", idle, "", args.min_idle, None, 0),
                 Perf(f"{queue}_running", running, "", minimum=0)]  # fmt: skip
    return Result(worst(statuses), "schedd answers; " + (", ".join(parts) or "no pilots"), perf)
