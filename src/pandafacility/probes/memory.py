"""Memory available to new work on this host (MemAvailable of /proc/meminfo)."""

from __future__ import annotations

import argparse

from pandafacility.probes.plugin import Perf, Result, below


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memory", description=__doc__)
    p.add_argument("--warn", type=float, default=10.0, help="percent available")
    p.add_argument("--crit", type=float, default=5.0, help="percent available")
    p.add_argument("--meminfo", default="/proc/meminfo", help=argparse.SUPPRESS)
    return p


def meminfo(text: str) -> dict[str, int]:
    """kB figures by name."""
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if rest.split():
            values[name] = int(rest.split()[0])
    return values


def check(args: argparse.Namespace) -> Result:
    with open(args.meminfo, encoding="ascii") as f:
        info = meminfo(f.read())
    total, available = info["MemTotal"], info["MemAvailable"]
    percent = 100.0 * available / total
    perf = [
        Perf("available", round(percent, 1), "%", args.warn, args.crit, 0, 100),
        Perf("available_bytes", available * 1024, "B", minimum=0, maximum=total * 1024),
    ]
    text = f"{percent:.1f}% of {total // 1024} MiB available"
    return Result(below(percent, args.warn, args.crit), text, perf)
