#!/usr/bin/env python3
"""Benchmark of the lab deploy: cold converge, no-op run, check-mode run.

Recreates the lab containers (so the first run is cold), runs playbooks/site.yml three
times and prints, for each run, its time, task count, module executions per host, and
the 20 tasks and the roles that took longest (from ansible-runner's events: a task's
time runs from its start to the next task's start, as ansible.posix.profile_tasks
counts it). Exits non-zero only when a run fails or the no-op run changes something:
the times are printed, never asserted. Every task's time goes to .cache/bench/*-tasks.tsv.

    .venv/bin/python bench/converge.py [--reuse] [-- extra ansible-playbook arguments]

--reuse skips the cold run and measures the no-op and check runs on the lab as it is.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lib"))

import lab
from sitecheck import ROOT, SiteRun, run_site

INVENTORY = ROOT / "inventories" / "lab"
LOGS = ROOT / ".cache" / "bench"


def report(name: str, run: SiteRun, top: int = 20) -> None:
    hosts = max(len(run.recap), 1)
    per_host = sum(run.executions.values()) / hosts
    print(f"\n== {name}: {run.seconds:.1f} s, {run.tasks} tasks, "
          f"changed={run.total('changed')} failed={run.total('failed')}, "
          f"module executions per host {per_host:.1f} "
          f"(min {min(run.executions.values(), default=0)}, "
          f"max {max(run.executions.values(), default=0)})")  # fmt: skip
    print(f"   top {top} tasks:")
    for task, seconds in sorted(run.task_seconds.items(), key=lambda t: -t[1])[:top]:
        print(f"   {seconds:7.1f} s  {task[:90]}")
    print("   roles:")
    for role, seconds in sorted(run.role_seconds.items(), key=lambda t: -t[1]):
        print(f"   {seconds:7.1f} s  {role}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", action="store_true", help="no cold run: use the lab as is")
    args, extra = parser.parse_known_args()
    lab.ensure_docker()
    lab.ensure_images()
    runs: list[tuple[str, SiteRun]] = []
    if not args.reuse:
        lab.down(INVENTORY)
        start = time.monotonic()
        lab.up(INVENTORY)
        print(f"containers created and booted: {time.monotonic() - start:.1f} s")
        runs.append(("cold converge", run_site(INVENTORY, *extra, log=LOGS / "cold.log")))
    runs.append(("no-op run", run_site(INVENTORY, *extra, log=LOGS / "noop.log")))
    runs.append(("check --diff", run_site(INVENTORY, "--check", "--diff", *extra,
                                          log=LOGS / "check.log")))  # fmt: skip
    for name, run in runs:
        report(name, run)
        ranked = sorted(run.task_seconds.items(), key=lambda t: -t[1])
        table = LOGS / f"{name.split()[0].replace('-', '')}-tasks.tsv"
        table.write_text("".join(f"{seconds:.2f}\t{task}\n" for task, seconds in ranked))
    noop = runs[-2][1]
    print("\n" + "\n".join(f"{name:14} {run.seconds:7.1f} s" for name, run in runs))
    if not args.reuse:
        print(f"no-op / cold   {noop.seconds / runs[0][1].seconds:7.2f}")
    ok = all(r.returncode == 0 for _, r in runs) and not noop.changed_hosts()
    ok = ok and not runs[-1][1].changed_hosts()
    print("result: " + ("ok" if ok else f"FAILED (logs in {LOGS})"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
