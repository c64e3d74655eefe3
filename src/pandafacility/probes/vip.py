"""Where the virtual IPs are: on a load balancer, whether this host holds each VIP.
--expect held (the VRRP master), absent (a backup), or any (only report)."""

from __future__ import annotations

import argparse
import json
import subprocess

from pandafacility.probes.plugin import CRITICAL, OK, Perf, Result, worst


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vip", description=__doc__)
    p.add_argument("--address", action="append", required=True, help="repeat for several")
    p.add_argument("--expect", choices=["held", "absent", "any"], default="any")
    return p


def addresses(ip_json: str) -> set[str]:
    """Every address of `ip -j addr show`."""
    return {a["local"] for link in json.loads(ip_json) for a in link.get("addr_info", [])}


def check(args: argparse.Namespace) -> Result:
    out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True,
                         check=True, timeout=30).stdout  # fmt: skip
    mine = addresses(out)
    held = [a for a in args.address if a in mine]
    wrong = {"held": [a for a in args.address if a not in mine], "absent": held, "any": []}
    status = CRITICAL if wrong[args.expect] else OK
    text = f"holds {', '.join(held) or 'no VIP'}"
    if wrong[args.expect]:
        text += f"; expected {args.expect}: {', '.join(wrong[args.expect])}"
    return Result(worst([status]), text, [Perf("vips_held", len(held), "", minimum=0)])
