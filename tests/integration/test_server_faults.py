"""The PanDA server when its database goes away, on the test MariaDB: a restart costs
no request (each request's connection is checked before use), and a paused database
makes a request answer 503 with Retry-After, not hang, after which the server recovers
by itself. The load balancer's health check takes a server out only when its own path
to the database is broken."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import threading
from wsgiref.util import setup_testing_defaults

import pytest

from pandafacility.db import DbSettings
from pandafacility.server import Server, ServerConfig

CONTAINER = "panda-testdb"  # tests/lib/testdb.py
PATH = "/api/v1/statistics/activated"


@pytest.fixture
def server(testdb_settings, clean_db):
    timeouts = {"read_timeout": 2, "write_timeout": 2, "connect_timeout": 2}
    return Server(ServerConfig(database=DbSettings.from_dict({**testdb_settings, **timeouts})))


def get(server) -> tuple[int, dict, dict]:
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD="GET", PATH_INFO=PATH, CONTENT_LENGTH="0")
    environ["wsgi.input"] = io.BytesIO(b"")
    seen: dict = {}

    def start_response(status, headers):
        seen.update(status=int(status.split()[0]), headers=dict(headers))

    body = b"".join(server(environ, start_response))
    return seen["status"], seen["headers"], json.loads(body)


def docker(*args: str, check: bool = True) -> None:
    subprocess.run(["docker", *args], check=check, capture_output=True)


def unpause() -> None:
    docker("unpause", CONTAINER, check=False)  # once paused, whoever comes first


def test_a_database_restart_costs_no_request(server):
    assert get(server)[0] == 200  # the thread now holds a connection
    docker("exec", CONTAINER, "systemctl", "restart", "mariadb")
    status, _, answer = get(server)
    assert status == 200 and answer["success"], answer


def test_a_paused_database_answers_503_then_recovers(server):
    assert get(server)[0] == 200
    docker("pause", CONTAINER)
    # Let go after 20 s whatever happens: a request that hung until then would answer
    # 200, so a 503 shows it gave up while the database was still paused.
    resume = threading.Timer(20, unpause)
    resume.start()
    try:
        status, headers, answer = get(server)
    finally:
        resume.cancel()
        unpause()
    assert status == 503, answer
    assert headers["Retry-After"] == "5" and answer["success"] is False
    assert "database is unavailable" in answer["message"]
    status, _, answer = get(server)
    assert status == 200 and answer["success"], answer


def health(settings: DbSettings, witnesses: tuple[str, ...] = ()) -> tuple[int, dict]:
    # A generous bound: a loaded test machine must not turn "ok" into "unavailable".
    config = ServerConfig(database=settings, database_witnesses=witnesses, health_timeout=2)
    server = Server(config)
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD="GET", PATH_INFO="/api/v1/system/health")
    environ["wsgi.input"] = io.BytesIO(b"")
    seen: dict = {}
    body = b"".join(server(environ, lambda s, h: seen.update(status=int(s.split()[0]))))
    return seen["status"], json.loads(body)["data"]


def test_health_takes_a_server_out_only_when_its_own_path_is_broken(testdb_settings):
    good = DbSettings.from_dict(testdb_settings)
    address = good.host
    assert health(good) == (200, {"database": "ok"})
    # Nothing answers on this port anywhere, primary or witness: this server's path.
    lost = dataclasses.replace(good, host="127.0.0.1", port=9)
    assert health(lost, (address,)) == (503, {"database": "unreachable from this server"})
    # The primary's daemon is away but a database host answers: away for every server.
    away = dataclasses.replace(good, host="127.0.0.1")
    assert health(away, (address,)) == (200, {"database": "unavailable to every server"})
    wrong = dataclasses.replace(good, password="not the password")
    assert health(wrong) == (503, {"database": "refuses this server's account"})
    docker("pause", CONTAINER)
    try:
        assert health(good) == (200, {"database": "unavailable to every server"})
    finally:
        unpause()
