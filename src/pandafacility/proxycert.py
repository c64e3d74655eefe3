"""RFC 3820 proxy certificates: a short-lived certificate that a credential's holder signs
with its own key, named after it plus one CN (a number), carrying proxyCertInfo with the
policy that it inherits all of its owner's rights (or Globus' limited policy). The pilot
factory derives the pilots' proxies from their long-lived credential, which never leaves
the submit host; a proxy expires within hours wherever it ends up.

A proxy file holds the proxy, its key and the owner's certificate, as voms-proxy-init
writes it (X509_USER_PROXY).
"""

from __future__ import annotations

import datetime
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PROXY_CERT_INFO = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.14")
INHERIT_ALL = "1.3.6.1.5.5.7.21.1"
LIMITED = "1.3.6.1.4.1.3536.1.1.1.9"


def _der(tag: int, body: bytes) -> bytes:
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _der_oid(dotted: str) -> bytes:
    first, second, *rest = (int(n) for n in dotted.split("."))
    out = bytearray([40 * first + second])
    for n in rest:
        chunk = [n & 0x7F]
        while n > 0x7F:
            n >>= 7
            chunk.append(0x80 | (n & 0x7F))
        out += bytes(reversed(chunk))
    return _der(0x06, bytes(out))


def proxy(
    owner_cert: x509.Certificate, owner_key: Any, hours: float = 12, limited: bool = False
) -> tuple[x509.Certificate, Any]:
    """A proxy of ``owner_cert`` signed with ``owner_key``, valid for ``hours`` (from five
    minutes ago, for clocks a little behind)."""
    key = ec.generate_private_key(ec.SECP256R1())
    serial = secrets.randbits(31) | 1  # a short positive number, the proxy's CN
    subject = x509.Name([*owner_cert.subject, x509.NameAttribute(NameOID.COMMON_NAME, str(serial))])
    policy = _der(0x30, _der_oid(LIMITED if limited else INHERIT_ALL))
    now = datetime.datetime.now(datetime.timezone.utc)
    not_after = min(now + datetime.timedelta(hours=hours), _not_after(owner_cert))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(owner_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.UnrecognizedExtension(PROXY_CERT_INFO, _der(0x30, policy)), True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), True
        )
    )
    return builder.sign(owner_key, hashes.SHA256()), key


def _not_after(cert: x509.Certificate) -> datetime.datetime:
    """A certificate's expiry, aware (cryptography before 42 has only the naive one)."""
    aware = getattr(cert, "not_valid_after_utc", None)
    return aware or cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def pem(obj: Any) -> bytes:
    if hasattr(obj, "private_bytes"):
        return obj.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    return obj.public_bytes(serialization.Encoding.PEM)


def hours_left(path: Path) -> float:
    """Hours until the first certificate of ``path`` expires; 0 when there is none."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return 0.0
    left = _not_after(cert) - datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, left.total_seconds() / 3600)


def renew(credential: Path, out: Path, hours: float, renew_below: float) -> bool:
    """Write a new proxy of ``credential`` (certificate and key, one PEM) to ``out``
    (owner only, replaced atomically) unless the one there has ``renew_below`` hours
    left or more. Whether it wrote one."""
    if hours_left(out) >= renew_below:
        return False
    data = credential.read_bytes()
    owner = x509.load_pem_x509_certificate(data)
    key = serialization.load_pem_private_key(data, password=None)
    cert, proxy_key = proxy(owner, key, hours)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".proxy-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem(cert) + pem(proxy_key) + pem(owner))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
