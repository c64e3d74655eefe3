"""Host certificates: signed by the facility CA, valid for host and VIP names."""

from __future__ import annotations

from conftest import other_host, run_ok

TLS = "/etc/panda-facility/tls"
DOMAIN = "mol.panda.test"
VIP = f"pandaserver.{DOMAIN}"


def verify(host, name: str, flag: str = "-verify_hostname"):
    return host.run(f"openssl verify -CAfile {TLS}/ca.crt {flag} {name} {TLS}/host.crt")


def test_key_is_private(host):
    key = host.file(f"{TLS}/host.key")
    assert key.user == "root" and key.group == "root"
    assert key.mode == 0o600


def test_cert_verifies_for_fqdn_and_short_name(host):
    short = host.backend.get_hostname()
    for name in (f"{short}.{DOMAIN}", short):
        cmd = verify(host, name)
        assert cmd.rc == 0, cmd.stdout + cmd.stderr


def test_cert_verifies_for_the_host_address(host):
    address = host.interface("eth0").addresses[0]
    cmd = verify(host, address, "-verify_ip")
    assert cmd.rc == 0, cmd.stdout + cmd.stderr


def test_vip_name_only_on_backends_of_that_vip(host):
    cmd = verify(host, VIP)
    if host.backend.get_hostname() == "mol-srv":
        assert cmd.rc == 0, cmd.stdout + cmd.stderr
    else:
        assert cmd.rc != 0, "a host outside panda_servers got the pandaserver VIP name"


def test_ca_in_system_trust_store(host):
    run_ok(host, f"openssl verify {TLS}/host.crt")


def test_client_verifies_backend_by_vip_name_and_directly(host):
    """A TLS handshake from the other host, once as if through the VIP, once direct."""
    if host.backend.get_hostname() != "mol-log":
        return
    server = other_host("mol-srv")
    server.run(
        "systemctl stop verify-tls 2>/dev/null; systemctl reset-failed verify-tls 2>/dev/null"
    )
    run_ok(
        server,
        f"systemd-run --unit=verify-tls --collect timeout 60 openssl s_server "
        f"-accept 4433 -cert {TLS}/host.crt -key {TLS}/host.key -www -quiet",
    )
    run_ok(
        host,
        "bash -c 'for i in $(seq 50); do (echo > /dev/tcp/mol-srv/4433) 2>/dev/null "
        "&& exit 0; sleep 0.1; done; exit 1'",
    )
    try:
        for name in (VIP, f"mol-srv.{DOMAIN}"):
            out = run_ok(
                host,
                f"echo | openssl s_client -connect mol-srv:4433 -servername {name} "
                f"-verify_hostname {name} -verify_return_error -brief 2>&1",
            )
            assert "Verification: OK" in out, out
    finally:
        server.run("systemctl stop verify-tls")
