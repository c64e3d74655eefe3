#!/usr/bin/env python3
"""Benchmark of pilot submission: how fast one submit host's schedd hands pilots to one
site through Condor-G, as the pilot factory submits them.

Uses the molecule scenario `pilots` (its submit1 and site1, a site with 2 slots):
  1. creates and converges it (or, with --reuse, takes it as it stands), and stops the
     pilot factory on submit1 for the run;
  2. submits --pilots grid jobs in one cluster, as the service account, with the same
     description the factory writes (pandafacility.factory.submit_description), the
     payload being /bin/true;
  3. polls condor_q until every pilot has a GridJobId (accepted by the site's schedd)
     and prints pilots/s for the local submit and for the hand-over to the site;
  4. fills the submit host's queue with --queue-size pilots (clusters of 5000, submitted
     on hold so that the site is not flooded) and prints the submit rate, how long the
     factory's one condor_q takes on that queue and the schedd's memory; an error of
     condor_submit or condor_q there fails the run;
  5. removes the pilots, starts the factory again and destroys the scenario (unless
     --keep or --reuse).
Prints figures only; exits non-zero when a step fails, never on a figure.

    .venv/bin/python bench/pilots.py [--pilots 1000] [--queue-size 50000] [--keep]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lib"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pandafacility.factory import FactoryConfig, PilotCode, QueueConfig, submit_description
from scenario import add_scenario_options, bring_up, tear_down

SCENARIO = "pilots"
SUBMIT = "mol-pil-submit1"
SITE = "mol-pil-site1"
WORK = "/var/lib/panda/bench-pilots"


def as_panda(script: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["docker", "exec", "-i", SUBMIT, "runuser", "-u", "panda", "--", "sh", "-c", script],
        input=stdin,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{script}: {proc.stderr or proc.stdout}")
    return proc.stdout


def factory(host: str, action: str) -> None:
    """The scenario's own factory would share the schedd and the site: off for the run."""
    subprocess.run(["docker", "exec", host, "systemctl", action, "panda-autopilot"], check=True)


def description(pilots: int, *, hold: bool = False) -> str:
    queue = QueueConfig("BENCH", f"condor {SITE}@{SITE} {SITE}.mol.panda.test:9618")
    config = FactoryConfig(
        instance="bench", server="https://unused", pilot_url="https://unused/pilot.tar.gz",
        queues=(queue,), work_dir=WORK,
    )  # fmt: skip
    code = PilotCode("https://unused/pilot-0.tar.gz", "0" * 64)  # the executable is /bin/true
    text = submit_description(config, queue, pilots, code)
    lines = [
        "executable = /bin/true" if line.startswith("executable") else line
        for line in text.splitlines()
        if not line.startswith(("arguments", "output", "error"))
    ]
    if hold:
        lines.insert(-1, "hold = True")
    return "\n".join(lines) + "\n"


def fill_queue(size: int) -> tuple[float, float, int, float]:
    """Queue ``size`` held pilots; seconds to submit, seconds of one factory query, the
    pilots it counted, and the schedd's resident memory in MB."""
    batch = 5000
    as_panda(f"cat > {WORK}/held.sub", stdin=description(batch, hold=True))
    start = time.monotonic()
    for _ in range(size // batch):
        as_panda(f"cd {WORK} && condor_submit -terse held.sub >/dev/null")
    submit = time.monotonic() - start
    start = time.monotonic()
    out = as_panda(
        "condor_q -constraint 'PandaFactory == \"bench\"' -af PandaQueue JobStatus ClusterId ProcId"
    )
    query = time.monotonic() - start
    counted = sum(1 for line in out.splitlines() if line.strip())
    rss = as_panda("ps -C condor_schedd -o rss= | head -1").strip()
    return submit, query, counted, int(rss or 0) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pilots", type=int, default=1000)
    parser.add_argument("--queue-size", type=int, default=50000, help="0 skips the phase")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait, at most")
    add_scenario_options(parser)
    args = parser.parse_args()

    bring_up(SCENARIO, args.reuse)
    factory(SUBMIT, "stop")
    try:
        as_panda(f"rm -rf {WORK} && mkdir -p {WORK}/logs/BENCH")
        as_panda(f"cat > {WORK}/bench.sub", stdin=description(args.pilots))
        start = time.monotonic()
        as_panda(f"cd {WORK} && condor_submit -terse bench.sub")
        submitted = time.monotonic() - start
        handed, deadline = 0, start + args.timeout
        while time.monotonic() < deadline:
            out = as_panda("condor_q -constraint 'PandaFactory == \"bench\"' -af GridJobId")
            left = [line for line in out.splitlines() if line.strip()]
            handed = sum(1 for line in left if line != "undefined") + (args.pilots - len(left))
            if handed >= args.pilots:
                break
            time.sleep(1)
        handover = time.monotonic() - start
        as_panda("condor_rm -constraint 'PandaFactory == \"bench\"' || true")
        if args.queue_size:
            fill_submit, query, counted, rss = fill_queue(args.queue_size)
            as_panda("condor_rm -constraint 'PandaFactory == \"bench\"' || true")
    finally:
        factory(SUBMIT, "start")
        tear_down(SCENARIO, args)

    print(f"\nPilot submission into one site ({args.pilots} Condor-G pilots, one cluster)")
    print(f"local submit (condor_submit):    {args.pilots / submitted:8.1f} pilots/s")
    print(
        f"handed to the site's schedd:     {handed / handover:8.1f} pilots/s "
        f"({handed} of {args.pilots} in {handover:.1f} s; aim >= 20/s)"
    )
    if args.queue_size:
        filled = args.queue_size // 5000 * 5000
        print(f"\nOne submit host holding a large queue ({filled} pilots, held)")
        print(
            f"submitted in:                    {fill_submit:8.1f} s "
            f"({filled / fill_submit:.0f} pilots/s)"
        )
        print(f"the factory's condor_q:          {query:8.2f} s, counted {counted}")
        print(f"condor_schedd resident memory:   {rss:8.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
