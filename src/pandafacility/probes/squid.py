"""The pilot cache serves from memory: Squid's hit ratio over the last 5 minutes, from its
cache manager (mgr:info) on the loopback address."""

from __future__ import annotations

import argparse
import re
import urllib.request

from pandafacility.probes.plugin import OK, Perf, Result, below

_HITS = re.compile(r"Hits as % of all requests:\s*5min:\s*([\d.]+)%")
_REQUESTS = re.compile(r"Number of HTTP requests received:\s*(\d+)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="squid", description=__doc__)
    p.add_argument("--url", default="http://127.0.0.1/squid-internal-mgr/info")
    p.add_argument("--warn", type=float, default=80.0, help="percent hits")
    p.add_argument("--crit", type=float, default=50.0, help="percent hits")
    p.add_argument("--min-requests", type=int, default=20,
                   help="below this many requests in all, the ratio is not judged")  # fmt: skip
    return p


def parse(info: str) -> tuple[float, int]:
    """(hit ratio over 5 minutes in percent, requests since start)."""
    hits, requests = _HITS.search(info), _REQUESTS.search(info)
    if not hits or not requests:
        raise ValueError("no hit ratio in Squid's info page")
    return float(hits.group(1)), int(requests.group(1))


def check(args: argparse.Namespace) -> Result:
    with urllib.request.urlopen(args.url, timeout=10) as answer:
        ratio, requests = parse(answer.read().decode("utf-8", "replace"))
    perf = [
        Perf("hits_5min", ratio, "%", args.warn, args.crit, 0, 100),
        Perf("requests", requests, "c"),
    ]
    if requests < args.min_requests:
        return Result(OK, f"{requests} requests so far, too few to judge the hit ratio", perf)
    return Result(below(ratio, args.warn, args.crit), f"{ratio:.1f}% hits over 5 minutes", perf)
