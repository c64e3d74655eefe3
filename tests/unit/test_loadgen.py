from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import loadgen


class _Handler(BaseHTTPRequestHandler):
    """200 with X-Served-By (alternating web1/web2), 503 for the first `fail_first`."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the balancer offers it
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall

    def do_GET(self):
        server = self.server
        with server.lock:
            server.count += 1
            failing = server.count <= server.fail_first
            backend = f"web{server.count % 2 + 1}"
            server.ports.add(self.client_address[1])
            server.hosts.add(self.headers.get("Host"))
        body = b"busy\n" if failing else b"hello\n"
        self.send_response(503 if failing else 200)
        if not failing:
            self.send_header("X-Served-By", backend)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def serve():
    """Start loopback HTTP(S) servers: serve(fail_first=0, tls=None) -> (server, url)."""
    started = []

    def start(fail_first=0, tls=None):
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.lock = threading.Lock()
        httpd.count = 0
        httpd.fail_first = fail_first
        httpd.ports = set()
        httpd.hosts = set()
        if tls is not None:
            httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        thread.start()
        started.append((httpd, thread))
        scheme = "https" if tls is not None else "http"
        return httpd, f"{scheme}://127.0.0.1:{httpd.server_address[1]}/probe?x=1"

    yield start
    for httpd, thread in started:
        httpd.shutdown()
        httpd.server_close()
        thread.join(2)


def run_cli(capsys, *argv):
    assert loadgen.main([str(a) for a in argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_percentile_nearest_rank():
    values = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5]
    assert loadgen.percentile(values, 50) == 5
    assert loadgen.percentile(values, 90) == 9
    assert loadgen.percentile(values, 99) == 10
    assert loadgen.percentile(values, 100) == 10
    assert loadgen.percentile(values, 0) == 1
    assert loadgen.percentile([4.5], 99) == 4.5
    assert loadgen.percentile(list(range(1, 101)), 7) == 7  # 0.07 * 100 is 7.000000000000001
    assert loadgen.percentile([], 50) is None
    with pytest.raises(ValueError):
        loadgen.percentile(values, 101)


def test_gap_between_successes():
    assert loadgen.longest_gap([0.1, 1.6, 0.2, 1.5], []) == pytest.approx(1.3)


def test_gap_counts_failures_before_the_first_success():
    assert loadgen.longest_gap([2.0, 2.1], [(0.5, 0.6), (1.0, 1.1)]) == pytest.approx(1.5)


def test_gap_failures_between_successes_add_nothing():
    successes = [0.1, 0.2, 0.3, 1.0, 1.1]
    assert loadgen.longest_gap(successes, [(0.4, 0.5)]) == pytest.approx(0.7)


def test_gap_when_the_run_ends_in_an_outage():
    assert loadgen.longest_gap([0.1, 0.2], [(0.3, 2.3)]) == pytest.approx(2.1)


def test_gap_without_successes_or_anything():
    assert loadgen.longest_gap([], [(1.0, 1.1), (1.5, 3.0)]) == pytest.approx(2.0)
    assert loadgen.longest_gap([], []) == 0.0
    assert loadgen.longest_gap([4.2], []) == 0.0


def test_parse_header():
    assert loadgen.parse_header("X-Test:  a: b ") == ("X-Test", "a: b")
    assert loadgen.parse_header("Empty:") == ("Empty", "")
    for bad in ("no colon", ": value", "Bad Name: v", "X: a\r\nInjected: 1"):
        with pytest.raises(Exception, match="Name: value"):
            loadgen.parse_header(bad)


def test_target_and_host_header():
    target = loadgen.parse_target("https://10.0.0.10/a?b=c", "www.example.test")
    assert (target.host, target.port, target.path) == ("10.0.0.10", 443, "/a?b=c")
    assert target.tls_name == "www.example.test"
    assert target.host_header == "www.example.test"
    target = loadgen.parse_target("http://10.0.0.10:8080", "www.example.test")
    assert (target.port, target.path, target.host_header) == (8080, "/", "www.example.test:8080")
    assert loadgen.parse_target("http://[::1]:81/").host == "::1"
    assert loadgen.parse_target("http://h/").host_header is None
    headers = loadgen.request_headers(target, [("host", "other"), ("X-A", "1"), ("x-a", "2")])
    assert headers == {"host": "other", "x-a": "2"}


@pytest.mark.parametrize(
    "argv",
    [
        ["ftp://127.0.0.1/"],
        ["http:///nohost"],
        ["http://127.0.0.1:99999/"],
        ["http://127.0.0.1/", "--key", "k.pem"],
        ["http://127.0.0.1/", "--header", "broken"],
        ["http://127.0.0.1/", "--concurrency", "0"],
        ["http://127.0.0.1/", "--rate", "-1"],
        ["http://127.0.0.1/", "--timeout", "nan"],
        ["http://127.0.0.1/", "--requests", "many"],
        ["https://127.0.0.1/", "--cafile", "/nonexistent/ca.pem"],
        ["http://127.0.0.1/", "--output", "/nonexistent/dir/out.json"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        loadgen.main(argv)
    assert exc.value.code == 2


def test_counts_backends_and_keepalive(serve, capsys, tmp_path):
    server, url = serve(fail_first=3)
    out = tmp_path / "out.json"
    start_file = tmp_path / "started"
    start_file.write_text("stale")
    options = ["--requests", 40, "--concurrency", 4, "--output", out, "--start-file", start_file]
    summary = run_cli(capsys, url, *options)
    assert summary["requests"] == summary["sent"] == 40
    assert (summary["ok"], summary["failed"], summary["not_sent"]) == (37, 3, 0)
    assert summary["failures_by_reason"] == {"status 503": 3}
    assert set(summary["backends"]) == {"web1", "web2"}
    assert sum(summary["backends"].values()) == 37
    assert summary["first_failure_s"] <= summary["last_failure_s"] < summary["duration_s"]
    assert 0 < summary["latency_p50_ms"] <= summary["latency_p99_ms"] <= summary["latency_max_ms"]
    assert summary["rps"] > 0
    assert 0 <= summary["gap_s"] < summary["duration_s"]
    assert json.loads(out.read_text()) == summary
    assert start_file.exists() and start_file.read_text() == ""
    assert len(server.ports) <= 4  # 503s keep the connection: one per worker
    assert server.hosts == {f"127.0.0.1:{server.server_address[1]}"}


def test_rate_paces_the_whole_run(serve):
    _, url = serve()
    summary = loadgen.run(loadgen.Config(url, requests=20, concurrency=5, rate=100))
    assert summary["ok"] == 20
    assert 0.18 <= summary["duration_s"] < 2.0  # request 19 is due at t0 + 0.19 s


def test_deadline_leaves_the_rest_unsent(serve):
    _, url = serve()
    summary = loadgen.run(loadgen.Config(url, requests=100, concurrency=3, rate=20, deadline=0.3))
    assert summary["sent"] + summary["not_sent"] == 100
    assert 1 <= summary["sent"] <= 7  # slots due at 0, 0.05, ..., 0.25 s
    assert summary["ok"] == summary["sent"]
    assert summary["duration_s"] < 1.5


def test_server_name_sets_host_header(serve):
    server, url = serve()
    loadgen.run(loadgen.Config(url, requests=3, concurrency=1, server_name="lb.example.test"))
    assert server.hosts == {f"lb.example.test:{server.server_address[1]}"}


def test_connection_refused_and_reconnect():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    summary = loadgen.run(loadgen.Config(f"http://127.0.0.1:{port}/", requests=6, concurrency=2))
    assert (summary["ok"], summary["failed"]) == (0, 6)
    assert summary["failures_by_reason"] == {"ConnectionRefusedError": 6}
    assert summary["latency_p50_ms"] is None and summary["backends"] == {}
    assert summary["first_failure_s"] is not None


def test_timeout_when_nobody_answers():
    with socket.socket() as listener:  # accepts connections (backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        summary = loadgen.run(loadgen.Config(url, requests=2, concurrency=2, timeout=0.2))
    assert summary["failures_by_reason"] == {"timeout": 2}
    assert summary["gap_s"] >= 0.15


# --- TLS, with a throwaway CA (needs the cryptography package) -------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """CA, server certificate for lb.test, client certificate: paths of PEM files."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def builder(subject, issuer, key):
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )

    def write(stem, cert, key):
        paths = directory / f"{stem}.pem", directory / f"{stem}.key"
        paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[1].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return paths

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
    ca_cert = (
        builder(name("loadgen test CA"), name("loadgen test CA"), ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(ca_usage, True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)

    def leaf(cn, usage, sans):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            builder(name(cn), ca_cert.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(aki, False)
            .add_extension(x509.ExtendedKeyUsage([usage]), False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
            .sign(ca_key, hashes.SHA256())
        )
        return write(cn, cert, key)

    ca_path, _ = write("ca", ca_cert, ca_key)
    server = leaf("lb.test", ExtendedKeyUsageOID.SERVER_AUTH, ["lb.test"])
    client = leaf("client.test", ExtendedKeyUsageOID.CLIENT_AUTH, ["client.test"])
    return {"ca": ca_path, "server": server, "client": client}


def server_context(pki, require_client=False):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*pki["server"])
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki["ca"])
    return context


def test_tls_verifies_server_name(serve, pki, capsys):
    server, url = serve(tls=server_context(pki))
    common = ["--requests", 4, "--concurrency", 2, "--cafile", pki["ca"]]
    good = run_cli(capsys, url, *common, "--server-name", "lb.test")
    assert good["ok"] == 4 and sum(good["backends"].values()) == 4
    assert server.hosts == {f"lb.test:{server.server_address[1]}"}
    wrong = run_cli(capsys, url, *common, "--server-name", "wrong.test")
    assert wrong["ok"] == 0
    assert wrong["failures_by_reason"] == {"SSLCertVerificationError": 4}
    by_address = run_cli(capsys, url, *common)  # the certificate has no IP address
    assert by_address["failures_by_reason"] == {"SSLCertVerificationError": 4}
    untrusted = run_cli(capsys, url, "--requests", 2, "--server-name", "lb.test")
    assert untrusted["failures_by_reason"] == {"SSLCertVerificationError": 2}


def test_tls_client_certificate(serve, pki, capsys):
    _, url = serve(tls=server_context(pki, require_client=True))
    common = ["--requests", 3, "--cafile", pki["ca"], "--server-name", "lb.test"]
    cert, key = pki["client"]
    with_cert = run_cli(capsys, url, *common, "--cert", cert, "--key", key)
    assert with_cert["ok"] == 3
    without = run_cli(capsys, url, *common, "--timeout", 0.5)
    assert (without["ok"], without["failed"]) == (0, 3)
