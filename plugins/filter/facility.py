"""Filters that turn the facility description in the inventory into per-host facts.

They live here, once, because several roles need the same answers: which VIP names a
host serves (certificates now, the load balancer later) and how a host is named.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping

DOCUMENTATION = r"""
name: facility
short_description: Derive per-host names from the facility description
description:
  - C(host_fqdn) gives a host's fully qualified name from its inventory name.
  - C(vip_names) gives the VIP names of every service a host serves.
  - C(host_sans) gives the SubjectAltName list for a host certificate.
  - C(server_id) gives a stable MariaDB server_id from a host name.
  - C(server_ids) gives C(host=id) for hosts, honouring C(mariadb_server_id) overrides.
  - C(host_address) gives the address other hosts use to reach a host.
  - C(unaddressed) keeps the hosts whose address is not known yet.
  - C(ipv4_network) gives the network (CIDR) of an address and netmask.
  - C(lb_services) completes each service entry with the load balancer defaults.
  - C(vrrp_priorities) gives each load balancer's priority in a VRRP group.
  - C(queue_data) gives the queue data pilots read, by queue name.
  - C(queue_problems) lists what is wrong with the queues' placement on submit hosts.
  - C(factory_queues) gives the queues one submit host's pilot factory serves.
  - C(dn_subject) turns a grid DN (/DC=org/CN=name) into an ordered subject.
  - C(rsa_jwk) gives the JSON Web Key of an RSA public key (PEM), for a token issuer.
  - C(ordered_name) turns x509_certificate_info's subject_ordered into x509_crl's issuer_ordered.
  - C(lsc_path) gives the vomsdir path of a VOMS server's .lsc file.
  - C(host_dns) gives the certificate DNs of hosts (/CN=<fqdn>, or /OU=<unit>/CN=<fqdn>).
"""


def host_fqdn(inventory_hostname: str, domain: str = "") -> str:
    """An inventory name that has a dot is already a FQDN; a short one gets the domain."""
    if "." in inventory_hostname or not domain:
        return inventory_hostname
    return f"{inventory_hostname}.{domain}"


def vip_names(
    services: Iterable[Mapping],
    hostname: str,
    groups: Mapping[str, Iterable[str]],
    lb_group: str = "loadbalancers",
) -> list[str]:
    """VIP names a host answers for: a backend answers for its services' VIPs, a load
    balancer for every VIP, because it holds them and may terminate TLS for them."""
    is_lb = hostname in groups.get(lb_group, [])
    names: set[str] = set()
    for service in services:
        if is_lb or hostname in groups.get(service.get("backend_group", ""), []):
            names.add(str(service["vip_name"]).lower())
            names.update(str(a).lower() for a in service.get("vip_aliases", []))
    return sorted(names)


def host_sans(
    fqdn: str,
    addresses: Iterable[str] = (),
    names: Iterable[str] = (),
) -> list[str]:
    """SubjectAltNames: the FQDN, its short name, every other name, and the host's
    addresses (loopback left out: no client reaches a service that way by name)."""
    dns = {fqdn.lower(), fqdn.split(".", 1)[0].lower(), *(n.lower() for n in names)}
    ips: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for address in addresses:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])
        if not (ip.is_loopback or ip.is_link_local):
            ips.add(ip)
    return [f"DNS:{n}" for n in sorted(dns)] + [
        f"IP:{ip}" for ip in sorted(ips, key=lambda i: (i.version, int(i)))
    ]


def server_id(hostname: str) -> int:
    """A server_id from the host's name: stable when other hosts come and go, which an
    index into a group is not, and in MariaDB's range 1..2**32-1."""
    digest = hashlib.sha256(hostname.lower().encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**32 - 1) + 1


def server_ids(hosts: Iterable[str], hostvars: Mapping) -> list[str]:
    """``host=id`` for each host: its mariadb_server_id override, else the derived id."""
    pairs = []
    for host in hosts:
        override = hostvars[host].get("mariadb_server_id")
        pairs.append(f"{host}={int(override) if override is not None else server_id(host)}")
    return pairs


def host_address(host: str, hostvars: Mapping) -> str:
    """The address peers use for a host: ``facility_address`` when the inventory gives
    one, else the IPv4 address of the host's default route (its facts)."""
    hv = hostvars[host]
    given = hv.get("facility_address")
    if given:
        return str(given)
    facts = hv.get("ansible_facts", {}).get("default_ipv4", {})
    if facts.get("address"):
        return str(facts["address"])
    raise ValueError(
        f"no address known for host {host}: set facility_address for it in the "
        "inventory, or let the play gather its facts"
    )


