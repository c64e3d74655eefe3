from __future__ import annotations

import pytest

from conftest import load_plugin

facility = load_plugin("test", "facility")


@pytest.mark.parametrize(
    "name",
    [
        "pandaserver.example.org",
        "a",
        "srv-1.lab.panda.test",
        "x" * 63 + ".org",
        "trailing.dot.",
    ],
)
def test_valid_dns_names(name):
    assert facility.dns_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "panda_server.example.org",
        "-lead.example.org",
        "trail-.example.org",
        "two..dots",
        "x" * 64 + ".org",
        ("a." * 127) + "bc",
        "10.0.0.1",
        "sp ace.org",
        None,
        5,
    ],
)
def test_invalid_dns_names(name):
    assert not facility.dns_name(name)


def test_ip_address():
    assert facility.ip_address("192.0.2.1") and facility.ip_address("2001:db8::1")
    assert not facility.ip_address("192.0.2.300") and not facility.ip_address("pandaserver")


def test_in_network():
    assert facility.in_network("172.28.10.100", "172.28.10.0/24")
    assert not facility.in_network("172.28.11.100", "172.28.10.0/24")
    assert not facility.in_network("172.28.10.100", "")
    assert not facility.in_network("not-an-ip", "172.28.10.0/24")
