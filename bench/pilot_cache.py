#!/usr/bin/env python3
"""Benchmark of the pilot code service: downloads/s of the pilot tarball from the Squid
memory cache against the same downloads straight from the origin, in one run.

Uses the molecule scenario `pilots`, its cache host (git origin, Apache on loopback,
Squid in front):
  1. creates and converges it (or, with --reuse, takes it as it stands);
  2. pushes a commit that makes the tarball about --size-kb (pilot3's is ~1.5 MB);
  3. runs tests/lib/loadgen.py inside the container (the origin listens on loopback only)
     against Squid and against the origin, alternating rounds, same client, same file;
  4. prints the median round of each, the ratio, and how many requests reached the
     origin while the cache served its downloads;
  5. destroys the scenario (unless --keep or --reuse).
Prints figures only; exits non-zero when a step fails, never on a figure.

    .venv/bin/python bench/pilot_cache.py [--requests 2000] [--concurrency 10] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lib"))

from scenario import ROOT, add_scenario_options, bring_up, tear_down

SCENARIO = "pilots"
HOST = "mol-pil-cache1"
CACHE = "http://127.0.0.1/pilot/pilot.tar.gz"
ORIGIN = "http://127.0.0.1:8081/pilot/pilot.tar.gz"
ORIGIN_LOG = "/var/log/apache2/pilot-origin-access.log"
LOADGEN = "/var/tmp/loadgen.py"


def in_host(*cmd: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["docker", "exec", "-i", HOST, *cmd], input=stdin, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: {proc.stderr or proc.stdout}")
    return proc.stdout


def push_payload(size_kb: int) -> int:
    """A commit with ~size_kb of incompressible files; returns the tarball's size."""
    script = (
        "set -e; d=$(mktemp -d); cd $d; git clone -q /srv/pilot-code/pilot.git p; cd p;"
        f" head -c {size_kb * 1024} /dev/urandom | base64 > payload.txt; git add -A;"
        " git -c user.name=bench -c user.email=bench@localhost commit -q -m bench;"
        " git push -q origin main; rm -rf $d"
    )
    in_host("runuser", "-u", "panda", "--", "sh", "-c", script)
    return int(in_host("stat", "-c", "%s", "/srv/pilot-code/www/pilot.tar.gz"))


def origin_requests() -> int:
    return int(in_host("sh", "-c", f"grep -c 'GET /pilot/' {ORIGIN_LOG} || true") or 0)


def measure(url: str, requests: int, concurrency: int) -> dict:
    out = in_host(
        "python3", LOADGEN, url, "--requests", str(requests),
        "--concurrency", str(concurrency), "--timeout", "10", "--deadline", "300",
    )  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-kb", type=int, default=1500, help="tarball size to aim at")
    add_scenario_options(parser)
    args = parser.parse_args()

    bring_up(SCENARIO, args.reuse)
    try:
        # Not docker cp: /tmp in the container is systemd's tmpfs, which docker cp misses.
        loadgen = (ROOT / "tests" / "lib" / "loadgen.py").read_text()
        in_host("sh", "-c", f"cat > {LOADGEN}", stdin=loadgen)
        size = push_payload(args.size_kb)
        measure(CACHE, 50, 2)  # the first download after the push fills the cache
        runs: dict[str, list[dict]] = {"cache": [], "origin": []}
        cache_origin_hits = 0
        for _ in range(args.rounds):
            before = origin_requests()
            runs["cache"].append(measure(CACHE, args.requests, args.concurrency))
            cache_origin_hits += origin_requests() - before
            runs["origin"].append(measure(ORIGIN, args.requests, args.concurrency))
    finally:
        tear_down(SCENARIO, args)

    best = {k: sorted(r, key=lambda x: x["rps"])[len(r) // 2] for k, r in runs.items()}
    print(
        f"\nPilot code downloads ({size / 1024:.0f} KiB tarball, {args.requests} requests, "
        f"{args.concurrency} keep-alive clients on the cache host; median of {args.rounds})"
    )
    print(f"{'from':<24}{'downloads/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}{'MB/s':>8}")
    for label, key in (("Squid memory cache", "cache"), ("origin (Apache, disk)", "origin")):
        r = best[key]
        mbs = r["rps"] * size / 1e6
        print(
            f"{label:<24}{r['rps']:>12}{r['latency_p50_ms']:>9}{r['latency_p99_ms']:>9}"
            f"{r['failed']:>8}{mbs:>8.0f}"
        )
    print(f"ratio cache / origin, downloads/s: {best['cache']['rps'] / best['origin']['rps']:.2f}")
    total = args.rounds * args.requests
    print(f"requests that reached the origin during {total} cache downloads: {cache_origin_hits}")
    print(
        f"  (client, Squid and Apache share this machine's {os.cpu_count()} cores; the origin "
        "here serves a prebuilt file from the page cache, a real remote origin is slower)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
