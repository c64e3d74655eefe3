"""Operations on the converged lab, as the operators see them: one component of each
kind is broken (a server backend stopped, a replica's SQL thread stopped, a host
certificate about to expire, a schedd stopped, a disk filled past the threshold). The
matching alert reaches the operators' mailbox and the ticket mailbox, a problem that
lasts is notified again and reaches the second line, and each one clears (a RECOVERY
mail) once it is repaired; an operator acknowledges one in Nagios' web interface,
logging in with a certificate, and sees it there in the browser. Runs last:
test_site_operations.py saw every check OK first.

The lab checks every five minutes, so the test forces checks through Nagios' command
pipe, as an operator does after a repair; mail goes through Postfix on mon1."""

from __future__ import annotations

import base64
import contextlib
import http.cookiejar
import http.server
import mailbox
import re
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import nagiosstatus
import testpki
from labhosts import (
    ADDRESSES,
    CA_CERT,
    CA_KEY,
    DOMAIN,
    HOSTS,
    OPERATOR_DN,
    SHOTS,
    TLS,
    USER_DN,
    lab_host,
    run_ok,
)

NAGIOS = "mon1"
CERT = f"{TLS}/host.crt"
# host, Nagios service, how it is broken (None: below), how it is repaired
FAULTS = [
    ("srv2", "pandaserver isAlive", "systemctl stop apache2", "systemctl start apache2"),
    ("db2", "replication", "mariadb -e 'STOP SLAVE SQL_THREAD'",
     "mariadb -e 'START SLAVE SQL_THREAD'"),
    ("srv1", "host certificate", None, f"mv {CERT}.saved {CERT}"),
    ("submit1", "schedd and idle pilots", "condor_off -daemon schedd", "condor_on -daemon schedd"),
    (NAGIOS, "disk", "fallocate -l 31M /var/log/panda/filler", "rm -f /var/log/panda/filler"),
]  # fmt: skip
BROKEN = [name for name, *_ in FAULTS]


def force_checks(names: list[str]) -> None:
    """Every check of these hosts now, through Nagios' command pipe."""
    nagios = lab_host(NAGIOS)
    for name in names:
        line = nagiosstatus.force_checks(name)
        run_ok(nagios, f"printf '%s\\n' '{line}' > {nagiosstatus.COMMAND_FILE}")


def messages(user: str) -> list[str]:
    """Subjects of the mails in a local mailbox of the Nagios host, unfolded."""
    mbox = lab_host(NAGIOS).file(f"/var/mail/{user}")
    if not mbox.exists:
        return []
    with tempfile.NamedTemporaryFile("wb", suffix=".mbox") as copy:
        copy.write(mbox.content)
        copy.flush()
        return [" ".join(str(m["Subject"]).split()) for m in mailbox.mbox(copy.name, create=False)]


def wait_for(what: str, ready: Callable[[], object], timeout: float = 300.0) -> object:
    """Poll ``ready``; every 30 s force the broken hosts' checks again (a problem turns
    HARD at its second failed check, and is notified again at a check a minute on)."""
    deadline = time.monotonic() + timeout
    forced = time.monotonic()
    while True:
        got = ready()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        if time.monotonic() - forced > 30:
            force_checks(BROKEN)
            forced = time.monotonic()
        time.sleep(5)


def subject(kind: str, host: str, service: str, state: str = "") -> str:
    return f"[panda] {kind}: {host}/{service} is {state}"


@pytest.fixture
def broken():
    """Break each component of FAULTS, and repair them all whatever the test did."""
    ca = testpki.load_ca(CA_CERT, CA_KEY)
    cert, _ = testpki.issue(f"/DC=test/DC=panda/CN=srv1.{DOMAIN}", ca, hours=24)
    short_lived = base64.b64encode(testpki.pem(cert)).decode()
    breaks = {"host certificate": f"cp -p {CERT} {CERT}.saved && echo {short_lived} "
                                  f"| base64 -d > {CERT}"}  # fmt: skip
    for name, service, cause, _ in FAULTS:
        run_ok(lab_host(name), cause or breaks[service])
    yield
    for name, _, _, repair in FAULTS:
        lab_host(name).run(repair)


# Nagios' web interface on mon1 (monitoring_web_port), its CGIs.
CGI = f"https://{ADDRESSES[NAGIOS]}:8444/nagios4/cgi-bin"


def web(dn: str, tmp: Path) -> urllib.request.OpenerDirector:
    """A client of the web interface with a certificate on ``dn`` (and its cookies)."""
    context = ssl.create_default_context(cafile=str(CA_CERT))
    context.check_hostname = False  # mon1 by address; its certificate is verified
    ca = testpki.load_ca(CA_CERT, CA_KEY)
    context.load_cert_chain(str(testpki.user_pem(dn, ca, tmp / f"{abs(hash(dn))}.pem")))
    return urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context),
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
    )


