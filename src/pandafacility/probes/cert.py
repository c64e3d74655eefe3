"""Days left on a certificate: a host certificate, or the pilots' credential."""

from __future__ import annotations

import argparse
import ssl
import subprocess
import time

from pandafacility.probes.plugin import CRITICAL, Perf, Result, below, worst


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cert", description=__doc__)
    p.add_argument("--file", action="append", required=True,
                   help="PEM file (its first certificate counts); repeat for several")  # fmt: skip
    p.add_argument("--warn", type=float, default=30.0, help="days")
    p.add_argument("--crit", type=float, default=7.0, help="days")
    return p


def not_after(path: str) -> float:
    """The certificate's expiry as a Unix time (openssl reads it, as on every host)."""
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-enddate", "-in", path],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return ssl.cert_time_to_seconds(out.strip().split("=", 1)[1])


def one(path: str, warn: float, crit: float) -> Result:
    try:
        expires = not_after(path)
    except (OSError, subprocess.CalledProcessError) as exc:
        return Result(CRITICAL, f"{path}: no certificate read ({exc})")
    days = (expires - time.time()) / 86400
    perf = [Perf(f"{path}_days_left", round(days, 1), "", warn, crit)]
    when = time.strftime("%Y-%m-%d", time.gmtime(expires))
    if days <= 0:
        return Result(CRITICAL, f"{path} expired on {when}", perf)
    return Result(below(days, warn, crit), f"{path}: {days:.0f} days left (until {when})", perf)


def check(args: argparse.Namespace) -> Result:
    results = [one(path, args.warn, args.crit) for path in args.file]
    return Result(
        worst([r.status for r in results]),
        ", ".join(r.text for r in results),
        [p for r in results for p in r.perf],
    )
