"""Shared by the controller-side tests: paths, loading of the collection's plugins, the
throwaway MariaDB that the package's database tests use, and the PanDA services
in-process over TLS on loopback for the tests that drive them with real clients
(panda-client, the pilot): a throwaway CA, the server's certificate, user and pilot
credentials, and a small threaded TLS server that hands the application the verified
client DN the way Apache's mod_ssl does (SSL_CLIENT_S_DN in the /DC=.../CN=... form).
The Apache deployment itself is the roles' molecule test."""

from __future__ import annotations

import importlib.util
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from types import ModuleType
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "lib"))  # the test libraries
sys.path.insert(0, str(ROOT / "src"))


def load_plugin(kind: str, name: str) -> ModuleType:
    """Import plugins/<kind>/<name>.py the way Ansible would: as a plain module file."""
    path = ROOT / "plugins" / kind / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"facility_{kind}_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def testdb_settings() -> Iterator[dict]:
    """Connection settings of a fresh MariaDB (tests/lib/testdb.py), removed afterwards."""
    import testdb

    params = testdb.up()
    yield params
    testdb.down()


@pytest.fixture
def clean_db(testdb_settings) -> Iterator:
    """A connection to the test database with the schema current and no jobs in it."""
    from pandafacility import migrate
    from pandafacility.db import DbSettings, connect

    conn = connect(DbSettings.from_dict(testdb_settings))
    migrate.migrate(conn)
    with conn.cursor() as cur:
        for table in ("jobs", "job_states", "pilot_stats", "reaper_pulse", "worker_nodes",
                      "pilot_workers"):  # fmt: skip
            cur.execute(f"DELETE FROM {table}")
    conn.commit()
    yield conn
    conn.close()


USER_DN = "/DC=test/DC=panda/CN=Test User"
PILOT_DN = "/DC=test/DC=panda/CN=Test Pilot"
MONITOR_DN = "/DC=test/DC=panda/CN=Test Monitor"


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict[str, Path]:
    testpki = pytest.importorskip("testpki")  # needs cryptography
    d = tmp_path_factory.mktemp("pki")
    ca = testpki.issue("/DC=test/CN=Test CA", ca=True)
    srv = testpki.issue("/DC=test/CN=localhost", ca, sans=("localhost", "127.0.0.1"))
    names = ("ca", "server", "server_key", "user", "pilot", "monitor")
    paths = {n: d / f"{n}.pem" for n in names}
    paths["ca"].write_bytes(testpki.pem(ca[0]))
    paths["server"].write_bytes(testpki.pem(srv[0]))
    paths["server_key"].write_bytes(testpki.pem(srv[1]))
    # panda-client and the pilot read cert and key (and here the CA) from one file.
    testpki.user_pem(USER_DN, ca, paths["user"])
    testpki.user_pem(PILOT_DN, ca, paths["pilot"])
    testpki.user_pem(MONITOR_DN, ca, paths["monitor"])
    return paths


class _Handler(WSGIRequestHandler):
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


@pytest.fixture(scope="session")
def serve_tls(pki) -> Iterator[Callable[[Callable], str]]:
    """Call with a WSGI application: its https://127.0.0.1:<port> base URL."""
    servers: list[_TLSServer] = []

    def serve(app: Callable) -> str:
        httpd = _TLSServer(("127.0.0.1", 0), _Handler)
        httpd.set_app(app)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki["server"], pki["server_key"])
        context.load_verify_locations(pki["ca"])
        context.verify_mode = ssl.CERT_OPTIONAL
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"https://127.0.0.1:{httpd.server_address[1]}"

    yield serve
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def https_server(serve_tls, testdb_settings) -> str:
    """The PanDA server over the test database: PILOT_DN is production; SITE_A's
    pilots run payloads for at most a minute."""
    from pandafacility import migrate
    from pandafacility.db import DbSettings, connect
    from pandafacility.identity import canonical_dns
    from pandafacility.server import Server, ServerConfig

    settings = DbSettings.from_dict(testdb_settings)
    conn = connect(settings)
    migrate.migrate(conn)
    conn.close()
    app = Server(
        ServerConfig(
            database=settings,
            instance="in-process",
            production_dns=canonical_dns([PILOT_DN]),
            queues={"SITE_A": {"maxtime": 60}},
        )
    )
    return serve_tls(app)
