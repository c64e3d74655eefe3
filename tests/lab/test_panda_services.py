"""The PanDA services on the converged lab, driven from the controller straight at each
backend: isAlive over verified TLS, the real panda-client (with a certificate, and in
oidc mode with a token of the lab's issuer through the VIP), 100 jobs taken by 20
concurrent pilots spread over both servers (each exactly once), bad input refused, and
a pilot's job with its log records as each monitor shows it from the replica. The jobs
go to LAB_HAND, a queue whose factory is drained: the tests play its pilots."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

import testpki
import testtokens
from labhosts import (
    ADDRESSES,
    CA_CERT,
    CA_KEY,
    DOMAIN,
    HAND_QUEUE,
    OPERATOR_DN,
    PILOT_DN,
    ROOT,
    SERVER_VIP,
    SERVERS,
    USER_DN,
    exec_in,
    lab_host,
    run_ok,
)  # fmt: skip


@pytest.fixture(scope="module")
def creds(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("creds")
    ca = testpki.load_ca(CA_CERT, CA_KEY)
    return {
        "user": testpki.user_pem(USER_DN, ca, d / "user.pem"),
        "pilot": testpki.user_pem(PILOT_DN, ca, d / "pilot.pem"),
        "operator": testpki.user_pem(OPERATOR_DN, ca, d / "operator.pem"),
    }


def tls(cert: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(CA_CERT))
    if cert:
        context.load_cert_chain(str(cert))
    return context


class _Resolving(urllib.request.HTTPSHandler):
    """Connects to the host's address and verifies its name (no DNS on the controller)."""

    def __init__(self, address: str, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self.address = address

    def https_open(self, req):
        import http.client

        address, context = self.address, self._context

        class Conn(http.client.HTTPSConnection):
            def connect(self) -> None:
                sock = socket.create_connection((address, self.port), self.timeout)
                self.sock = context.wrap_socket(sock, server_hostname=self.host)

        return self.do_open(Conn, req, context=context)


def _send(request: urllib.request.Request, server: str, cert: Path | None) -> tuple[int, dict]:
    """``server``: a lab host's name, or the pandaserver VIP ("vip")."""
    address = SERVER_VIP if server == "vip" else ADDRESSES[server]
    opener = urllib.request.build_opener(_Resolving(address, context=tls(cert)))
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def post(server: str, path: str, body, cert: Path | None, port: int = 25443) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"https://{server}.{DOMAIN}:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    return _send(request, server, cert)


def get(server: str, port: int, path: str, cert: Path | None = None) -> tuple[int, dict]:
    return _send(urllib.request.Request(f"https://{server}.{DOMAIN}:{port}{path}"), server, cert)


def test_is_alive_on_each_server_over_verified_tls(converged):
    for name in SERVERS:
        request = urllib.request.Request(f"https://{name}.{DOMAIN}:25443/server/panda/isAlive")
        opener = urllib.request.build_opener(_Resolving(ADDRESSES[name], context=tls()))
        with opener.open(request, timeout=10) as answer:
            assert answer.read() == b"alive=yes"


@pytest.mark.parametrize("name", SERVERS)
def test_apache_runs_the_app_as_the_service_account(converged, name):
    host = lab_host(name)
    assert host.service("apache2").is_running and host.service("apache2").is_enabled
    out = run_ok(host, "ps -o user= -C apache2 --no-headers | sort | uniq -c")
    assert "panda" in out, out
    settings = host.file("/etc/panda-facility/server.json")
    assert settings.mode == 0o640 and settings.group == "panda"
    # The password lives apart (never logged), so --diff can show the settings.
    assert "password" not in json.loads(settings.content_string)["database"]
    secret = host.file("/etc/panda-facility/server-db.password")
    assert (secret.user, secret.group, secret.mode) == ("root", "panda", 0o640)


def test_panda_client_submits_and_reads_status(converged, creds, tmp_path):
    base = f"https://srv1.{DOMAIN}:25443"
    script = (
        "import json, socket\n"
        "real = socket.getaddrinfo\n"
        f"socket.getaddrinfo = lambda h, *a, **k: real({ADDRESSES['srv1']!r} "
        f"if h.endswith('.{DOMAIN}') else h, *a, **k)\n"
        "from pandaclient import Client\n"
        "from pandaclient.JobSpec import JobSpec\n"
        f"job = JobSpec(); job.computingSite = '{HAND_QUEUE}'; job.jobName = 'lab-client-job'\n"
        "job.transformation = '/bin/echo'; job.prodSourceLabel = 'user'\n"
        "s, out = Client.submitJobs([job])\n"
        "s2, found = Client.getJobStatus([out[0][0]])\n"
        "print(json.dumps([s, out, s2, found[0].jobStatus, found[0].computingSite]))\n"
    )
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "PANDA_URL_SSL": base,
        "PANDA_URL": base, "PANDACACHE_URL": base, "PANDA_BEHIND_REAL_LB": "1",
        "X509_USER_PROXY": str(creds["user"]), "PANDA_CONFIG_ROOT": str(tmp_path),
    }  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status, out, status2, state, site = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status == 0 and out[0][0] > 0 and status2 == 0
    assert (state, site) == ("activated", HAND_QUEUE)


