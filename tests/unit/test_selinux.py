"""SELinux on EL: every port a role makes a daemon listen on or connect to gets a type.

The EL path cannot run here (the lab is Debian), so this reads the roles: each port
option of a role's argument spec must reach a port list of the shared SELinux task file
(facility tasks_from: selinux), directly or through apache_wsgi's own ports."""

from __future__ import annotations

import re

import rolespecs

from conftest import ROOT

ROLES = ROOT / "roles"
# Port options that are no port of their own: the facility-wide defaults of the roles'
# port options, which are checked.
NOT_A_DAEMON_PORT = {"facility_server_port", "facility_logger_port", "facility_db_port"}
# sshd's port, which the host firewall opens: the site configures sshd and its label.
NOT_A_DAEMON_PORT |= {"base_firewall_ssh_port"}
# Prometheus from the community's RPM runs unconfined (no policy module of its own).
NOT_A_DAEMON_PORT |= {"prometheus_port"}
# Port types of the EL9 targeted policy the roles use (selinux-policy corenetwork.te.in).
PORT_TYPES = {"http_port_t", "mysqld_port_t", "squid_port_t", "inetd_child_port_t"}


def port_options() -> set[str]:
    return rolespecs.port_options() - NOT_A_DAEMON_PORT


def labelled_text() -> str:
    """The port lists given to the SELinux task file, and what apache_wsgi labels."""
    text = []
    for task in rolespecs.tasks():
        role = task.get("ansible.builtin.include_role") or task.get("ansible.builtin.import_role")
        params = task.get("vars", {})
        if role and role.get("tasks_from") == "selinux":
            text.append(str(params.get("facility_selinux_ports", "")))
            assert task.get("when") == "__facility_selinux", task["name"]
        if role and role.get("name") == "panda.facility.apache_wsgi":
            keys = ("apache_wsgi_tls_port", "apache_wsgi_http_port",
                    "apache_wsgi_selinux_connect_ports")  # fmt: skip
            text += [str(params.get(k, "")) for k in keys]
    return "\n".join(text)


def test_every_port_option_gets_a_selinux_type():
    missing = rolespecs.unreached(port_options(), labelled_text())
    assert not missing, f"port options without an SELinux type: {missing}"


def test_apache_wsgi_labels_its_own_ports():
    main = (ROLES / "apache_wsgi/tasks/main.yml").read_text()
    assert "'port': apache_wsgi_tls_port, 'setype': 'http_port_t'" in main
    assert "'port': apache_wsgi_http_port, 'setype': 'http_port_t'" in main


def test_the_load_balancers_label_every_service_port_and_backend_port():
    main = (ROLES / "loadbalancer/tasks/main.yml").read_text()
    for what in ("map(attribute='port')", "map(attribute='backend_port')"):
        assert what in main


def test_only_known_port_types_are_used():
    used = set(re.findall(r"setype: ['\"]?(\w+_port_t)", "\n".join(
        p.read_text() for p in ROLES.glob("*/tasks/*.yml"))))  # fmt: skip
    used |= set(re.findall(r"'setype': '(\w+_port_t)'", "\n".join(
        p.read_text() for p in ROLES.glob("*/tasks/*.yml"))))  # fmt: skip
    assert used and used <= PORT_TYPES, used - PORT_TYPES
