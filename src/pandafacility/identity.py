"""Who is calling: the client certificate's subject DN, from Apache's mod_ssl when the
client reached this server directly, or from the header the load balancer sets when
it terminated TLS itself. That header is believed only on a connection on which a load
balancer authenticated with its own certificate: a subject DN on the trusted list,
issued by the CA that issued this server's certificate (the facility CA). Not by
address: a TCP or passthrough service on a load balancer arrives from the same address
carrying whatever its client wrote, but with the client's certificate, not the load
balancer's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LB_DN_HEADER = "HTTP_X_SSL_CLIENT_S_DN"
LB_VERIFY_HEADER = "HTTP_X_SSL_CLIENT_VERIFY"
LB_ISSUER_HEADER = "HTTP_X_SSL_CLIENT_I_DN"


@dataclass(frozen=True)
class Identity:
    dn: str | None
    production: bool

    @property
    def authenticated(self) -> bool:
        return bool(self.dn)


def client_dn(environ: dict[str, Any], proxy_dns: frozenset[str]) -> str | None:
    """The verified DN, or None. ``proxy_dns`` holds the load balancers'
    certificate DNs. mod_ssl's variables need ``SSLOptions +StdEnvVars`` and
    ``+LegacyDNStringFormat`` (the grid's /DC=.../CN=... form)."""
    if environ.get("SSL_CLIENT_VERIFY") != "SUCCESS" or not environ.get("SSL_CLIENT_S_DN"):
        return None
    dn = str(environ["SSL_CLIENT_S_DN"])
    if not _is_load_balancer(environ, dn, proxy_dns):
        return dn
    # A load balancer speaks for its client; it is never a user itself.
    if environ.get(LB_VERIFY_HEADER) == "SUCCESS" and environ.get(LB_DN_HEADER):
        return str(environ[LB_DN_HEADER])
    return None


def client_issuer(environ: dict[str, Any], proxy_dns: frozenset[str]) -> str | None:
    """The issuer DN of the certificate client_dn names (from the load balancer's
    header when it speaks for its client)."""
    dn = client_dn(environ, proxy_dns)
    if dn is None:
        return None
    if dn != environ.get("SSL_CLIENT_S_DN"):  # the load balancer's client
        return environ.get(LB_ISSUER_HEADER)
    return environ.get("SSL_CLIENT_I_DN")


def owner_dn(dn: str, issuer: str | None) -> str:
    """The end-entity DN a certificate acts for. An RFC 3820 proxy is issued by its
    owner (or by another proxy of it) and named after it plus one CN: it acts for the
    owner. Any other certificate, even one whose DN ends in /CN=<digits>, is its own."""
    bare = canonical(dn)
    if bare != dn and issuer and canonical(issuer) == bare:
        return bare
    return dn


def _is_load_balancer(environ: dict[str, Any], dn: str, proxy_dns: frozenset[str]) -> bool:
    issuer = environ.get("SSL_CLIENT_I_DN")
    return dn in proxy_dns and bool(issuer) and issuer == environ.get("SSL_SERVER_I_DN")


def identify(
    environ: dict[str, Any], proxy_dns: frozenset[str], production_dns: frozenset[str]
) -> Identity:
    """Who is calling: a proxy counts as its owner (the end-entity DN), so a job
    submitted with one proxy is the same user's with the next."""
    dn = client_dn(environ, proxy_dns)
    owner = owner_dn(dn, client_issuer(environ, proxy_dns)) if dn else None
    return Identity(dn=owner, production=member(owner, production_dns))


def member(dn: str | None, dns: frozenset[str]) -> bool:
    """Whether ``dn`` (perhaps a proxy's) is its owner's on a list of canonical DNs."""
    return dn is not None and canonical(dn) in dns


def canonical(dn: str) -> str:
    """Proxy certificates append /CN=<number> or /CN=proxy to the owner's DN: the owner
    is who is on the production list."""
    parts = dn.split("/CN=")
    while len(parts) > 2 and (parts[-1].isdigit() or parts[-1] in ("proxy", "limited proxy")):
        parts.pop()
    return "/CN=".join(parts)


def canonical_dns(dns: list[str]) -> frozenset[str]:
    return frozenset(canonical(dn) for dn in dns)
