"""The host firewall: every port a role makes a daemon listen on for other hosts reaches
a firewalld policy (facility tasks_from: firewall), every such include is gated on
facility_firewall, and the policy template turns flows into the rules firewalld reads.
The lab test shows the rules at work (tests/lab/test_base.py)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import jinja2
import rolespecs
import yaml

from conftest import ROOT, load_plugin

ROLES = ROOT / "roles"
# Port options that no other host reaches: ports a daemon connects to, facility-wide
# defaults of the roles' options (which are checked), and loopback-only listeners.
NOT_OPENED = {
    "facility_server_port", "facility_logger_port", "facility_db_port",
    "panda_server_db_port", "panda_monitor_db_port", "panda_monitor_server_port",
    "panda_monitor_logger_port",
    "pilot_cache_origin_port",  # Apache serves the tarball to Squid over loopback
    "loadbalancer_health_port",  # HAProxy's liveness, read by keepalived over loopback
}  # fmt: skip


def port_options() -> set[str]:
    return rolespecs.port_options() - NOT_OPENED


def includes() -> list[dict]:
    found = []
    for task in rolespecs.tasks():
        role = task.get("ansible.builtin.include_role")
        if role and role.get("tasks_from") == "firewall":
            found.append(task)
    return found


def opened_text() -> str:
    """The flows given to the firewall task file, apache_wsgi's ports, and SSH's (in the
    base role's zone)."""
    text = [str(task["vars"]["facility_firewall_flows"]) for task in includes()]
    text.append((ROLES / "base/templates/firewall-zone.xml.j2").read_text())
    for task in rolespecs.tasks():
        role = task.get("ansible.builtin.import_role")
        if role and role.get("name") == "panda.facility.apache_wsgi":
            text += [str(task["vars"].get(k, "")) for k in
                     ("apache_wsgi_tls_port", "apache_wsgi_http_port")]  # fmt: skip
    return "\n".join(text)


def test_every_listening_port_option_is_opened_by_a_policy():
    missing = rolespecs.unreached(port_options(), opened_text())
    assert not missing, f"port options no firewall policy opens: {missing}"


def test_each_include_is_gated_and_names_its_policy():
    """Gated on facility_firewall; one policy name each, short enough for firewalld
    (a policy name has at most 18 characters: panda- and 12)."""
    names = []
    for task in includes():
        assert "facility_firewall | bool" in str(task.get("when")), task["name"]
        names.append(task["vars"]["facility_firewall_for"])
    apps = re.findall(r"apache_wsgi_name: (\w+)", "\n".join(
        p.read_text() for p in ROLES.glob("*/tasks/main.yml")))  # fmt: skip
    names = [n for n in names if "{{" not in n] + apps
    assert len(names) == len(set(names)) and len(names) >= 8, names
    assert all(len(f"panda-{n}") <= 18 for n in names), names


def test_the_hosts_close_last():
    """site.yml's last play closes each host's default zone, once every tier's role has
    written its policies."""
    last = yaml.safe_load((ROOT / "playbooks/site.yml").read_text())[-1]
    assert last["hosts"] == "all"
    task = last["tasks"][0]
    assert task["ansible.builtin.import_role"]["tasks_from"] == "firewall"
    assert task["when"] == "facility_firewall | bool"


def render(flows: list[dict], admin: list[str], hostvars: dict) -> ET.Element:
    filters = load_plugin("filter", "facility").FilterModule().filters()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)  # fmt: skip
    env.filters.update({f"panda.facility.{k}": v for k, v in filters.items()})
    source = (ROLES / "facility/templates/firewall-policy.xml.j2").read_text()
    text = env.from_string(source).render(
        ansible_managed="managed", hostvars=hostvars, facility_firewall_for="test",
        facility_firewall_flows=flows, facility_firewall_admin_networks=admin,
    )  # fmt: skip
    return ET.fromstring(text.split("\n", 1)[1])  # after the XML declaration


def rules(policy: ET.Element) -> list[tuple[str, str, str]]:
    found = []
    for rule in policy.iter("rule"):
        source = rule.find("source").get("address")
        port, proto = rule.find("port"), rule.find("protocol")
        what = (
            f"{port.get('port')}/{port.get('protocol')}" if port is not None else proto.get("value")
        )
        found.append((rule.get("family"), source, what))
    return found


def test_policy_rules_follow_the_flows():
    hostvars = {"a": {"facility_address": "192.0.2.1"},
                "b": {"ansible_facts": {"default_ipv4": {"address": "192.0.2.2"}}}}  # fmt: skip
    flows = [
        {"port": 3306, "hosts": ["a", "b", "a"]},
        {"port": "0", "hosts": ["a"]},  # an unused port: no rule
        {"port": 9618, "proto": "udp", "networks": ["2001:db8::/32"]},
        {"protocol": "vrrp", "hosts": ["b"]},  # no port: the operators get no VRRP
    ]
    policy = render(flows, ["198.51.100.0/24"], hostvars)
    assert policy.get("target") == "CONTINUE"
    assert policy.find("ingress-zone").get("name") == "ANY"
    assert policy.find("egress-zone").get("name") == "HOST"
    assert rules(policy) == [
        ("ipv4", "192.0.2.1", "3306/tcp"),
        ("ipv4", "192.0.2.2", "3306/tcp"),
        ("ipv4", "198.51.100.0/24", "3306/tcp"),
        ("ipv6", "2001:db8::/32", "9618/udp"),
        ("ipv4", "198.51.100.0/24", "9618/udp"),
        ("ipv4", "192.0.2.2", "vrrp"),
    ]


def test_a_policy_without_sources_accepts_nothing():
    assert rules(render([{"port": 8404}], [], {})) == []
