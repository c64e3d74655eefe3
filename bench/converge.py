#!/usr/bin/env python3
"""Benchmark of the lab deploy: cold converge, second run, check-mode run.

Recreates the lab containers (so the first run is cold), runs playbooks/site.yml three
times and prints the figures. Exits non-zero only when a run fails or the second run
changes something: the times are printed, never asserted.

    .venv/bin/python bench/converge.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

import lab
from sitecheck import ROOT, run_site

INVENTORY = ROOT / "inventories" / "lab"
LOGS = ROOT / ".cache" / "bench"


def main() -> int:
    lab.ensure_docker()
    lab.ensure_images()
    lab.down(INVENTORY)
    start = time.monotonic()
    lab.up(INVENTORY)
    boot = time.monotonic() - start
    cold = run_site(INVENTORY, log=LOGS / "cold.log")
    second = run_site(INVENTORY, log=LOGS / "second.log")
    check = run_site(INVENTORY, "--check", "--diff", log=LOGS / "check.log")
    hosts = len(cold.recap)
    print(f"lab hosts:                        {hosts}")
    print(f"containers created and booted:    {boot:6.1f} s")
    print(
        f"cold converge (site.yml):         {cold.seconds:6.1f} s  "
        f"changed={cold.total('changed')} failed={cold.total('failed')}"
    )
    print(
        f"second run:                       {second.seconds:6.1f} s  "
        f"changed={second.total('changed')} failed={second.total('failed')}"
    )
    print(
        f"check --diff on converged lab:    {check.seconds:6.1f} s  "
        f"changed={check.total('changed')} failed={check.total('failed')}"
    )
    print(f"second run / cold converge:       {second.seconds / cold.seconds:6.2f}")
    ok = all(r.returncode == 0 for r in (cold, second, check)) and not second.changed_hosts()
    print("result: " + ("ok" if ok else f"FAILED (logs in {LOGS})"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