def unaddressed(hosts: Iterable[str], hostvars: Mapping) -> list[str]:
    """The hosts C(host_address) cannot answer for yet: their facts must be gathered."""
    missing = []
    for host in dict.fromkeys(hosts):
        try:
            host_address(host, hostvars)
        except ValueError:
            missing.append(host)
    return missing


def db_accounts(users: Iterable[Mapping], hostvars: Mapping) -> list[dict]:
    """One database account per user and client host: each user's ``hosts`` (inventory
    names) become accounts for their addresses; a user with ``host`` (e.g. localhost)
    keeps that one. An empty ``hosts`` list gives no account at all."""
    accounts = []
    for user in users:
        base = {k: v for k, v in user.items() if k not in ("hosts", "host")}
        if "host" in user:
            accounts.append({**base, "host": str(user["host"])})
            continue
        addresses = dict.fromkeys(host_address(h, hostvars) for h in user.get("hosts") or [])
        accounts.extend({**base, "host": address} for address in addresses)
    return accounts


def db_stale_accounts(
    existing: Iterable[Mapping], users: list[Mapping], hostvars: Mapping
) -> list[dict]:
    """The rows of mysql.user (``User``, ``Host``) of the managed ``users`` that
    C(db_accounts) no longer asks for: a client host that left the inventory, or the
    wildcard ``%`` of an earlier release."""
    wanted = {(a["name"], a["host"]) for a in db_accounts(users, hostvars)}
    names = {str(u["name"]) for u in users}
    return [
        {"name": row["User"], "host": row["Host"]}
        for row in existing
        if row["User"] in names and (row["User"], row["Host"]) not in wanted
    ]


def _gtid_seqs(position: str) -> dict[int, int]:
    """A GTID position (``domain-server-seq,...``) as the highest seq of each domain."""
    seqs: dict[int, int] = {}
    for part in (position or "").replace("\n", "").split(","):
        if part.strip():
            domain, _, seq = part.strip().split("-")
            seqs[int(domain)] = max(seqs.get(int(domain), 0), int(seq))
    return seqs


def gtid_ahead(positions: Mapping[str, str], host: str) -> list[str]:
    """The hosts whose GTID position holds a transaction that ``host``'s does not:
    in some replication domain a higher sequence number."""
    mine = _gtid_seqs(positions.get(host, ""))
    return [
        other
        for other, position in positions.items()
        if other != host
        and any(seq > mine.get(domain, 0) for domain, seq in _gtid_seqs(position).items())
    ]


def ipv4_network(address: str, netmask: str) -> str:
    """The CIDR network an interface address belongs to, e.g. 10.1.2.0/24."""
    return str(ipaddress.ip_network(f"{address}/{netmask}", strict=False))


def lb_services(services: Iterable[Mapping], defaults: Mapping) -> list[dict]:
    """Each service entry with the load balancer's defaults filled in: the templates and
    the checks then read one complete shape instead of repeating every default."""
    done = []
    for service in services:
        entry = {**defaults, **service}
        if "backend_port" not in service:
            entry["backend_port"] = entry.get("port")
        if "backend_tls" not in service:
            entry["backend_tls"] = entry.get("tls") != "none"
        if entry.get("tls") == "passthrough" and "mode" not in service:
            entry["mode"] = "tcp"
        done.append(entry)
    return done


def vrrp_priorities(group: Mapping, hosts: Iterable[str]) -> dict[str, int]:
    """Each load balancer's priority in a VRRP group: the inventory's value, else one
    from the host's place in the load balancer group (200, 190, ...), so that a group
    without explicit priorities still has a single, predictable holder."""
    given = group.get("priorities") or {}
    return {
        host: int(given[host]) if host in given else 200 - 10 * index
        for index, host in enumerate(hosts)
    }


# Keys of a facility_queues entry that place and pace its pilots; the rest is the queue
# data pilots read.
FACTORY_KEYS = (
    "submit_host", "site", "grid_resource", "shared",
    "min_idle", "max_idle", "jobs_per_pilot", "max_per_cycle",
)  # fmt: skip
_PACE = ("min_idle", "max_idle", "jobs_per_pilot", "max_per_cycle")


def queue_data(queues: Iterable[Mapping], placement: Iterable[str] = FACTORY_KEYS) -> dict:
    """Each queue's data for the pilots, by name: the inventory entry without its name
    and without the keys that only place it in the facility (its submit host); its
    site is the pilots' atlas_site unless the entry sets one."""
    skip = {"name", *placement}
    data = {}
    for q in queues:
        entry = {k: v for k, v in q.items() if k not in skip}
        if q.get("site"):  # the grid site's name is the pilots' atlas_site unless set
            entry.setdefault("atlas_site", str(q["site"]))
        data[str(q["name"])] = entry
    return data


