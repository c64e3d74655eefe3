"""The tests' reader of Nagios' status.dat (tests/lib/nagiosstatus.py)."""

from __future__ import annotations

import nagiosstatus

STATUS_DAT = """\
info {
\tcreated=1763870000
\t}

hoststatus {
\thost_name=db1
\tcurrent_state=0
\t}

servicestatus {
\thost_name=db1
\tservice_description=disk
\tcurrent_state=0
\tplugin_output=DISK OK: / 26% used
\tlast_check=1763870001
\t}

servicestatus {
\thost_name=db2
\tservice_description=replication
\tcurrent_state=2
\tplugin_output=REPLICA CRITICAL: SQL thread No; a=b
\tlast_check=1763870002
\t}
"""


def test_services_are_read_by_host_and_description():
    status = nagiosstatus.services(STATUS_DAT)
    assert set(status) == {("db1", "disk"), ("db2", "replication")}
    assert status[("db2", "replication")]["plugin_output"] == "REPLICA CRITICAL: SQL thread No; a=b"
    assert nagiosstatus.not_ok(status) == {
        "db2/replication": "CRITICAL: REPLICA CRITICAL: SQL thread No; a=b"
    }


def test_forced_check_command():
    line = nagiosstatus.force_checks("srv1")
    stamp, rest = line[1:].split("] ")
    assert rest == f"SCHEDULE_FORCED_HOST_SVC_CHECKS;srv1;{stamp}"