ISSUER_URL = f"https://mon1.{DOMAIN}:8446"  # inventories/lab: the token_issuer role on mon1
TOKEN_USER = {"aud": "panda-lab-client", "sub": "lab-1", "name": "lab token user",
              "preferred_username": "ltu", "groups": ["atlas"]}  # fmt: skip


def lab_issuer() -> testtokens.Issuer:
    """The lab issuer, with the key the token_issuer role made on the controller."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key((ROOT / ".lab/issuer/issuer.key").read_bytes(), None)
    return testtokens.Issuer(ISSUER_URL, kid="panda-facility-1", key=key)  # type: ignore[arg-type]


def ca_dir(tmp: Path) -> Path:
    """The lab CA as a hashed CA directory (what panda-client reads X509_CERT_DIR as)."""
    d = tmp / "certificates"
    d.mkdir()
    name = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(CA_CERT)],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (d / f"{name}.0").write_bytes(CA_CERT.read_bytes())
    return d


def panda_client(auth: dict[str, str], tmp: Path, label: str) -> list:
    """panda-client 2.2.0 through the pandaserver VIP, authenticated by ``auth`` (its
    environment: a proxy file, or a token): submits a job of ``label``, reads it and
    kills it; what each call answered ([status, message] when the submission failed)."""
    base = f"https://pandaserver.{DOMAIN}:25443"
    script = (
        "import json, socket\n"
        "real = socket.getaddrinfo\n"
        f"socket.getaddrinfo = lambda h, *a, **k: real({SERVER_VIP!r} "
        f"if h.endswith('.{DOMAIN}') else h, *a, **k)\n"
        "from pandaclient import Client\n"
        "from pandaclient.JobSpec import JobSpec\n"
        f"job = JobSpec(); job.computingSite = '{HAND_QUEUE}'; job.jobName = 'lab-grid-job'\n"
        f"job.transformation = '/bin/echo'; job.prodSourceLabel = '{label}'\n"
        "s, out = Client.submitJobs([job])\n"
        "if s != 0 or not isinstance(out, list) or not out[0][0]:\n"
        "    print(json.dumps([s, str(out)])); raise SystemExit(0)\n"
        "s2, found = Client.getJobStatus([out[0][0]])\n"
        "s3, killed = Client.killJobs([out[0][0]])\n"
        "s4, after = Client.getJobStatus([out[0][0]])\n"
        "print(json.dumps([s, out, s2, found[0].prodUserID, found[0].prodSourceLabel, s3,"
        " after[0].jobStatus]))\n"
    )
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp), "PANDA_URL_SSL": base,
        "PANDA_URL": base, "PANDACACHE_URL": base, "PANDA_BEHIND_REAL_LB": "1",
        "PANDA_CONFIG_ROOT": str(tmp), "X509_CERT_DIR": str(tmp / "certificates"), **auth,
    }  # fmt: skip
    if not (tmp / "certificates").exists():
        ca_dir(tmp)
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_panda_client_with_a_token_through_the_vip(converged, tmp_path):
    """panda-client 2.2.0 in oidc mode (no certificate): submits, reads and kills through
    the pandaserver VIP as the token's user; the VO's auth config is published."""
    token = lab_issuer().mint(**TOKEN_USER)
    auth = {"PANDA_AUTH": "oidc", "PANDA_AUTH_VO": "atlas", "PANDA_AUTH_ID_TOKEN": token}
    s, _, s2, owner, _, s3, state = panda_client(auth, tmp_path, "user")
    assert (s, s2, s3, owner, state) == (0, 0, 0, "Lab Token User/CN=nickname:ltu", "cancelled")
    code, config = vip_get("/auth/atlas_auth_config.json")
    assert code == 200 and config["oidc_config_url"].startswith(ISSUER_URL), config


def vip_post(path: str, body: dict, cert: Path) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"https://pandaserver.{DOMAIN}:25443{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    return _send(request, "vip", cert)


def vip_get(path: str, headers: dict | None = None, cert: Path | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"https://pandaserver.{DOMAIN}:25443{path}",
                                     headers=headers or {})  # fmt: skip
    return _send(request, "vip", cert)


def test_tokens_the_lab_does_not_believe_are_refused_at_the_vip(converged):
    stranger = testtokens.Issuer(ISSUER_URL, kid="panda-facility-1")  # another key
    for token in (lab_issuer().mint(lifetime=-600, **TOKEN_USER), stranger.mint(**TOKEN_USER)):
        code, answer = vip_get("/api/v1/job/get_status?job_ids=1",
                               {"Authorization": f"Bearer {token}", "Origin": "atlas"})  # fmt: skip
        assert code == 403 and "token refused" in answer["message"], answer


GRID_USER_DN = "/DC=test/DC=panda/CN=Grid User"
VOMS_DN = "/DC=test/DC=panda/CN=voms.lab.panda.test"  # inventories/lab: facility_voms_servers
PRODUCTION_FQAN = "/atlas/Role=production/Capability=NULL"


def _private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def grid_creds(tmp_path_factory) -> dict[str, Path]:
    """One grid user's RFC 3820 proxy, a limited one, and a VOMS proxy with the
    production role that voms-proxy-fake makes (on site1) with the certificate of the
    lab VO's VOMS server. Each file: the chain, its key and the lab CA (panda-client's
    X509_USER_PROXY)."""
    d = tmp_path_factory.mktemp("grid")
    ca = testpki.load_ca(CA_CERT, CA_KEY)
    owner = testpki.issue(GRID_USER_DN, ca)
    chain_end = testpki.pem(owner[0]) + testpki.pem(ca[0])
    found = {}
    for label, limited in (("proxy", False), ("limited", True)):
        cert, key = testpki.proxy(owner, limited)
        found[label] = _private(
            d / f"{label}.pem", testpki.pem(cert) + testpki.pem(key) + chain_end
        )
    voms = testpki.voms_server(VOMS_DN, ca)
    work = "/root/voms-test"
    assert exec_in("site1", "install", "-d", "-m", "0700", work).returncode == 0
    try:
        for name, obj in {"user.crt": owner[0], "user.key": owner[1],
                          "voms.crt": voms[0], "voms.key": voms[1]}.items():  # fmt: skip
            local = _private(d / name, testpki.pem(obj))
            subprocess.run(["docker", "cp", str(local), f"lab-site1:{work}/{name}"], check=True)
        made = exec_in(
            "site1", "voms-proxy-fake", "-cert", f"{work}/user.crt", "-key", f"{work}/user.key",
            "-hostcert", f"{work}/voms.crt", "-hostkey", f"{work}/voms.key", "-voms", "atlas",
            "-fqan", PRODUCTION_FQAN, "-uri", "voms.lab.panda.test:15000", "-hours", "2",
            "-out", f"{work}/voms.pem",
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        proxy = exec_in("site1", "cat", f"{work}/voms.pem").stdout.encode()
    finally:
        exec_in("site1", "rm", "-rf", work)
    found["voms"] = _private(d / "voms.pem", proxy + testpki.pem(ca[0]))
    return found


def test_panda_client_with_a_proxy_and_a_voms_proxy_through_the_vip(
    converged, grid_creds, tmp_path
):
    """panda-client with an RFC 3820 proxy submits, reads and kills as the proxy's owner;
    a managed (production) job is refused to it and accepted from the same user's VOMS
    proxy with /atlas/Role=production, whose attribute certificate the load balancer's
    Apache verified against the lab VO's .lsc file."""
    proxy, voms = ({"X509_USER_PROXY": str(grid_creds[k])} for k in ("proxy", "voms"))
    s, _, s2, owner, label, s3, state = panda_client(proxy, tmp_path, "user")
    assert (s, s2, s3, owner, label, state) == (0, 0, 0, GRID_USER_DN, "user", "cancelled")
    refused = panda_client(proxy, tmp_path, "managed")
    assert len(refused) == 2 and refused[0] != 0, refused  # panda-client says no more
    managed = positional("lab-grid-managed")
    managed[JOB_LABEL] = "managed"
    code, answer = vip_post("/api/v1/job/submit", {"jobs": json.dumps([managed])},
                            grid_creds["proxy"])  # fmt: skip
    assert code == 403 and "prodSourceLabel=managed" in answer["message"], answer
    s, _, s2, owner, label, s3, state = panda_client(voms, tmp_path, "managed")
    assert (s, s2, s3, owner, label, state) == (0, 0, 0, GRID_USER_DN, "managed", "cancelled")