def _submit_hosts(queue: Mapping) -> list[str]:
    value = queue.get("submit_host")
    if value in (None, "", []):
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


def queue_problems(
    queues: Iterable[Mapping], submit_hosts: Iterable[str], sites: Iterable[str]
) -> list[str]:
    """Each queue needs one submit host of the group (several only with shared: true),
    a site of the grid_sites group or its own grid_resource, and sane pacing."""
    hosts, site_names = set(submit_hosts), set(sites)
    problems = []
    for queue in queues:
        name = queue.get("name", "?")
        placed = _submit_hosts(queue)
        if not placed:
            problems.append(f"queue {name}: no submit_host")
        elif len(placed) > 1 and not queue.get("shared"):
            problems.append(
                f"queue {name}: on {len(placed)} submit hosts ({', '.join(placed)});"
                " a queue served by several needs shared: true"
            )
        outside = [h for h in placed if h not in hosts]
        problems += [f"queue {name}: submit_host {h} is not in submit_hosts" for h in outside]
        if not queue.get("grid_resource") and not queue.get("site"):
            problems.append(f"queue {name}: no site (a host of grid_sites) nor grid_resource")
        elif not queue.get("grid_resource") and queue.get("site") not in site_names:
            problems.append(
                f"queue {name}: site {queue.get('site')!r} is not a host of grid_sites"
                " (or give the queue a grid_resource)"
            )
        pace = {k: queue[k] for k in _PACE if k in queue}
        bad = [k for k, v in pace.items() if not isinstance(v, int | float) or v < 0]
        if bad:
            problems.append(f"queue {name}: {', '.join(bad)} must be numbers, not negative")
        elif pace.get("jobs_per_pilot", 1) <= 0 or pace.get("max_per_cycle", 1) < 1:
            problems.append(f"queue {name}: jobs_per_pilot and max_per_cycle must be positive")
        elif pace.get("min_idle", 0) > pace.get("max_idle", float("inf")):
            problems.append(f"queue {name}: min_idle is above max_idle")
    return problems


