"""Throwaway certificates for tests and benchmarks: a CA, hosts, and grid-style users.

DNs are written the grid's way (``/DC=test/DC=panda/CN=Test Pilot``). A user's PEM holds
certificate, key and the CA in one file, as panda-client reads X509_USER_PROXY.
Needs the ``cryptography`` package (the toolchain's requirements).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


def pem(obj: Any) -> bytes:
    if hasattr(obj, "private_bytes"):
        return obj.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    return obj.public_bytes(serialization.Encoding.PEM)


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
