#!/usr/bin/env python3
"""Benchmark of the load balancer tier: the cost of the VIP and the requests lost
during each fault, in one run.

Uses the molecule scenario `loadbalancer` (two load balancers, three Apache/mod_wsgi
backends on a docker network of its own):
  1. creates and converges it;
  2. sends the same load (tests/lib/loadgen.py, keep-alive, TLS verified) straight to one
     backend and through the VIP, in alternating rounds after a warm-up, and prints the
     median round's requests/s, p50/p99 and the ratio;
  3. runs the scenario's side effect - a stopped backend, a backend answering 503, a
     rolling update - each under 2000+ requests from 20 clients, and prints the failed
     requests of each and its longest gap (the VIP holder killed outright, and the
     failover gap, are bench/faults.py's);
  4. destroys the scenario (unless --keep).
Prints figures only; exits non-zero when a step fails, never on a figure.

    .venv/bin/python bench/loadbalancer.py [--requests 4000] [--concurrency 20] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lib"))

import lab
import loadgen
from scenario import ephemeral_ca, molecule
from sitecheck import ROOT

SCENARIO = "loadbalancer"
RESULTS = ROOT / ".cache" / "loadbalancer"
VIP, VIP_NAME, PORT = "172.28.40.100", "pandaserver.mol.panda.test", 25443
BACKEND, BACKEND_NAME = "172.28.40.21", "mol-be1.mol.panda.test"
FAULTS = [
    ("fault_stop_backend", "a backend stopped"),
    ("fault_busy_backend", "a backend answering 503"),
    ("fault_rolling_update", "a rolling update"),
]


def measure(url: str, name: str, ca: str, requests: int, concurrency: int) -> dict:
    return loadgen.run(
        loadgen.Config(
            url,
            requests=requests,
            concurrency=concurrency,
            timeout=5,
            deadline=300,
            cafile=ca,
            server_name=name,
        )
    )


def compare(ca: str, requests: int, concurrency: int, rounds: int) -> tuple[dict, dict]:
    """Direct and VIP runs alternate (after a warm-up of both: mod_wsgi loads the app on
    first use), so that both see the same machine; each path's median round by req/s."""
    paths = [
        (f"https://{BACKEND}:{PORT}/work", BACKEND_NAME),
        (f"https://{VIP}:{PORT}/work", VIP_NAME),
    ]
    for url, name in paths:
        measure(url, name, ca, 1000, concurrency)
    runs: list[list[dict]] = [[], []]
    for _ in range(rounds):
        for index, (url, name) in enumerate(paths):
            runs[index].append(measure(url, name, ca, requests, concurrency))
    direct, via = (sorted(r, key=lambda x: x["rps"])[len(r) // 2] for r in runs)
    return direct, via


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per path")
    parser.add_argument("--keep", action="store_true", help="leave the scenario up")
    args = parser.parse_args()

    lab.ensure_docker()
    lab.ensure_images()
    molecule(SCENARIO, "destroy")
    molecule(SCENARIO, "create")
    molecule(SCENARIO, "converge")
    try:
        ca = str(ephemeral_ca(SCENARIO))
        direct = measure(
            f"https://{BACKEND}:{PORT}/work", BACKEND_NAME, ca, args.requests, args.concurrency
        )
        via = measure(f"https://{VIP}:{PORT}/work", VIP_NAME, ca, args.requests, args.concurrency)
        for stale in RESULTS.glob("fault_*.json"):
            stale.unlink()
        molecule(SCENARIO, "side-effect")
        faults = {name: json.loads((RESULTS / f"{name}.json").read_text()) for name, _ in FAULTS}
    finally:
        if not args.keep:
            molecule(SCENARIO, "destroy")

    print(
        f"\nLoad balancer tier ({args.requests} requests, "
        f"{args.concurrency} keep-alive clients, TLS)"
    )
    print(f"{'path':<28}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}")
    for label, r in (("straight to one backend", direct), ("through the VIP (3 backends)", via)):
        print(
            f"{label:<28}{r['rps']:>9}{r['latency_p50_ms']:>9}{r['latency_p99_ms']:>9}{r['failed']:>8}"
        )
    print(f"ratio VIP / direct, req/s: {via['rps'] / direct['rps']:.2f} (aim >= 0.9)")
    print(
        "  (median of alternating rounds; client, load balancer and backends share this "
        f"machine's {os.cpu_count()} cores, and the VIP path does TLS twice)"
    )
    print(f"p99 added by the VIP: {via['latency_p99_ms'] - direct['latency_p99_ms']:.2f} ms")
    print("\nFaults under load (20 clients through the VIP)")
    for name, label in FAULTS:
        r = faults[name]
        print(
            f"  {label:<26} {r['failed']:>4} failed of {r['requests']}, longest gap {r['gap_s']} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
