"""Host certificates on the converged lab: private keys, names and addresses that
verify, the facility CA trusted by the system, a TLS handshake between two hosts by
the VIP name and by the host's own; then the reissue rules, and a renewed certificate
served by the daemons that read it in the same site.yml run (Apache directly, HAProxy
through the VIP)."""

from __future__ import annotations

import socket
import ssl

import pytest

import testpki
from labhosts import (
    ADDRESSES,
    CA_CERT,
    CA_KEY,
    DOMAIN,
    INVENTORY,
    LOGS,
    SERVER_VIP,
    TLS,
    USER_DN,
    Soak,
    lab_host,
    run_ok,
)  # fmt: skip
from sitecheck import run_site

VIP = f"pandaserver.{DOMAIN}"


def verify(host, name: str, flag: str = "-verify_hostname"):
    return host.run(f"openssl verify -CAfile {TLS}/ca.crt {flag} {name} {TLS}/host.crt")


@pytest.mark.parametrize("name", ["srv2", "log1", "submit2"])
def test_key_is_private_and_names_verify(converged, name):
    host = lab_host(name)
    key = host.file(f"{TLS}/host.key")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)
    for checked, flag in ((f"{name}.{DOMAIN}", "-verify_hostname"), (name, "-verify_hostname"),
                          (ADDRESSES[name], "-verify_ip")):  # fmt: skip
        cmd = verify(host, checked, flag)
        assert cmd.rc == 0, cmd.stdout + cmd.stderr
    run_ok(host, f"openssl verify {TLS}/host.crt")  # the CA is in the system trust store


def test_client_verifies_a_backend_by_vip_name_and_directly(converged):
    """A handshake from another host, once as if through the VIP, once direct."""
    server, client = lab_host("srv2"), lab_host("log1")
    server.run(
        "systemctl stop verify-tls 2>/dev/null; systemctl reset-failed verify-tls 2>/dev/null"
    )
    run_ok(server, "systemd-run --unit=verify-tls --collect timeout 60 openssl s_server "
                   f"-accept 4433 -cert {TLS}/host.crt -key {TLS}/host.key "
                   "-www -quiet")  # fmt: skip
    run_ok(client, "bash -c 'for i in $(seq 50); do (echo > /dev/tcp/srv2/4433) 2>/dev/null "
                   "&& exit 0; sleep 0.1; done; exit 1'")  # fmt: skip
    try:
        for name in (VIP, f"srv2.{DOMAIN}"):
            out = run_ok(client, f"echo | openssl s_client -connect srv2:4433 "
                                 f"-servername {name} -verify_hostname {name} "
                                 "-verify_return_error -brief 2>&1")  # fmt: skip
            assert "Verification: OK" in out, out
    finally:
        server.run("systemctl stop verify-tls")


def served(address: str, name: str, port: int) -> dict:
    """The certificate a TLS server presents, as the ssl module reads it (verified)."""
    context = ssl.create_default_context(cafile=str(CA_CERT))
    with (
        socket.create_connection((address, port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=name) as tls,
    ):
        return tls.getpeercert()


def file_cert(name: str) -> dict:
    host = lab_host(name)
    out = run_ok(
        host, f"openssl x509 -in {TLS}/host.crt -noout -serial -enddate -ext subjectAltName"
    )
    return {"serial": out.split("serial=")[1].split()[0], "text": out}


RENEWAL_TAGS = "certificates,loadbalancer,panda_server,panda_monitor"


def test_renewed_certificate_is_served_in_the_same_run(converged, tmp_path):
    """A new name, and expiry inside the renewal window, each reissue the certificate;
    Apache (directly) and HAProxy (through the VIP) serve the new one when the run ends.
    Converging back drops the name; the CA never changes."""
    ca_before = run_ok(lab_host("srv1"), f"openssl x509 -in {TLS}/ca.crt -noout -serial")
    before = {h: file_cert(h) for h in ("srv1", "lb1")}
    extra = f"extra.{DOMAIN}"
    pem = testpki.user_pem(USER_DN, testpki.load_ca(CA_CERT, CA_KEY), tmp_path / "u.pem")
    with Soak(pem) as soak:  # through the VIP, while Apache and HAProxy reload
        renew = run_site(
            INVENTORY, "--limit", "srv1:lb1", "--tags", RENEWAL_TAGS,
            "-e", f'{{"certificates_extra_names": ["{extra}"], "certificates_lifetime_days":'
                  ' 400, "certificates_renew_before_days": 380}',
            log=LOGS / "renew.log",
        )  # fmt: skip
    assert renew.returncode == 0, renew.failures()
    assert soak.sent > 5 and soak.errors == [], f"{len(soak.errors)}/{soak.sent}: {soak.errors}"
    after = {h: file_cert(h) for h in ("srv1", "lb1")}
    for h in after:
        assert after[h]["serial"] != before[h]["serial"], h
        assert f"DNS:{extra}" in after[h]["text"] and f"DNS:{VIP}" in after[h]["text"], h
    direct = served(ADDRESSES["srv1"], f"srv1.{DOMAIN}", 25443)
    through_vip = served(SERVER_VIP, VIP, 25443)
    assert ("DNS", extra) in direct["subjectAltName"], direct
    assert ("DNS", extra) in through_vip["subjectAltName"], through_vip

    back = run_site(INVENTORY, "--limit", "srv1:lb1", "--tags", RENEWAL_TAGS,
                    log=LOGS / "renew-back.log")  # fmt: skip
    assert back.returncode == 0, back.failures()
    for h in ("srv1", "lb1"):
        assert f"DNS:{extra}" not in file_cert(h)["text"], h
    assert ("DNS", extra) not in served(ADDRESSES["srv1"], f"srv1.{DOMAIN}", 25443)[
        "subjectAltName"
    ]
    assert ("DNS", extra) not in served(SERVER_VIP, VIP, 25443)["subjectAltName"]
    assert run_ok(lab_host("srv1"), f"openssl x509 -in {TLS}/ca.crt -noout -serial") == ca_before