PILOTS_ONLY = "/api/v1/pilot/get_job_status?job_ids=1"
FORGED = {"X-SSL-Client-S-DN": PILOT_DN, "X-SSL-Client-Verify": "SUCCESS",
          "X-Grid-VOMS-FQANs": PRODUCTION_FQAN, "X-Grid-Proxy-Inherits": "1"}  # fmt: skip


def test_grid_credentials_at_the_vip_and_each_backend(converged, grid_creds):
    """The same answers through the VIP and straight at a server: the VOMS production
    role reaches the pilots' calls, a plain proxy does not (nor with the identity
    headers written by itself), and a limited proxy is nobody."""

    def both(path: str, cert: Path, headers: dict | None = None) -> list[tuple[int, dict]]:
        request = urllib.request.Request(
            f"https://srv1.{DOMAIN}:25443{path}", headers=headers or {}
        )
        return [vip_get(path, headers, cert), _send(request, "srv1", cert)]

    for code, answer in both(PILOTS_ONLY, grid_creds["voms"]):
        assert code == 200 and answer["success"], answer
    for headers in (None, FORGED):
        for code, answer in both(PILOTS_ONLY, grid_creds["proxy"], headers):
            assert code == 403 and "not a production" in answer["message"], answer
    for headers in (None, FORGED):
        for code, answer in both(
            "/api/v1/job/get_status?job_ids=1", grid_creds["limited"], headers
        ):
            assert code == 403 and "limited proxy" in answer["message"], answer


