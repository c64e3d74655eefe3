"""Where the virtual IPs are: on a load balancer, that it holds the VIPs of the VRRP
groups whose top priority it has (--held) and none of the others (--absent). A VIP held
by a backup means its master lost it (a failover); a VIP missing from its master means
it has gone, or that another host took it."""

from __future__ import annotations

import argparse
import json
import subprocess

from pandafacility.probes.plugin import CRITICAL, OK, Perf, Result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vip", description=__doc__)
    p.add_argument("--held", action="append", default=[], metavar="ADDRESS",
                   help="a VIP this host should hold; repeat for several")  # fmt: skip
    p.add_argument("--absent", action="append", default=[], metavar="ADDRESS",
                   help="a VIP this host should not hold; repeat for several")  # fmt: skip
    return p


def addresses(ip_json: str) -> set[str]:
    """Every address of `ip -j addr show`."""
    return {a["local"] for link in json.loads(ip_json) for a in link.get("addr_info", [])}


def check(args: argparse.Namespace) -> Result:
    out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True,
                         check=True, timeout=30).stdout  # fmt: skip
    mine = addresses(out)
    args.held, args.absent = list(dict.fromkeys(args.held)), list(dict.fromkeys(args.absent))
    held = [a for a in args.held + args.absent if a in mine]
    missing = [a for a in args.held if a not in mine]
    extra = [a for a in args.absent if a in mine]
    text = f"holds {', '.join(held) or 'no VIP'}"
    if missing:
        text += f"; missing: {', '.join(missing)}"
    if extra:
        text += f"; held as backup: {', '.join(extra)}"
    status = CRITICAL if missing or extra else OK
    return Result(status, text, [Perf("vips_held", len(held), "", minimum=0)])
