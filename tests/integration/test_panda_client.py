"""The real panda-client from PyPI (2.2.0) submits a job to our server, reads its status
and kills it, over TLS with a client certificate, against a real MariaDB (the server
in-process on loopback: tests/integration/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CLIENT = r"""
import json, sys
from pandaclient import Client
from pandaclient.JobSpec import JobSpec

job = JobSpec()
job.computingSite = "SITE_A"
job.jobName = "client-test-job"
job.transformation = "/bin/echo"
job.jobParameters = "hello"
job.prodSourceLabel = "user"  # a user's job: managed is production's
status, out = Client.submitJobs([job])
result = {"submit": [status, out]}
panda_id = out[0][0]
status, found = Client.getJobStatus([panda_id, 987654321])
result["status"] = [status, [None if j is None else [j.PandaID, j.jobStatus, j.computingSite,
                                                     j.jobName, str(j.creationTime)]
                             for j in found]]
result["kill"] = list(Client.killJobs([panda_id]))
status, found = Client.getJobStatus([panda_id])
result["after_kill"] = found[0].jobStatus
print(json.dumps(result))
"""


def test_panda_client_submits_reads_status_and_kills(https_server, pki, tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PANDA_URL_SSL": https_server,
        "PANDA_URL": https_server,
        "PANDACACHE_URL": https_server,
        "PANDA_BEHIND_REAL_LB": "1",
        "X509_USER_PROXY": str(pki["user"]),
        "PANDA_CONFIG_ROOT": str(tmp_path / ".pathena"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    status, out = result["submit"]
    assert status == 0 and out[0][0] > 0 and out[0][2] == "client-test-job", result
    status, found = result["status"]
    assert status == 0 and found[1] is None, result
    assert found[0][:4] == [out[0][0], "activated", "SITE_A", "client-test-job"], result
    assert found[0][4].startswith("20"), result  # creationTime came back as a datetime
    assert result["kill"] == [0, [True]], result
    assert result["after_kill"] == "cancelled", result
