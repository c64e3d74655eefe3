"""Nagios notifications: a mail to a contact, or a ticket by a JSON POST to a ticket
system. Nagios calls it with its macros as arguments (see roles/monitoring).

    python3 -m pandafacility.notify --to ops@example.org --host srv1 --service disk ...
    python3 -m pandafacility.notify --url https://tickets.example.org/api ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request
from email.message import EmailMessage


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", help="mail address")
    where.add_argument("--url", help="ticket system endpoint (JSON POST)")
    p.add_argument("--host", required=True)
    p.add_argument("--service", default="", help="empty for a host notification")
    p.add_argument("--state", required=True)
    p.add_argument("--type", required=True, help="PROBLEM, RECOVERY, ...")
    p.add_argument("--number", default="1", help="how many times this problem was notified")
    p.add_argument("--output", default="")
    p.add_argument("--time", default="")
    p.add_argument("--sender", default="panda-nagios")
    only = "a ticket system: only the first notification and the recovery"
    p.add_argument("--ticket", action="store_true", help=only)
    return p


def subject(args: argparse.Namespace) -> str:
    what = f"{args.host}/{args.service}" if args.service else args.host
    return f"[panda] {args.type}: {what} is {args.state}"


def message(args: argparse.Namespace) -> EmailMessage:
    msg = EmailMessage()
    msg["To"], msg["From"], msg["Subject"] = args.to, args.sender, subject(args)
    msg.set_content(
        f"{subject(args)}\n\nHost: {args.host}\nService: {args.service or '-'}\n"
        f"State: {args.state}\nNotification: {args.type} number {args.number}\n"
        f"When: {args.time}\n\n{args.output}\n"
    )
    return msg


def wanted_as_ticket(args: argparse.Namespace) -> bool:
    return args.number == "1" or args.type == "RECOVERY"


def ticket(args: argparse.Namespace) -> dict[str, str]:
    return {
        "summary": subject(args), "host": args.host, "service": args.service,
        "state": args.state, "type": args.type, "number": args.number,
        "output": args.output, "time": args.time,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.ticket and not wanted_as_ticket(args):
        return 0  # a repeat or an escalation of an open problem: its ticket exists
    if args.to:
        subprocess.run(["/usr/sbin/sendmail", "-t", "-oi"], input=message(args).as_bytes(),
                       check=True, timeout=60)  # fmt: skip
        return 0
    request = urllib.request.Request(
        args.url, data=json.dumps(ticket(args)).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        return 0 if 200 <= answer.status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
