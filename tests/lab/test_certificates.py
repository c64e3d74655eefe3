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
    """A handshake from another host, once as if through the VIP, once direct (the
    test's port opened in srv2's firewall for log1 until the next reload)."""
    server, client = lab_host("srv2"), lab_host("log1")
    server.run(
        "systemctl stop verify-tls 2>/dev/null; systemctl reset-failed verify-tls 2>/dev/null"
    )
    rule = f"rule family=ipv4 source address={ADDRESSES['log1']} port port=4433 protocol=tcp accept"
    run_ok(server, f"firewall-cmd --add-rich-rule='{rule}'")
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
        server.run(f"firewall-cmd --remove-rich-rule='{rule}'")


def served(address: str, name: str, port: int) -> dict:
    """The certificate a TLS server presents, as the ssl module reads it (verified)."""
    context = ssl.create_default_context(cafile=str(CA_CERT))
    with (
        socket.create_connection((address, port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=name) as tls,
    ):
        return tls.getpeercert()


def file_cert(name: str) -> dict:
    """The host certificate on a lab host: its serial (upper-case hex), expiry (seconds
    since the epoch) and the text that lists its names."""
    host = lab_host(name)
    out = run_ok(
        host, f"openssl x509 -in {TLS}/host.crt -noout -serial -enddate -ext subjectAltName"
    )
    end = out.split("notAfter=")[1].splitlines()[0]
    return {"serial": out.split("serial=")[1].split()[0].upper(),
            "not_after": ssl.cert_time_to_seconds(end), "text": out}  # fmt: skip


def served_serials() -> tuple[str, str]:
    """The serials Apache on srv1 serves directly, and HAProxy through the VIP."""
    direct = served(ADDRESSES["srv1"], f"srv1.{DOMAIN}", 25443)
    through_vip = served(SERVER_VIP, VIP, 25443)
    return direct["serialNumber"].upper(), through_vip["serialNumber"].upper()


# The plays that issue the certificates and run the daemons that serve them.
RENEWAL_TAGS = "certificates,loadbalancer,panda_server"


def renewal_run(log: str, extra_vars: str = "{}") -> None:
    run = run_site(INVENTORY, "--limit", "srv1:lb1", "--tags", RENEWAL_TAGS,
                   "-e", extra_vars, log=LOGS / log)  # fmt: skip
    assert run.returncode == 0, run.failures()


def test_renewed_certificate_is_served_in_the_same_run(converged, tmp_path):
    """Expiry inside the renewal window reissues a certificate, longer-lived, and Apache
    (directly) and HAProxy (through the VIP, answering throughout) serve it when the run
    ends; a new name reissues it too; converging back drops the name. The CA never
    changes, and an unchanged inventory leaves certificates alone (the second run)."""
    ca_before = run_ok(lab_host("srv1"), f"openssl x509 -in {TLS}/ca.crt -noout -serial")
    before = {h: file_cert(h) for h in ("srv1", "lb1")}
    assert served_serials() == (before["srv1"]["serial"], before["lb1"]["serial"])

    pem = testpki.user_pem(USER_DN, testpki.load_ca(CA_CERT, CA_KEY), tmp_path / "u.pem")
    with Soak(pem) as soak:  # through the VIP, while Apache and HAProxy reload
        renewal_run("renew.log", '{"certificates_lifetime_days": 400,'
                                 ' "certificates_renew_before_days": 380}')  # fmt: skip
    assert soak.sent > 5 and soak.errors == [], f"{len(soak.errors)}/{soak.sent}: {soak.errors}"
    renewed = {h: file_cert(h) for h in ("srv1", "lb1")}
    for h in renewed:
        assert renewed[h]["serial"] != before[h]["serial"], h
        assert renewed[h]["not_after"] > before[h]["not_after"], h
    assert served_serials() == (renewed["srv1"]["serial"], renewed["lb1"]["serial"])

    extra = f"extra.{DOMAIN}"
    renewal_run("rename.log", f'{{"certificates_extra_names": ["{extra}"]}}')
    for h in ("srv1", "lb1"):
        assert f"DNS:{extra}" in file_cert(h)["text"] and f"DNS:{VIP}" in file_cert(h)["text"]
    for address, name in ((ADDRESSES["srv1"], f"srv1.{DOMAIN}"), (SERVER_VIP, VIP)):
        assert ("DNS", extra) in served(address, name, 25443)["subjectAltName"], name

    renewal_run("renew-back.log")
    for h in ("srv1", "lb1"):
        assert f"DNS:{extra}" not in file_cert(h)["text"], h
    for address, name in ((ADDRESSES["srv1"], f"srv1.{DOMAIN}"), (SERVER_VIP, VIP)):
        assert ("DNS", extra) not in served(address, name, 25443)["subjectAltName"], name
    assert run_ok(lab_host("srv1"), f"openssl x509 -in {TLS}/ca.crt -noout -serial") == ca_before