def test_a_resumed_tls_session_keeps_its_voms_role(converged, grid_creds):
    """A client offering its last TLS session again (as curl and Python's clients may):
    the next connection still carries the production role, at the VIP and at a server
    (mod_gridsite does not restore VOMS attributes of a resumed session, so none is)."""
    context = tls(grid_creds["voms"])
    for name, address in (("pandaserver", SERVER_VIP), ("srv1", ADDRESSES["srv1"])):
        session = None
        for _ in range(2):
            raw = socket.create_connection((address, 25443), 10)
            with context.wrap_socket(raw, server_hostname=f"{name}.{DOMAIN}",
                                     session=session) as conn:  # fmt: skip
                conn.sendall(f"GET {PILOTS_ONLY} HTTP/1.1\r\nHost: {name}.{DOMAIN}\r\n"
                             "Connection: close\r\n\r\n".encode())  # fmt: skip
                answer = b"".join(iter(lambda c=conn: c.recv(65536), b""))
                session = conn.session
            assert answer.startswith(b"HTTP/1.1 200"), (name, answer[:200])


def test_a_revoked_certificate_is_refused_at_the_vip_and_the_backends(converged, tmp_path):
    """A CRL in the grid CA directory (as fetch-crl installs it, then Apache reloads)
    that revokes a user's certificate: its proxies are refused in the TLS handshake at
    the VIP and at each server; the facility's own CRL comes back afterwards."""
    ca = testpki.load_ca(CA_CERT, CA_KEY)
    owner = testpki.issue("/DC=test/DC=panda/CN=Revoked User", ca)
    proxy, key = testpki.proxy(owner)
    pem = _private(tmp_path / "revoked.pem", testpki.pem(proxy) + testpki.pem(key)
                   + testpki.pem(owner[0]))  # fmt: skip
    assert vip_get("/api/v1/job/get_status?job_ids=1", cert=pem)[0] == 200
    crl_file = f"/etc/grid-security/certificates/{next(ca_dir(tmp_path).glob('*.0')).stem}.r0"
    hosts = ["lb1", "lb2", *SERVERS]
    saved = {h: lab_host(h).file(crl_file).content for h in hosts}
    revoking = tmp_path / "revoking.r0"
    revoking.write_bytes(testpki.crl(ca, [owner[0].serial_number]))
    revoking.chmod(0o644)

    def install(files: dict[str, Path]) -> None:
        for host, local in files.items():
            subprocess.run(["docker", "cp", str(local), f"lab-{host}:{crl_file}"], check=True)
            assert exec_in(host, "systemctl", "reload", "apache2").returncode == 0

    try:
        install(dict.fromkeys(hosts, revoking))
        time.sleep(1)
        request = urllib.request.Request(
            f"https://srv1.{DOMAIN}:25443/api/v1/job/get_status?job_ids=1"
        )
        for attempt in (lambda: vip_get("/api/v1/job/get_status?job_ids=1", cert=pem),
                        lambda: _send(request, "srv1", pem)):  # fmt: skip
            with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
                attempt()
    finally:
        originals = {}
        for host, data in saved.items():
            originals[host] = tmp_path / f"{host}.r0"
            originals[host].write_bytes(data)
            originals[host].chmod(0o644)
        install(originals)
    assert vip_get("/api/v1/job/get_status?job_ids=1", cert=pem)[0] == 200


