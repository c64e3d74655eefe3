"""Throwaway certificates for tests and benchmarks: a CA, hosts, and grid-style users.

DNs are written the grid's way (``/DC=test/DC=panda/CN=Test Pilot``). A user's PEM holds
certificate, key and the CA in one file, as panda-client reads X509_USER_PROXY. A proxy
(RFC 3820, as voms-proxy-init makes them) is signed by its owner's key: its PEM holds
the proxy, its key and the owner's certificate, the chain a grid client presents.
Needs the ``cryptography`` package (the toolchain's requirements).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pandafacility import proxycert

_OIDS = {
    "DC": NameOID.DOMAIN_COMPONENT,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
}


def name(dn: str) -> x509.Name:
    parts = [p.split("=", 1) for p in dn.strip("/").split("/")]
    return x509.Name([x509.NameAttribute(_OIDS[k], v) for k, v in parts])


def _san(entry: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(entry))
    except ValueError:
        return x509.DNSName(entry)


def issue(
    dn: str,
    issuer: tuple[x509.Certificate, Any] | None = None,
    ca: bool = False,
    sans: tuple[str, ...] = (),
    hours: int = 2,
) -> tuple[x509.Certificate, Any]:
    """A certificate and its key; self-signed when there is no ``issuer`` (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = name(dn)
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=hours))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        san = x509.SubjectAlternativeName([_san(s) for s in sans])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signer, hashes.SHA256()), key


def voms_server(dn: str, ca: tuple[x509.Certificate, Any]) -> tuple[x509.Certificate, Any]:
    """A VOMS server's certificate as voms-proxy-fake needs it: an RSA key, and key
    identifiers (its attribute certificates name the issuer's)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(dn))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[0].public_key()), False
        )
    )
    return builder.sign(ca[1], hashes.SHA256()), key


def crl(ca: tuple[x509.Certificate, Any], serials: list[int], hours: int = 2) -> bytes:
    """The CA's revocation list (PEM) revoking ``serials``, as fetch-crl would install it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca[0].subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(hours=hours))
    )
    for serial in serials:
        revoked = x509.RevokedCertificateBuilder().serial_number(serial)
        builder = builder.add_revoked_certificate(revoked.revocation_date(now).build())
    return builder.sign(ca[1], hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


pem = proxycert.pem  # a certificate or key in PEM (unencrypted)


def load_ca(cert_file: Path, key_file: Path) -> tuple[x509.Certificate, Any]:
    """An existing CA (the certificates role's, on the controller)."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    return cert, key


def user_pem(dn: str, ca: tuple[x509.Certificate, Any], path: Path) -> Path:
    """Certificate, key and CA in one private file, for ``dn`` signed by ``ca``."""
    cert, key = issue(dn, ca)
    path.write_bytes(pem(cert) + pem(key) + pem(ca[0]))
    path.chmod(0o600)
    return path


def proxy(
    owner: tuple[x509.Certificate, Any], limited: bool = False, hours: int = 2
) -> tuple[x509.Certificate, Any]:
    """An RFC 3820 proxy of ``owner`` (cert, key): subject = owner's + CN=<serial>, made
    as the pilot factory makes its pilots' (pandafacility.proxycert)."""
    return proxycert.proxy(owner[0], owner[1], hours, limited)


def proxy_pem(dn: str, ca: tuple[x509.Certificate, Any], path: Path, limited: bool = False) -> Path:
    """A proxy of a new certificate for ``dn``: proxy, its key, the owner's certificate
    and the CA in one private file (what voms-proxy-init writes, plus the CA)."""
    owner = issue(dn, ca)
    cert, key = proxy(owner, limited)
    path.write_bytes(pem(cert) + pem(key) + pem(owner[0]) + pem(ca[0]))
    path.chmod(0o600)
    return path