def factory_queues(
    queues: Iterable[Mapping], host: str, defaults: Mapping, domain: str = ""
) -> list[dict]:
    """The queues ``host``'s factory serves, with their grid_resource and pacing; a queue
    shared by n hosts gives each an n-th of its idle target."""
    mine = []
    for queue in queues:
        placed = _submit_hosts(queue)
        if host not in placed:
            continue
        pace = {**defaults, **{k: queue[k] for k in _PACE if k in queue}}
        share = len(placed)
        site = str(queue.get("site", ""))
        name = site.split(".")[0]
        grid = queue.get("grid_resource") or (
            f"condor {name}@{name} {host_fqdn(site, domain)}:9618"
        )
        mine.append(
            {
                "name": str(queue["name"]),
                "grid_resource": str(grid),
                "min_idle": -(-int(pace["min_idle"]) // share),
                "max_idle": -(-int(pace["max_idle"]) // share),
                "jobs_per_pilot": float(pace["jobs_per_pilot"]) * share,
                "max_per_cycle": int(pace["max_per_cycle"]),
            }
        )
    return mine


def dn_subject(dn: str) -> list[dict[str, str]]:
    """/DC=org/OU=Robots/CN=pilot -> [{"DC": "org"}, {"OU": "Robots"}, {"CN": "pilot"}]:
    the ordered subject that community.crypto's subject_ordered takes."""
    parts = [p for p in str(dn).split("/") if p]
    if not parts or any("=" not in p for p in parts):
        raise ValueError(f"not a DN of the /KEY=value/... form: {dn!r}")
    return [dict([p.split("=", 1)]) for p in parts]


def ordered_name(pairs: Iterable[Iterable[str]]) -> list[dict[str, str]]:
    """[["commonName", "CA"]] (x509_certificate_info's subject_ordered) ->
    [{"commonName": "CA"}] (x509_crl's issuer_ordered)."""
    return [{str(k): str(v)} for k, v in pairs]


def lsc_path(server: Mapping, vomsdir: str) -> str:
    """Where a VOMS server's .lsc file is: <vomsdir>/<vo>/<host>.lsc."""
    return f"{vomsdir}/{server['vo']}/{server['host']}.lsc"


def host_dns(hosts: Iterable[str], domain: str = "", unit: str = "") -> list[str]:
    """The DN of each host's certificate as mod_ssl names it: /CN=<fqdn>, the subject
    of the certificates role's host certificate, or /OU=<unit>/CN=<fqdn> for a service's
    own client certificate on that host (the monitor's, for the logger)."""
    prefix = f"/OU={unit}" if unit else ""
    return [f"{prefix}/CN={host_fqdn(h, domain)}" for h in hosts]


def sha256sums(files: Iterable[Mapping]) -> str:
    """What `sha256sum PATH...` prints, run in the installed tree, when the installed files
    equal these files of a community.general.filetree listing (``src`` read here, ``path``
    relative): one command on the host then tells whether anything needs copying."""
    lines = []
    for f in files:
        with open(f["src"], "rb") as source:
            lines.append(f"{hashlib.sha256(source.read()).hexdigest()}  {f['path']}")
    return "\n".join(lines)


def rsa_jwk(public_pem: str, kid: str) -> dict:
    """The JWK (RFC 7517) of an RSA public key, for RS256 signatures: what a token
    issuer's key set (jwks_uri) lists."""
    import base64

    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(public_pem.encode())
    numbers = key.public_numbers()  # type: ignore[union-attr]

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": b64(numbers.n), "e": b64(numbers.e)}  # fmt: skip


def missing_packages(names: Iterable[str], installed: Mapping) -> list[str]:
    """The packages of ``names`` that the host's installed packages (the registered
    result of panda.facility.installed_packages) do not list; all of them while the
    list is not read yet."""
    listed = installed.get("names")
    if not isinstance(listed, list):
        return list(names)
    have = set(listed)
    return [name for name in names if name not in have]


_DN_NAMES = {
    "CN": "commonName", "DC": "domainComponent", "OU": "organizationalUnitName",
    "O": "organizationName", "C": "countryName", "L": "localityName",
    "ST": "stateOrProvinceName", "E": "emailAddress",
}  # fmt: skip
_USAGES = {"serverAuth": "TLS Web Server Authentication",
           "clientAuth": "TLS Web Client Authentication"}  # fmt: skip


def certificate_current(
    info: Mapping,
    subject: Iterable[Mapping],
    sans: Iterable[str],
    usage: Iterable[str],
    issuer_key_id: str,
    key_fingerprints: Mapping,
) -> bool:
    """Whether a certificate (community.crypto.x509_certificate_info's result) is the one
    the certificates role would issue now: the subject (ordered, short or long names),
    the subjectAltNames, the extended key usages, issued by the CA whose subject key id
    is given, for the key of these fingerprints, and outside the renewal window."""
    if not info or info.get("failed") or info.get("skipped") or "subject_ordered" not in info:
        return False
    wanted = [[_DN_NAMES.get(k, k), str(v)] for part in subject for k, v in part.items()]
    have = [[_DN_NAMES.get(k, k), str(v)] for k, v in info["subject_ordered"]]
    usages = {_USAGES.get(u, u) for u in usage}
    fingerprints = info.get("public_key_fingerprints") or {}
    return (
        have == wanted
        and {n.lower() for n in info.get("subject_alt_name") or []} == {n.lower() for n in sans}
        and set(info.get("extended_key_usage") or []) == usages
        and str(info.get("authority_key_identifier") or "").lower() == str(issuer_key_id).lower()
        and bool(fingerprints)
        and fingerprints.get("sha256") == (key_fingerprints or {}).get("sha256")
        and bool((info.get("valid_at") or {}).get("renewal"))
    )


class FilterModule:
    """panda.facility filters."""

    def filters(self) -> dict:
        return {
            "host_fqdn": host_fqdn,
            "vip_names": vip_names,
            "host_sans": host_sans,
            "server_id": server_id,
            "server_ids": server_ids,
            "host_address": host_address,
            "unaddressed": unaddressed,
            "db_accounts": db_accounts,
            "db_stale_accounts": db_stale_accounts,
            "gtid_ahead": gtid_ahead,
            "ipv4_network": ipv4_network,
            "lb_services": lb_services,
            "vrrp_priorities": vrrp_priorities,
            "queue_data": queue_data,
            "queue_problems": queue_problems,
            "factory_queues": factory_queues,
            "dn_subject": dn_subject,
            "host_dns": host_dns,
            "ordered_name": ordered_name,
            "lsc_path": lsc_path,
            "sha256sums": sha256sums,
            "rsa_jwk": rsa_jwk,
            "missing_packages": missing_packages,
            "certificate_current": certificate_current,
        }
