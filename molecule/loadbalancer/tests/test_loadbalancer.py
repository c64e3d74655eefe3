"""Load balancer tier: one VIP holder, spread over backends, TLS both ways, the client
DN header, stats, the runtime API, and configs that the daemons accept."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from conftest import only_on, other_host, run_ok

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "tests", "lib"))
sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "src"))
import loadgen
from pandafacility.identity import client_dn

LBS = {"mol-lb1": "172.28.40.11", "mol-lb2": "172.28.40.12"}
BACKENDS = {"mol-be1": "172.28.40.21", "mol-be2": "172.28.40.22", "mol-be3": "172.28.40.23"}
VIP, VIP_NAME, PORT, DIRECT_PORT = "172.28.40.100", "pandaserver.mol.panda.test", 25443, 26443
WORK = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
CA = str(WORK / "ca" / "ca.crt")
TLS = "/etc/panda-facility/tls"


def name_of(host) -> str:
    return host.backend.get_hostname()


def load(url: str, server_name: str = VIP_NAME, requests: int = 60) -> dict:
    return loadgen.run(
        loadgen.Config(
            url,
            requests=requests,
            concurrency=6,
            timeout=3,
            deadline=30,
            cafile=CA,
            server_name=server_name,
        )
    )


def test_daemons_run_and_accept_their_config(host):
    only_on(host, *LBS)
    for unit in ("haproxy", "keepalived"):
        assert host.service(unit).is_running, run_ok(host, f"journalctl -n 30 -u {unit}")
        assert host.service(unit).is_enabled
    run_ok(host, "/usr/local/libexec/panda-facility/haproxy-check /etc/haproxy/haproxy.cfg")
    run_ok(host, "keepalived --config-test -f /etc/keepalived/keepalived.conf")


def test_no_secret_in_haproxy_cfg(host):
    only_on(host, *LBS)
    cfg = host.file("/etc/haproxy/haproxy.cfg").content_string
    assert "${PANDA_STATS_PASSWORD_HASH}" in cfg
    assert "$6$" not in cfg
    env = host.file("/etc/haproxy/secrets.env")
    assert env.mode == 0o600 and env.user == "root"
    assert "$6$" in env.content_string  # SHA-512 crypt, never the password itself


def test_exactly_one_load_balancer_holds_the_vip(host):
    only_on(host, "mol-lb1")
    holders = [
        name
        for name in LBS
        if f" {VIP}/" in run_ok(other_host(name), "ip -4 -o addr show dev eth0")
    ]
    assert holders == ["mol-lb1"], holders
    state = host.file("/var/lib/panda-facility/vrrp/facility.state").content_string
    assert state.startswith("MASTER ")


def test_requests_spread_over_every_backend(host):
    only_on(host, "mol-lb1")
    result = load(f"https://{VIP}:{PORT}/work")
    assert result["failed"] == 0, result
    assert sorted(result["backends"]) == sorted(BACKENDS), result
    assert min(result["backends"].values()) >= 10, result


def test_tls_verified_through_the_vip_and_directly(host):
    """The same certificate answers for the VIP name (passthrough reaches the backend's
    own TLS) and for each backend's own name."""
    only_on(host, "mol-lb1")
    passthrough = load(
        f"https://{VIP}:{DIRECT_PORT}/", server_name="pandaserver-direct.mol.panda.test"
    )
    assert passthrough["failed"] == 0, passthrough
    for name, address in BACKENDS.items():
        direct = load(
            f"https://{address}:{PORT}/", server_name=f"{name}.mol.panda.test", requests=3
        )
        assert direct["failed"] == 0, (name, direct)
        via_vip_name = load(f"https://{address}:{PORT}/", server_name=VIP_NAME, requests=3)
        assert via_vip_name["failed"] == 0, (name, via_vip_name)


def whoami(host, *curl: str, port: int = PORT, name: str = VIP_NAME) -> dict:
    out = run_ok(
        host,
        f"curl -fsS --cacert {TLS}/ca.crt --resolve {name}:{port}:{VIP} "
        + " ".join(curl)
        + f" https://{name}:{port}/whoami",
    )
    return json.loads(out)


def test_client_dn_reaches_backends_only_from_the_load_balancer(host):
    """What the backend's mod_ssl sees, fed to the server's own identity rule: through
    the HTTP service the load balancer authenticates with its certificate and its header
    names the client; through the passthrough service (same VIP, same backends) a header
    the client wrote names nobody."""
    only_on(host, "mol-be1")
    subject = run_ok(host, f"openssl x509 -noout -subject -nameopt compat -in {TLS}/host.crt")
    dn = subject.split("=", 1)[1].strip()
    lbs = frozenset(f"/CN={name}.mol.panda.test" for name in LBS)
    cert = f"--cert {TLS}/host.crt --key {TLS}/host.key"
    forged = "-H 'X-SSL-Client-S-DN: /CN=someone else' -H 'X-SSL-Client-Verify: SUCCESS'"

    with_cert = whoami(host, cert)
    assert with_cert["dn"] == dn and with_cert["verify"] == "SUCCESS", with_cert
    assert with_cert["remote_addr"] in LBS.values()
    assert with_cert["environ"]["SSL_CLIENT_S_DN"] in lbs, with_cert
    assert client_dn(with_cert["environ"], lbs) == dn

    spoofed = whoami(host, forged)
    assert spoofed["dn"] is None and spoofed["verify"] is None, spoofed
    assert client_dn(spoofed["environ"], lbs) is None

    direct = {"port": DIRECT_PORT, "name": "pandaserver-direct.mol.panda.test"}
    passed = whoami(host, forged, **direct)
    assert passed["dn"] == "/CN=someone else" and passed["remote_addr"] in LBS.values()
    assert client_dn(passed["environ"], lbs) is None, passed
    passed_with_cert = whoami(host, cert, forged, **direct)
    assert client_dn(passed_with_cert["environ"], lbs) == dn, passed_with_cert


def test_stats_page_wants_the_password(host):
    only_on(host, *LBS)
    address = LBS[name_of(host)]
    password = (WORK / "stats").read_text().split()[0]
    denied = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' http://{address}:8404/")
    assert denied.stdout == "401"
    csv = run_ok(host, f"curl -fsS -u admin:{password} 'http://{address}:8404/;csv'")
    assert "pandaserver,BACKEND" in csv and "pandaserver-direct,BACKEND" in csv


def test_runtime_api_sees_every_backend_up(host):
    only_on(host, *LBS)
    out = run_ok(
        host,
        "echo 'show stat' | python3 -c \"import socket,sys;"
        "s=socket.socket(socket.AF_UNIX);s.connect('/run/haproxy/admin.sock');"
        's.sendall(sys.stdin.buffer.read());print(s.makefile().read())"',
    )
    rows = [line.split(",") for line in out.splitlines() if line.startswith("pandaserver")]
    servers = {(r[0], r[1]): r[17] for r in rows if r[1] not in ("FRONTEND", "BACKEND")}
    assert len(servers) == 6 and set(servers.values()) == {"UP"}, servers
