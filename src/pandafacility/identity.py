"""Who is calling: the client certificate's subject DN, from Apache's mod_ssl when the
client reached this server directly, or from the header the load balancer sets when
it terminated TLS itself. That header is believed only on connections from the load
balancers' addresses: anyone else could write it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LB_DN_HEADER = "HTTP_X_SSL_CLIENT_S_DN"
LB_VERIFY_HEADER = "HTTP_X_SSL_CLIENT_VERIFY"


@dataclass(frozen=True)
class Identity:
    dn: str | None
    production: bool

    @property
    def authenticated(self) -> bool:
        return bool(self.dn)


def client_dn(environ: dict[str, Any], trusted_proxies: frozenset[str]) -> str | None:
    """The verified DN, or None. mod_ssl's variables need ``SSLOptions +StdEnvVars``
    and ``+LegacyDNStringFormat`` (the grid's /DC=.../CN=... form)."""
    if environ.get("SSL_CLIENT_VERIFY") == "SUCCESS" and environ.get("SSL_CLIENT_S_DN"):
        return str(environ["SSL_CLIENT_S_DN"])
    if environ.get("REMOTE_ADDR") in trusted_proxies and environ.get(LB_VERIFY_HEADER) == "SUCCESS":
        dn = environ.get(LB_DN_HEADER)
        return str(dn) if dn else None
    return None


def identify(
    environ: dict[str, Any], trusted_proxies: frozenset[str], production_dns: frozenset[str]
) -> Identity:
    dn = client_dn(environ, trusted_proxies)
    return Identity(dn=dn, production=dn is not None and _canonical(dn) in production_dns)


def _canonical(dn: str) -> str:
    """Proxy certificates append /CN=<number> or /CN=proxy to the owner's DN: the owner
    is who is on the production list."""
    parts = dn.split("/CN=")
    while len(parts) > 2 and (parts[-1].isdigit() or parts[-1] in ("proxy", "limited proxy")):
        parts.pop()
    return "/CN=".join(parts)


def canonical_dns(dns: list[str]) -> frozenset[str]:
    return frozenset(_canonical(dn) for dn in dns)
