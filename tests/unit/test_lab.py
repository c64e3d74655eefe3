from __future__ import annotations

import pytest

import lab
from conftest import ROOT

DEB822 = """\
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
"""


def test_deb822_skips_security_and_sources():
    assert lab.mirror_from_deb822(DEB822) == ["http://mirror.example/debian"]


def test_one_line_format():
    text = (
        "# comment\n"
        "deb [signed-by=/k.gpg] http://m.example/debian bookworm main\n"
        "deb http://m.example/debian-security bookworm-security main\n"
        "deb-src http://m.example/debian bookworm main\n"
    )
    assert lab.mirror_from_list(text) == ["http://m.example/debian"]


def test_host_mirror_reads_apt_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert lab.host_mirror(tmp_path) == "http://mirror.example/debian"


def test_host_mirror_override_and_absence(tmp_path, monkeypatch):
    (tmp_path / "sources.list.d").mkdir()
    monkeypatch.setenv("LAB_MIRROR", "http://given.example/debian")
    assert lab.host_mirror(tmp_path) == "http://given.example/debian"
    monkeypatch.delenv("LAB_MIRROR")
    with pytest.raises(SystemExit, match="LAB_MIRROR"):
        lab.host_mirror(tmp_path)


def test_topology_from_hostvars():
    net = {"name": "panda-lab", "subnet": "172.28.10.0/24", "container_prefix": "lab-"}
    hostvars = {
        "srv1": {
            "lab_address": "172.28.10.21",
            "lab_network": net,
            "facility_domain": "lab.panda.test",
        },
        "localhost": {},
    }
    network, hosts = lab.lab_topology(hostvars)
    assert network == lab.LabNetwork("panda-lab", "172.28.10.0/24")
    assert hosts == [
        lab.LabHost("lab-srv1", "srv1", "172.28.10.21", ("srv1", "srv1.lab.panda.test"))
    ]


def test_topology_takes_the_container_from_ansible_host():
    net = {"name": "panda-lab", "subnet": "172.28.10.0/24", "container_prefix": "lab-"}
    hostvars = {"lb1": {"lab_address": "172.28.10.11", "lab_network": net, "ansible_host": "x-lb1"}}
    _, hosts = lab.lab_topology(hostvars)
    assert [h.name for h in hosts] == ["x-lb1"]


def test_a_host_may_have_small_file_systems_of_its_own():
    net = {"name": "panda-lab", "subnet": "172.28.10.0/24"}
    hostvars = {"mon1": {"lab_address": "172.28.10.71", "lab_network": net,
                         "lab_tmpfs": ["/var/log/panda:size=32m"]}}  # fmt: skip
    _, hosts = lab.lab_topology(hostvars)
    assert hosts[0].tmpfs == ("/var/log/panda:size=32m",)


def test_lab_inventory_names_each_container_literally():
    """A templated ansible_host ("lab-{{ inventory_hostname }}") names the *delegating*
    host's container in a delegated task: the lab writes each one out."""
    _, hosts = lab.read_inventory(ROOT / "inventories" / "lab")
    assert len(hosts) == 13
    for host in hosts:
        assert host.name == f"lab-{host.hostname}", host


def test_topology_needs_a_network():
    with pytest.raises(SystemExit, match="lab_network"):
        lab.lab_topology({"srv1": {"lab_address": "10.0.0.1"}})


def test_recipe_hash_follows_package_list(monkeypatch, tmp_path):
    first = lab.recipe_hashes()
    packages = tmp_path / "packages.txt"
    packages.write_text("apache2 # comment\nsquid\n")
    monkeypatch.setattr(lab, "PACKAGES_FILE", packages)
    assert lab.node_packages() == ["apache2", "squid"]
    second = lab.recipe_hashes()
    assert second[0] == first[0] and second[1] != first[1]
