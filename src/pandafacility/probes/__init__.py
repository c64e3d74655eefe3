"""Nagios plugins for every tier of the facility.

Each probe follows the Nagios plugin API, so Nagios, Icinga or Naemon can run it: one
line ``NAME STATUS: text | perfdata`` on stdout and exit code 0 (OK), 1 (WARNING),
2 (CRITICAL) or 3 (UNKNOWN).

    python3 -m pandafacility.probes <probe> [options]      # --help lists the probes
"""