def _job_attributes() -> tuple[str, ...]:
    sys.path.insert(0, str(ROOT / "src"))
    from pandafacility.jobspec import JOB_ATTRIBUTES

    return tuple(JOB_ATTRIBUTES)


JOB_LABEL = _job_attributes().index("prodSourceLabel")


def positional(name: str) -> list:
    JOB_ATTRIBUTES = _job_attributes()

    values = {"jobName": name, "computingSite": HAND_QUEUE, "transformation": "/bin/true"}
    return [values.get(a, "NULL") for a in JOB_ATTRIBUTES] + [[]]


def acquire(server: str, pilot: Path) -> list[int]:
    status, answer = post(server, "/api/v1/pilot/acquire_jobs", {"site_name": HAND_QUEUE}, pilot)
    assert status == 200, answer
    return [j["PandaID"] for j in answer["data"]["jobs"]] if answer["success"] else []


def test_concurrent_pilots_on_both_servers_take_each_job_once(converged, creds):
    jobs = json.dumps([positional(f"conc-{i}") for i in range(100)])
    status, answer = post("srv1", "/api/v1/job/submit", {"jobs": jobs}, creds["user"])
    assert status == 200 and answer["success"], answer
    submitted = {row[0] for row in answer["data"]}
    taken: list[int] = []
    lock = threading.Lock()

    def pilot(index: int) -> None:
        for _ in range(60):  # bounded
            got = acquire(SERVERS[index % 2], creds["pilot"])
            if not got:
                return
            with lock:
                taken.extend(got)

    threads = [threading.Thread(target=pilot, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    # The queue may hold a job an earlier test left: each job once, ours all.
    assert submitted <= set(taken) and Counter(taken).most_common(1)[0][1] == 1


@pytest.mark.parametrize(
    "path,body,cert,status",
    [
        ("/api/v1/job/submit", {"jobs": "not json"}, "user", 400),
        ("/api/v1/job/submit", {"jobs": json.dumps([[1, 2]])}, "user", 400),
        ("/api/v1/pilot/acquire_jobs", {"site_name": HAND_QUEUE}, "user", 403),
        ("/api/v1/pilot/acquire_jobs", {"site_name": HAND_QUEUE}, None, 403),
        ("/api/v1/pilot/update_job", {"job_id": "1 OR 1=1", "job_status": "running"}, "pilot", 400),
    ],
)
def test_bad_input_through_apache_is_refused(converged, creds, path, body, cert, status):
    got, answer = post("srv2", path, body, creds[cert] if cert else None)
    assert got == status and answer["success"] is False, answer


def test_finished_job_and_its_pilot_log_show_in_the_monitor(converged, creds):
    jobs = json.dumps([positional("monitored")])
    status, answer = post("srv2", "/api/v1/job/submit", {"jobs": jobs}, creds["user"])
    assert status == 200 and answer["success"], answer
    panda_id = answer["data"][0][0]
    taken: list[int] = []
    for _ in range(20):  # bounded: the queue holds ours and at most a few others
        taken += acquire("srv1", creds["pilot"])
        if panda_id in taken:
            break
    assert panda_id in taken, taken
    for state in ("running", "finished"):
        status, answer = post(
            "srv1", "/api/v1/pilot/update_job",
            {"job_id": panda_id, "job_status": state, "attempt_nr": 1, "node": "wn01"},
            creds["pilot"],
        )  # fmt: skip
        assert status == 200 and answer["success"], answer
    # A pilot logs to the logger in both forms: the JSON POST and panda-common's GET,
    # with its certificate; the same records from a user's certificate are refused.
    record = {"PandaID": panda_id, "name": "pilot", "levelname": "INFO", "message": "payload ok"}
    batch = [{"headers": {"host": "wn01"}, "body": json.dumps(record)}]
    assert post("log1", "/logger/logger/query", batch, creds["user"], port=8443)[0] == 403
    assert post("log1", "/logger/logger/query", batch, creds["pilot"], port=8443)[0] == 200
    query = urllib.parse.urlencode({**record, "message": "stage-out done"})
    assert get("log1", 8443, f"/logger/logger/query?{query}")[0] == 403
    assert get("log1", 8443, f"/logger/logger/query?{query}", creds["pilot"])[0] == 200
    # The monitors read from the replica: wait for it to catch up, on both. The job's
    # owner sees its records (read by the monitor's own certificate); nobody else does.
    deadline = time.monotonic() + 30
    for monitor in SERVERS:
        while True:
            status, page = get(monitor, 443, f"/jobs/{panda_id}?format=json", creds["user"])
            if status == 200 and page["job"]["job_status"] == "finished":
                break
            assert time.monotonic() < deadline, (status, page)
            time.sleep(0.5)
        assert page["served_by"] == monitor
        assert [h["job_status"] for h in page["history"]][-2:] == ["running", "finished"]
        assert [r["message"] for r in page["records"]] == ["payload ok", "stage-out done"], page
        status, page = get(monitor, 443, f"/jobs/{panda_id}?format=json")
        assert status == 200 and page["records"] == [] and "owner" in page["log_error"], page


@pytest.mark.parametrize("name", SERVERS)
def test_monitor_reads_the_replica_and_sees_both_servers(converged, name):
    settings = json.loads(lab_host(name).file("/etc/panda-facility/monitor.json").content_string)
    assert settings["database"]["host"] == ADDRESSES["db2"]
    assert settings["database"]["user"] == "panda_ro"
    status, page = get(name, 443, "/servers?format=json")
    assert status == 200 and page["served_by"] == name
    assert {s["name"]: s["alive"] for s in page["servers"]} == dict.fromkeys(SERVERS, True)


def test_logger_keeps_its_records_to_the_service_account(converged, creds):
    host = lab_host("log1")
    data = host.file("/var/lib/panda-logger")
    assert data.user == "panda" and data.mode == 0o750
    assert get("log1", 8443, "/logger/records?panda_id=1")[0] == 403
    assert get("log1", 8443, "/logger/records?panda_id=1", creds["user"])[0] == 403
    # The pilots write; they never read (their certificate is where payloads run).
    assert get("log1", 8443, "/logger/records?panda_id=1", creds["pilot"])[0] == 403
    assert get("log1", 8443, "/logger/records?panda_id=1", creds["operator"])[0] == 200
    assert host.file("/var/lib/panda-logger/records.sqlite").user == "panda"
    assert get("log1", 8443, "/logger/records?panda_id=oops", creds["operator"])[0] == 400
    # The monitor's own certificate and key belong to the service account alone.
    key = lab_host("srv1").file("/etc/panda-facility/monitor/client.key")
    assert key.user == "panda" and key.mode == 0o600


@pytest.mark.parametrize("name", SERVERS)
def test_reaper_timer_runs_on_each_server(converged, name):
    host = lab_host(name)
    assert host.service("panda-reaper.timer").is_enabled
    assert host.service("panda-reaper.timer").is_running
    out = run_ok(
        host,
        "runuser -u panda -- env PYTHONPATH=/opt/panda-facility/lib python3"
        " -m pandafacility.reaper --config /etc/panda-facility/server.json",
    )
    assert set(json.loads(out)) == {"activated", "failed"}


def test_schema_applied_once(converged):
    out = run_ok(
        lab_host("db1"),
        "mariadb -N -B -e 'SELECT version FROM panda.schema_migrations ORDER BY version'",
    )
    shipped = sorted(int(f.name[:4]) for f in (ROOT / "src/pandafacility/schema").glob("0*.sql"))
    assert out.split() == [str(v) for v in shipped]
