"""Days left on a certificate (a host certificate, the pilots' credential), and on the
CRLs of a grid CA directory (<hash>.r0): an expired CRL refuses every certificate of its
CA, the facility's own included."""

from __future__ import annotations

import argparse
import glob
import os
import ssl
import subprocess
import time

from pandafacility.probes.plugin import CRITICAL, Perf, Result, below, worst


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cert", description=__doc__)
    p.add_argument("--file", action="append", default=[],
                   help="PEM file (its first certificate counts); repeat for several")  # fmt: skip
    p.add_argument("--warn", type=float, default=30.0, help="days")
    p.add_argument("--crit", type=float, default=7.0, help="days")
    p.add_argument("--crl-dir", action="append", default=[],
                   help="a CA directory whose CRLs (*.r0) must be current")  # fmt: skip
    p.add_argument("--crl-warn", type=float, default=7.0, help="days")
    p.add_argument("--crl-crit", type=float, default=1.0, help="days")
    return p


def not_after(path: str, kind: str = "x509") -> float:
    """A certificate's expiry, or a CRL's next update, as a Unix time (openssl reads
    it, as on every host)."""
    option = "-enddate" if kind == "x509" else "-nextupdate"
    out = subprocess.run(
        ["openssl", kind, "-noout", option, "-in", path],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return ssl.cert_time_to_seconds(out.strip().split("=", 1)[1])


def one(path: str, warn: float, crit: float, kind: str = "x509") -> Result:
    try:
        expires = not_after(path, kind)
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        return Result(CRITICAL, f"{path}: nothing read ({exc})")
    days = (expires - time.time()) / 86400
    perf = [Perf(f"{path}_days_left", round(days, 1), "", warn, crit)]
    when = time.strftime("%Y-%m-%d", time.gmtime(expires))
    if days <= 0:
        return Result(CRITICAL, f"{path} expired on {when}", perf)
    return Result(below(days, warn, crit), f"{path}: {days:.0f} days left (until {when})", perf)


def check(args: argparse.Namespace) -> Result:
    crls = sorted(f for d in args.crl_dir for f in glob.glob(os.path.join(d, "*.r0")))
    results = [one(path, args.warn, args.crit) for path in args.file]
    results += [one(path, args.crl_warn, args.crl_crit, "crl") for path in crls]
    if not results:
        return Result(CRITICAL, "no certificate or CRL to check")
    return Result(
        worst([r.status for r in results]),
        ", ".join(r.text for r in results),
        [p for r in results for p in r.perf],
    )
