"""The real panda-client from PyPI (2.2.0) submits a job to our server, reads its status
and kills it, over TLS with a client certificate, against a real MariaDB.

The server is our WSGI application in a small threaded TLS server on loopback that
passes the verified client DN the way Apache's mod_ssl does (SSL_CLIENT_S_DN in the
/DC=.../CN=... form); the Apache deployment itself is the panda_server role's test.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import pytest

from pandafacility import migrate
from pandafacility.db import DbSettings, connect
from pandafacility.identity import canonical_dns
from pandafacility.server import Server, ServerConfig

testpki = pytest.importorskip("testpki")  # needs cryptography

USER_DN = "/DC=test/DC=panda/CN=Test User"

CLIENT = r"""
import json, sys
from pandaclient import Client
from pandaclient.JobSpec import JobSpec

job = JobSpec()
job.computingSite = "SITE_A"
job.jobName = "client-test-job"
job.transformation = "/bin/echo"
job.jobParameters = "hello"
job.prodSourceLabel = "managed"
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


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca = testpki.issue("/DC=test/CN=Test CA", ca=True)
    srv = testpki.issue("/DC=test/CN=localhost", ca, sans=("localhost", "127.0.0.1"))
    paths = {n: d / f"{n}.pem" for n in ("ca", "server", "server_key", "proxy")}
    paths["ca"].write_bytes(testpki.pem(ca[0]))
    paths["server"].write_bytes(testpki.pem(srv[0]))
    paths["server_key"].write_bytes(testpki.pem(srv[1]))
    # panda-client reads cert, key (and here the CA it trusts) from one file.
    testpki.user_pem(USER_DN, ca, paths["proxy"])
    return paths


class _Handler(WSGIRequestHandler):
    """Gives the application the verified client DN as mod_ssl would."""

    def get_environ(self) -> dict:
        environ = super().get_environ()
        cert = self.connection.getpeercert()
        if cert:
            rdns = [
                f"{'DC' if k == 'domainComponent' else 'CN'}={v}"
                for rdn in cert["subject"]
                for k, v in rdn
            ]
            environ.update(SSL_CLIENT_VERIFY="SUCCESS", SSL_CLIENT_S_DN="/" + "/".join(rdns))
        return environ

    def log_message(self, *args) -> None:
        pass


class _TLSServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@pytest.fixture(scope="module")
def https_server(pki, testdb_settings):
    settings = DbSettings.from_dict(testdb_settings)
    conn = connect(settings)
    migrate.migrate(conn)
    conn.close()
    app = Server(
        ServerConfig(
            database=settings,
            instance="client-test",
            production_dns=canonical_dns(["/DC=test/CN=pilot"]),
            queues={"SITE_A": {}},
        )
    )
    httpd = _TLSServer(("127.0.0.1", 0), _Handler)
    httpd.set_app(app)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"], pki["server_key"])
    context.load_verify_locations(pki["ca"])
    context.verify_mode = ssl.CERT_OPTIONAL
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_panda_client_submits_reads_status_and_kills(https_server, pki, tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PANDA_URL_SSL": https_server,
        "PANDA_URL": https_server,
        "PANDACACHE_URL": https_server,
        "PANDA_BEHIND_REAL_LB": "1",
        "X509_USER_PROXY": str(pki["proxy"]),
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
