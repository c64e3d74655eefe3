"""python3 -m pandafacility.probes <probe> [options]: run one probe as a Nagios plugin."""

from __future__ import annotations

import importlib
import sys

from pandafacility.probes.plugin import UNKNOWN, run

PROBES = ["alive", "cert", "cleanup", "disk", "factory", "guard", "haproxy", "memory",
          "replica", "schedd", "squid", "vip"]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in PROBES:
        print(f"PROBE UNKNOWN: usage: python3 -m pandafacility.probes {{{','.join(PROBES)}}} ...")
        return UNKNOWN
    module = importlib.import_module(f"pandafacility.probes.{argv[0]}")
    return run(argv[0].upper(), module.parser(), module.check, argv[1:])


if __name__ == "__main__":
    sys.exit(main())
