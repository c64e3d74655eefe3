"""Re-activate or fail the jobs whose pilot stopped reporting.

    python3 -m pandafacility.reaper --config /etc/panda-facility/server.json --silent 1800 \
        --outage-gap 600

Run by a systemd timer on every server: several at once are safe, since each job is
taken under a row lock that the others skip. Prints what it did as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pandafacility.db import DbSettings, connect
from pandafacility.jobs import reap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the server's JSON settings")
    parser.add_argument(
        "--silent",
        type=int,
        default=1800,
        help="seconds without a heartbeat after which a job's pilot counts as gone",
    )
    parser.add_argument(
        "--outage-gap",
        type=int,
        default=600,
        help="seconds without any heartbeat or factory report that mean an outage",
    )
    args = parser.parse_args(argv)
    if args.silent < 60 or args.outage_gap < 60:
        parser.error("--silent and --outage-gap must be at least 60 seconds")
    settings = DbSettings.from_dict(json.loads(args.config.read_text())["database"])
    conn = connect(settings)
    try:
        outcome = reap(conn, args.silent, args.outage_gap)
    finally:
        conn.close()
    print(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main())