def acknowledge_in_the_web_interface(operator: urllib.request.OpenerDirector) -> str:
    """What an operator does in the browser: open the acknowledgement form of srv2's
    isAlive problem and commit it (with the form's anti-forgery id and cookie)."""
    target = {"host": "srv2", "service": "pandaserver isAlive"}
    form = operator.open(f"{CGI}/cmd.cgi?" + urllib.parse.urlencode({"cmd_typ": 34, **target}),
                         timeout=20).read().decode()  # fmt: skip
    form_id = re.search(r"name=.nagFormId. value=.(\w+)", form, re.I)
    assert form_id, form[-2000:]
    fields = {"cmd_typ": 34, "cmd_mod": 2, **target, "sticky_ack": "on", "persistent": "on",
              "com_data": "looking at it", "btnSubmit": "Commit",
              "nagFormId": form_id.group(1)}  # fmt: skip
    answer = operator.open(f"{CGI}/cmd.cgi", urllib.parse.urlencode(fields).encode(), timeout=20)
    return answer.read().decode()


@contextlib.contextmanager
def browsing_as(operator: urllib.request.OpenerDirector) -> Iterator[str]:
    """A loopback address where headless Chromium, which cannot present a client
    certificate without a machine-wide policy, reads the web interface as the operator:
    each GET is passed on over TLS with the operator's certificate."""

    class Forward(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                answer = operator.open(f"https://{ADDRESSES[NAGIOS]}:8444{self.path}", timeout=20)
            except urllib.error.HTTPError as refused:
                answer = refused
            body = answer.read()
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.headers.get("Content-Type", "text/html"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/nagios4/cgi-bin"
    finally:
        server.shutdown()


def in_the_browser(chromium, url: str, name: str) -> str:
    """The page's DOM as Chromium renders it, and a screenshot kept."""
    dom = chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = SHOTS / f"nagios-{name}.png"
    taken = chromium(f"--screenshot={shot}", url)
    assert taken.returncode == 0 and shot.stat().st_size > 5000, taken.stderr[-2000:]
    return dom.stdout


def check_the_web_interface(chromium, tmp: Path) -> None:
    """The operator's certificate logs in as the contact ops: the status page lists every
    host, and an acknowledgement made there shows on the problem's page. A certificate
    that is no contact's is refused."""
    operator = web(OPERATOR_DN, tmp)
    with pytest.raises(urllib.error.HTTPError) as refused:
        web(USER_DN, tmp).open(f"{CGI}/status.cgi?host=all", timeout=20)
    assert refused.value.code == 403
    with browsing_as(operator) as cgi:
        status = in_the_browser(chromium, f"{cgi}/status.cgi?host=all", "status")
        missing = [h for h in HOSTS if f'host={h}"' not in status and f"host={h}&" not in status]
        assert not missing, (missing, status[-2000:])
        done = acknowledge_in_the_web_interface(operator)
        assert "successfully submitted" in done, done[-2000:]
        detail = f"{cgi}/extinfo.cgi?type=2&host=srv2&service=pandaserver+isAlive"
        deadline = time.monotonic() + 60
        while "looking at it" not in (page := in_the_browser(chromium, detail, "acknowledged")):
            assert time.monotonic() < deadline, page[-2000:]
            time.sleep(3)
        assert "ops" in page


def test_faults_alert_escalate_and_recover(converged, broken, chromium, tmp_path):
    before = {user: len(messages(user)) for user in ("ops", "oncall", "tickets")}

    def new(user: str) -> list[str]:
        return messages(user)[before[user] :]

    force_checks(BROKEN)
    for name, service, *_ in FAULTS:
        problem = subject("PROBLEM", name, service)
        wait_for(f"{problem!r} in the operators' mailbox",
                 lambda p=problem: any(s.startswith(p) for s in new("ops")))  # fmt: skip
    ops = new("ops")
    assert subject("PROBLEM", "db2", "replication", "CRITICAL") in ops, ops
    assert subject("PROBLEM", NAGIOS, "disk", "CRITICAL") in ops, ops
    # One ticket per problem, opened with its first notification.
    for name, service, *_ in FAULTS:
        assert any(s.startswith(subject("PROBLEM", name, service)) for s in new("tickets"))

    # An operator acknowledges one in Nagios' web interface.
    check_the_web_interface(chromium, tmp_path)

    # A problem that lasts is notified again, and from then on the second line too.
    escalated = subject("PROBLEM", NAGIOS, "disk", "CRITICAL")
    wait_for("the disk problem escalated to the second line", lambda: escalated in new("oncall"))
    assert new("ops").count(escalated) >= 2

    for name, _, _, repair in FAULTS:
        run_ok(lab_host(name), repair)
    force_checks(BROKEN)
    for name, service, *_ in FAULTS:
        recovery = subject("RECOVERY", name, service, "OK")
        wait_for(f"{recovery!r} in the operators' mailbox", lambda r=recovery: r in new("ops"))
        assert recovery in new("tickets")
    # Tickets: the first notification and the recovery only, never a repeat.
    assert new("tickets").count(escalated) == 1
