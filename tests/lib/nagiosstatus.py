"""Reading Nagios as the tests do: each service's status from status.dat, and the
external command that forces every check of a host now."""

from __future__ import annotations

import re
import time

STATUS_FILE = "/var/lib/nagios4/status.dat"
COMMAND_FILE = "/var/lib/nagios4/rw/nagios.cmd"
STATES = {"0": "OK", "1": "WARNING", "2": "CRITICAL", "3": "UNKNOWN"}


def services(status_dat: str) -> dict[tuple[str, str], dict[str, str]]:
    """Each service's status block, by (host, service description)."""
    found = {}
    for block in re.findall(r"servicestatus \{\n(.*?)\n\s*\}", status_dat, re.S):
        fields = dict(line.strip().split("=", 1) for line in block.splitlines() if "=" in line)
        found[(fields["host_name"], fields["service_description"])] = fields
    return found


def not_ok(status: dict[tuple[str, str], dict[str, str]]) -> dict[str, str]:
    """host/service: state and output, of every service that is not OK."""
    return {
        f"{host}/{desc}": f"{STATES[s['current_state']]}: {s['plugin_output']}"
        for (host, desc), s in status.items()
        if s["current_state"] != "0"
    }


def force_checks(host_name: str) -> str:
    """The command line that checks every service of a host now (for COMMAND_FILE)."""
    now = int(time.time())
    return f"[{now}] SCHEDULE_FORCED_HOST_SVC_CHECKS;{host_name};{now}"
