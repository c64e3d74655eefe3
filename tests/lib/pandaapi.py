"""The PanDA server's JSON API as the tests and benchmarks call it: over one keep-alive
HTTPS connection to an address, the certificate verified for the service's name (the
lab's and the scenarios' names are in no DNS the controller uses)."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pandafacility.jobspec import JOB_ATTRIBUTES


def context(ca: Path, cert: Path | None = None) -> ssl.SSLContext:
    """Verifies servers against ``ca``; presents ``cert`` (certificate and key) if given."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert:
        ctx.load_cert_chain(str(cert))
    return ctx


class Session:
    """POSTs JSON to the server at ``address``, whose certificate must name ``name``."""

    def __init__(self, address: str, name: str, port: int, ctx: ssl.SSLContext) -> None:
        class Connection(http.client.HTTPSConnection):
            def connect(self) -> None:
                sock = socket.create_connection((address, port), self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.sock = ctx.wrap_socket(sock, server_hostname=self.host)

        self.conn = Connection(name, port, timeout=30, context=ctx)
        self.dropped: list[str] = []  # polls of wait_for that lost their connection

    def post(self, path: str, body: dict) -> dict:
        payload = json.dumps(body)
        reused = self.conn.sock is not None
        try:
            answer = self._exchange(path, payload)
        except (
            http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError
        ):  # fmt: skip
            # A kept-alive client connection that HAProxy or Apache closed while idle
            # (its keep-alive timeout, a reload; the TLS layer may be the first to tell):
            # send again on a new one, as browsers do. Once, and never for the first
            # request of a connection: HAProxy sends that one on a server connection of
            # its own (http-reuse safe), so it is answered.
            if not reused:
                raise
            self.conn.close()
            answer = self._exchange(path, payload)
        data = json.loads(answer.read())
        if answer.status != 200:
            raise RuntimeError(f"{path}: HTTP {answer.status} {data}")
        return data

    def _exchange(self, path: str, payload: str) -> http.client.HTTPResponse:
        self.conn.request("POST", path, payload, {"Content-Type": "application/json"})
        return self.conn.getresponse()

    def submit(self, jobs: list[dict]) -> list[int]:
        """Submit jobs given as {attribute: value}; their PanDA IDs."""
        rows = [[job.get(a, "NULL") for a in JOB_ATTRIBUTES] + [[]] for job in jobs]
        answer = self.post("/api/v1/job/submit", {"jobs": json.dumps(rows)})
        if not answer["success"]:
            raise RuntimeError(f"submit refused: {answer}")
        return [row[0] for row in answer["data"]]

    def states(self, ids: list[int]) -> list[str]:
        return self.post("/api/v1/job/get_status", {"job_ids": ids})["data"]

    def wait_for(self, ids: list[int], state: str, timeout: float) -> list[str]:
        """Poll until every job is in ``state`` or ``timeout`` seconds pass; the states.
        A status query only reads, so a poll whose connection is dropped is noted in
        ``dropped`` and polled again; once the time is up the drop is raised."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = self.states(ids)
            except (ConnectionError, TimeoutError) as exc:
                self.dropped.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}")
                if time.monotonic() > deadline:
                    raise
            else:
                if all(s == state for s in states) or time.monotonic() > deadline:
                    return states
            self.conn.close()  # the server drops idle keep-alive connections
            time.sleep(5)
