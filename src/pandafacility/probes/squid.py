"""The pilot cache serves from memory: Squid's hit ratio over the last 5 minutes, from
its cache manager (mgr:5min) on the loopback address. An idle cache is not judged."""

from __future__ import annotations

import argparse
import re
import urllib.request

from pandafacility.probes.plugin import OK, Perf, Result, below

_RATE = re.compile(r"^client_http\.(requests|hits)\s*=\s*([\d.]+)/sec", re.MULTILINE)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="squid", description=__doc__)
    p.add_argument("--url", default="http://127.0.0.1/squid-internal-mgr/5min")
    p.add_argument("--warn", type=float, default=80.0, help="percent hits")
    p.add_argument("--crit", type=float, default=50.0, help="percent hits")
    idle = "below this many requests in 5 minutes, the ratio is not judged"
    p.add_argument("--min-requests", type=int, default=20, help=idle)
    return p


def parse(five_min: str) -> tuple[float, float]:
    """(requests, hits) in the last 5 minutes, from the per-second rates."""
    rates = {name: float(value) * 300 for name, value in _RATE.findall(five_min)}
    if set(rates) != {"requests", "hits"}:
        raise ValueError("no client_http rates in Squid's 5min page")
    return rates["requests"], rates["hits"]


def check(args: argparse.Namespace) -> Result:
    with urllib.request.urlopen(args.url, timeout=10) as answer:
        requests, hits = parse(answer.read().decode("utf-8", "replace"))
    if requests < args.min_requests:
        perf = [Perf("requests_5min", round(requests), "", minimum=0)]
        return Result(OK, f"{requests:.0f} requests in 5 minutes, too few to judge", perf)
    ratio = 100.0 * hits / requests
    perf = [
        Perf("hits_5min", round(ratio, 1), "%", args.warn, args.crit, 0, 100),
        Perf("requests_5min", round(requests), "", minimum=0),
    ]
    return Result(below(ratio, args.warn, args.crit), f"{ratio:.1f}% hits over 5 minutes", perf)
