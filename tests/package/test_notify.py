"""Nagios notifications: the mail a contact gets, and the ticket posted as JSON."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pandafacility import notify

ARGS = ["--host", "srv1", "--service", "pandaserver isAlive", "--state", "CRITICAL",
        "--type", "PROBLEM", "--number", "4", "--output", "CRITICAL: refused"]  # fmt: skip


def test_mail_names_host_service_state_and_count():
    msg = notify.message(notify.parser().parse_args(["--to", "ops@localhost", *ARGS]))
    assert msg["Subject"] == "[panda] PROBLEM: srv1/pandaserver isAlive is CRITICAL"
    assert msg["To"] == "ops@localhost"
    body = msg.get_content()
    assert "number 4" in body and "CRITICAL: refused" in body


def test_host_notification_has_no_service():
    args = notify.parser().parse_args(["--to", "a@b", "--host", "db2", "--state", "DOWN",
                                       "--type", "PROBLEM"])  # fmt: skip
    assert notify.subject(args) == "[panda] PROBLEM: db2 is DOWN"


def test_ticket_is_posted_as_json():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/tickets"
        assert notify.main(["--url", url, *ARGS]) == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
    (t,) = received
    assert t["host"] == "srv1" and t["state"] == "CRITICAL" and t["number"] == "4"


def test_a_ticket_is_opened_once_and_closed_on_recovery():
    def wanted(*extra):
        return notify.wanted_as_ticket(notify.parser().parse_args(["--url", "http://x", *extra]))

    base = ["--host", "h", "--state", "CRITICAL"]
    assert wanted(*base, "--type", "PROBLEM", "--number", "1")
    assert not wanted(*base, "--type", "PROBLEM", "--number", "4")
    assert wanted(*base, "--type", "RECOVERY", "--number", "0")
    assert notify.main(["--ticket", "--url", "http://127.0.0.1:9/", *base, "--type", "PROBLEM",
                        "--number", "2"]) == 0  # fmt: skip
