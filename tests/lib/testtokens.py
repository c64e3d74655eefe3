"""OIDC tokens for the tests: an RS256 issuer of their own (a key, its discovery
document and key set), minting id tokens with whatever claims a test wants."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(value: int) -> str:
    return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass
class Issuer:
    url: str  # the issuer (iss); its discovery document is under it
    kid: str = "test-key-1"
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks.json"

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.url, "jwks_uri": self.jwks_url}

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                          "n": _int(numbers.n), "e": _int(numbers.e)}]}  # fmt: skip

    def documents(self) -> dict[str, dict[str, Any]]:
        return {self.discovery_url: self.discovery(), self.jwks_url: self.jwks()}

    def mint(self, lifetime: int = 3600, alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": self.url, "iat": now, "nbf": now, "exp": now + lifetime, **claims}
        header = {"alg": alg, "typ": "JWT", "kid": self.kid}
        signed = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
        signature = self.key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signed}.{b64(signature)}"

    def private_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())  # fmt: skip
