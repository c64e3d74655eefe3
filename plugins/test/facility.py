"""Tests for validating the facility description before any host is touched."""

from __future__ import annotations

import ipaddress
import re

DOCUMENTATION = r"""
name: facility
short_description: Validity tests for names and addresses in the inventory
description:
  - C(dns_name) is true for a valid DNS host name (RFC 1123 labels, at most 253 chars).
  - C(ip_address) is true for an IPv4 or IPv6 address.
  - C(in_network) is true for an address inside a CIDR network.
  - C(ip_network) is true for an IPv4 or IPv6 network in CIDR form (host bits allowed).
"""

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)


def dns_name(value: object) -> bool:
    """True when value is a host name a resolver and a certificate both accept."""
    if not isinstance(value, str) or not value or len(value.rstrip(".")) > 253:
        return False
    labels = value.rstrip(".").split(".")
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def ip_address(value: object) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def ip_network(value: object) -> bool:
    """True for a network as firewalld takes it as a source: 10.0.0.0/8, ::/0, or a
    bare address."""
    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return False
    return True


def in_network(value: object, network: str) -> bool:
    """True when the address lies inside the CIDR network (a VIP must, to be announced
    on that network's interface)."""
    try:
        return ipaddress.ip_address(str(value)) in ipaddress.ip_network(str(network), strict=False)
    except ValueError:
        return False


class TestModule:
    """panda.facility tests."""

    def tests(self) -> dict:
        return {
            "dns_name": dns_name,
            "ip_address": ip_address,
            "ip_network": ip_network,
            "in_network": in_network,
        }
