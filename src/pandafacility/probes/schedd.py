"""A submit host's schedd answers, and each pilot factory queue's site is being fed:
it has idle pilots waiting (at least --min-idle), or pilots running, or pilots that
finished within the last --fed-within seconds (a site with free slots starts each pilot
as it arrives, so none waits). WARNING otherwise: the site gets no pilots, or only held
ones."""

from __future__ import annotations

import argparse
import subprocess
import time
from collections import Counter

from pandafacility.factory import parse_condor_q
from pandafacility.probes.plugin import CRITICAL, OK, WARNING, Perf, Result, worst


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="schedd", description=__doc__)
    p.add_argument("--queue", action="append", default=[], help="queues that must have pilots")
    p.add_argument("--min-idle", type=int, default=1)
    p.add_argument("--fed-within", type=int, default=900, help="seconds; finished pilots count")
    p.add_argument("--timeout", type=float, default=60.0)
    return p


def _run(cmd: list[str], timeout: float) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr or proc.stdout).strip()[:300])
    return proc.stdout


def condor_q(timeout: float) -> str:
    return _run(
        ["condor_q", "-allusers", "-constraint", "PandaQueue =!= undefined",
         "-af", "PandaQueue", "JobStatus", "ClusterId", "ProcId"],
        timeout,
    )  # fmt: skip


def finished_since(since: int, timeout: float) -> Counter[str]:
    """Pilots per queue that completed after ``since`` (the history, newest first, read
    back only to that time)."""
    out = _run(
        ["condor_history", "-since", f"EnteredCurrentStatus < {since}", "-scanlimit", "20000",
         "-constraint", "JobStatus == 4 && PandaQueue =!= undefined", "-af", "PandaQueue"],
        timeout,
    )  # fmt: skip
    return Counter(line.strip() for line in out.splitlines() if line.strip())


def check(args: argparse.Namespace) -> Result:
    try:
        counts = parse_condor_q(condor_q(args.timeout))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return Result(CRITICAL, f"schedd does not answer: {exc}")
    starved = [
        q for q in args.queue
        if (c := counts.get(q)) is None or (c.idle < args.min_idle and c.running == 0)
    ]  # fmt: skip
    finished: Counter[str] = Counter()
    history_error = ""
    if starved:
        try:
            finished = finished_since(int(time.time()) - args.fed_within, args.timeout)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            history_error = f" (history unreadable: {exc})"
    statuses, parts, perf = [OK], [], []
    for queue in sorted(set(args.queue) | set(counts)):
        c = counts.get(queue)
        idle, running, held = (c.idle, c.running, c.held) if c else (0, 0, 0)
        part = f"{queue} {idle} idle/{running} running/{held} held"
        if queue in starved and finished[queue]:
            part += f" ({finished[queue]} finished in {args.fed_within} s)"
        elif queue in starved:
            statuses.append(WARNING)
            part += f" (none finished in {args.fed_within} s: not fed)"
        parts.append(part)
        perf += [Perf(f"{queue}_idle", idle, "", args.min_idle, None, 0),
                 Perf(f"{queue}_running", running, "", minimum=0)]  # fmt: skip
    text = "schedd answers; " + (", ".join(parts) or "no pilots") + history_error
    return Result(worst(statuses), text, perf)
