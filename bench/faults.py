#!/usr/bin/env python3
"""Benchmark of the facility under faults: the fault audit with the issue's durations.

On a freshly deployed lab (recreated, site.yml run once), under a bounded load through
the pandaserver VIP (tests/lib/faultaudit.py: submitters, and runners that take jobs,
heartbeat and end them; every call retried as pilots do), one after the other:
restart the database primary, pause it --pause seconds, kill -9 srv1's mod_wsgi
daemons, kill the VIP holder's container outright (and start it again), cut both load
balancers for --cut seconds while the reaper runs with a silent period of --silent
seconds (so the cut outlasts every job's heartbeat), kill the primary and promote db2
(db-promote.yml, then site.yml on the inventory edited as it says). Then prints the
audit of the job tables (acknowledged but missing, dispatched twice in one attempt,
executed twice), the calls per fault (retried, failed after retries, the longest, the
errors seen before retries) and the VIP's gap per fault, measured by a probe that
opens a fresh connection every 20 ms with a 0.25 s timeout.
Prints figures only; exits non-zero when a step fails, never on a figure. Leaves the
lab as the faults left it (db2 the primary, db1 dead): `make lab-down` afterwards.

    .venv/bin/python bench/faults.py [--pause 60] [--cut 60] [--silent 30] [--reuse]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lib"))

import lab
import labfaults
from sitecheck import ROOT, run_site

LOGS = ROOT / ".cache" / "faults"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pause", type=float, default=60.0, help="seconds the primary is paused")
    parser.add_argument("--cut", type=float, default=60.0, help="seconds the LBs are cut")
    parser.add_argument("--silent", type=int, default=30, help="the reaper's silent period")
    parser.add_argument("--settle", type=float, default=10.0, help="load around each fault")
    parser.add_argument("--reuse", action="store_true", help="the lab as it stands, converged")
    args = parser.parse_args()
    if not args.cut > args.silent > 1:
        parser.error("--cut must be longer than --silent, which must be over 1 s")
    lab.ensure_docker()
    lab.ensure_images()
    if not args.reuse:
        lab.down(labfaults.INVENTORY)
    lab.up(labfaults.INVENTORY)
    converge = run_site(labfaults.INVENTORY, log=LOGS / "site.log")
    if converge.returncode != 0:
        print(converge.failures())
        return 1
    timing = labfaults.Timing(
        settle=args.settle,
        pause=args.pause,
        cut=args.cut,
        silent=args.silent,
        outage_gap=max(1, args.silent // 3),
    )
    start = time.monotonic()
    outcome = labfaults.run(labfaults.PLAN, timing, LOGS)
    print(f"\nFault audit ({time.monotonic() - start:.0f} s under load through the VIP;"
          f" pause {args.pause:.0f} s, cut {args.cut:.0f} s,"
          f" reaper silent {args.silent} s)")  # fmt: skip
    print(outcome.table(labfaults.PLAN))
    audit = outcome.audit
    print(
        f"goal 0, 0, 0, 0 failed: missing {len(audit.missing)}, dispatched twice in one"
        f" attempt {len(audit.dispatched_twice)}, executed twice {len(audit.executed_twice)},"
        f" failed after retries {audit.failed}"
    )
    print(
        f"failover gap after a hard kill of the VIP holder: {outcome.gaps['kill-lb']} s (aim < 1 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
