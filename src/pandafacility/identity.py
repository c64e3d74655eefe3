"""Who is calling: the client certificate's subject DN, from Apache's mod_ssl when the
client reached this server directly, or from the header the load balancer sets when
it terminated TLS itself. That header is believed only on a connection on which a load
balancer authenticated with its own certificate: a subject DN on the trusted list,
issued by the CA that issued this server's certificate (the facility CA). Not by
address: a TCP or passthrough service on a load balancer arrives from the same address
carrying whatever its client wrote, but with the client's certificate, not the load
balancer's.

Grid proxies: mod_gridsite (panda.facility.facility's grid_apache tasks) lets mod_ssl
verify an RFC 3820 chain and exports the VOMS FQANs whose attribute certificate it
verified against the vomsdir's .lsc files (GRST_VOMS_FQANS, ';'-separated); Apache marks
a proxy that inherits all of its owner's rights (GRID_PROXY_INHERITS). A load balancer's
Apache passes both on as headers, believed on the same terms as its DN header. Any other
proxy (limited, independent, of a policy unknown here) is nobody: upstream refuses
limited proxies on every authenticated call."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

LB_DN_HEADER = "HTTP_X_SSL_CLIENT_S_DN"
LB_VERIFY_HEADER = "HTTP_X_SSL_CLIENT_VERIFY"
LB_ISSUER_HEADER = "HTTP_X_SSL_CLIENT_I_DN"
LB_FQANS_HEADER = "HTTP_X_GRID_VOMS_FQANS"
LB_INHERITS_HEADER = "HTTP_X_GRID_PROXY_INHERITS"
FQANS_ENV = "GRST_VOMS_FQANS"
INHERITS_ENV = "GRID_PROXY_INHERITS"
_FQAN = re.compile(r"^(/[A-Za-z0-9._-]+)+(/Role=[A-Za-z0-9._-]+)?(/Capability=[A-Za-z0-9._-]+)?$")


@dataclass(frozen=True)
class Identity:
    dn: str | None
    production: bool
    fqans: tuple[str, ...] = ()
    limited: bool = False  # a limited proxy presented: refused as an identity

    @property
    def authenticated(self) -> bool:
        return bool(self.dn)


def client_dn(environ: dict[str, Any], proxy_dns: frozenset[str]) -> str | None:
    """The verified DN, or None (also for a limited proxy). ``proxy_dns`` holds the
    load balancers' certificate DNs. mod_ssl's variables need ``SSLOptions +StdEnvVars``
    and ``+LegacyDNStringFormat`` (the grid's /DC=.../CN=... form)."""
    dn = _presented_dn(environ, proxy_dns)
    return None if dn is None or limited_proxy(environ, proxy_dns) else dn


def _presented_dn(environ: dict[str, Any], proxy_dns: frozenset[str]) -> str | None:
    if environ.get("SSL_CLIENT_VERIFY") != "SUCCESS" or not environ.get("SSL_CLIENT_S_DN"):
        return None
    dn = str(environ["SSL_CLIENT_S_DN"])
    if not _is_load_balancer(environ, dn, proxy_dns):
        return dn
    # A load balancer speaks for its client; it is never a user itself.
    if environ.get(LB_VERIFY_HEADER) == "SUCCESS" and environ.get(LB_DN_HEADER):
        return str(environ[LB_DN_HEADER])
    return None


def limited_proxy(environ: dict[str, Any], proxy_dns: frozenset[str]) -> bool:
    """Whether the verified certificate is a proxy that may not act for its owner here:
    Globus' legacy limited form by its name, an RFC 3820 proxy unless Apache saw that it
    inherits all of its owner's rights (GRID_PROXY_INHERITS)."""
    dn = _presented_dn(environ, proxy_dns)
    if dn is None:
        return False
    via_lb = dn != environ.get("SSL_CLIENT_S_DN")
    issuer = environ.get(LB_ISSUER_HEADER if via_lb else "SSL_CLIENT_I_DN")
    inherits = bool(environ.get(LB_INHERITS_HEADER if via_lb else INHERITS_ENV))
    is_proxy = owner_dn(dn, issuer) != dn
    return "/CN=limited proxy" in dn or (is_proxy and not inherits)


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


def client_fqans(environ: dict[str, Any], proxy_dns: frozenset[str]) -> tuple[str, ...]:
    """The verified VOMS FQANs of the certificate client_dn names (the load balancer's
    header when it speaks for its client)."""
    dn = client_dn(environ, proxy_dns)
    if dn is None:
        return ()
    via_lb = dn != environ.get("SSL_CLIENT_S_DN")
    return fqans(str(environ.get(LB_FQANS_HEADER if via_lb else FQANS_ENV) or ""))


def fqans(raw: str) -> tuple[str, ...]:
    """FQANs from gridsite's ';'-separated list; anything not shaped as one is dropped."""
    return tuple(f for f in (p.strip() for p in raw.split(";")[:64]) if _FQAN.match(f))


def has_role(fqan_list: tuple[str, ...], roles: frozenset[str]) -> bool:
    """Whether an FQAN carries one of ``roles`` (``/atlas/Role=production``): the group
    and role must match exactly; a capability after them is ignored."""
    return any(f.split("/Capability=")[0] in roles for f in fqan_list)


def identify(
    environ: dict[str, Any],
    proxy_dns: frozenset[str],
    production_dns: frozenset[str],
    production_roles: frozenset[str] = frozenset(),
) -> Identity:
    """Who is calling: a proxy counts as its owner (the end-entity DN), so a job
    submitted with one proxy is the same user's with the next. Production by the DN
    list or by a verified VOMS role of ``production_roles``. A limited proxy is nobody."""
    dn = client_dn(environ, proxy_dns)
    if dn is None:
        return Identity(dn=None, production=False, limited=limited_proxy(environ, proxy_dns))
    found = client_fqans(environ, proxy_dns)
    owner = owner_dn(dn, client_issuer(environ, proxy_dns))
    production = member(owner, production_dns) or has_role(found, production_roles)
    return Identity(dn=owner, production=production, fqans=found)


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
