"""The tests' PanDA API client sends a request again, once, when a kept-alive connection
is closed without an answer (HAProxy's http-reuse safe contract), and never on a fresh
connection."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import pandaapi
import testpki


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        with server.lock:
            server.requests.append((self.client_address[1], json.loads(body)))
            drop = server.drops > 0
            server.drops -= drop
        if drop:  # as a load balancer whose backend dropped the idle connection
            self.close_connection = True
            return
        answer = json.dumps({"success": True, "data": ["finished"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def api(tmp_path):
    ca = testpki.issue("/DC=test/CN=Test CA", ca=True)
    cert, key = testpki.issue("/DC=test/CN=server.test", ca, sans=("server.test",))
    (tmp_path / "ca.crt").write_bytes(testpki.pem(ca[0]))
    (tmp_path / "host.pem").write_bytes(testpki.pem(cert) + testpki.pem(key))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "host.pem")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.lock, httpd.requests, httpd.drops = threading.Lock(), [], 0
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    session = pandaapi.Session(
        "127.0.0.1", "server.test", httpd.server_address[1], pandaapi.context(tmp_path / "ca.crt")
    )
    yield httpd, session
    session.conn.close()
    httpd.shutdown()
    httpd.server_close()
    thread.join(2)


def test_a_request_dropped_on_a_kept_alive_connection_is_sent_again(api):
    httpd, session = api
    assert session.states([1]) == ["finished"]
    httpd.drops = 1
    assert session.states([2]) == ["finished"]
    ports = [port for port, _ in httpd.requests]
    bodies = [body for _, body in httpd.requests]
    assert bodies == [{"job_ids": [1]}, {"job_ids": [2]}, {"job_ids": [2]}]
    assert ports[0] == ports[1] != ports[2]  # the resend went over a new connection


def test_a_kept_alive_connection_closed_under_tls_is_sent_again(api, monkeypatch):
    """The load balancer closed an idle kept-alive connection, and the TLS layer is the
    first to say so (SSLEOFError while sending): the request goes again, once."""
    _, session = api
    assert session.states([1]) == ["finished"]
    real, calls = session._exchange, []

    def exchange(path: str, payload: str):
        calls.append(path)
        if len(calls) == 1:
            raise ssl.SSLEOFError("EOF occurred in violation of protocol")
        return real(path, payload)

    monkeypatch.setattr(session, "_exchange", exchange)
    assert session.states([2]) == ["finished"] and len(calls) == 2


def test_a_dropped_first_request_is_not_sent_again(api):
    httpd, session = api
    httpd.drops = 1
    with pytest.raises(http.client.RemoteDisconnected):
        session.states([1])
    assert len(httpd.requests) == 1


def test_a_request_is_sent_again_only_once(api):
    httpd, session = api
    session.states([1])
    httpd.drops = 2
    with pytest.raises(http.client.RemoteDisconnected):
        session.states([2])
    assert len(httpd.requests) == 3


def test_waiting_polls_again_after_a_dropped_poll(api, monkeypatch):
    """A status poll on a fresh connection that the load balancer closes unanswered is
    noted and polled again (the query only reads); the wait still ends in the state."""
    httpd, session = api
    monkeypatch.setattr(pandaapi.time, "sleep", lambda s: None)
    httpd.drops = 1
    assert session.wait_for([7], "finished", 60) == ["finished"]
    assert len(httpd.requests) == 2 and len(session.dropped) == 1
    assert "RemoteDisconnected" in session.dropped[0]


def test_a_drop_after_the_deadline_is_raised(api, monkeypatch):
    httpd, session = api
    monkeypatch.setattr(pandaapi.time, "sleep", lambda s: None)
    httpd.drops = 1
    with pytest.raises(http.client.RemoteDisconnected):
        session.wait_for([7], "finished", -1)
