"""Bad inventory input stops site.yml (and db-promote.yml) before any host is touched.

The hosts of these inventories are containers that do not exist: had a play tried to
reach one, the run would report UNREACHABLE instead of the preflight's message.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

PASSWORDS = {
    f"mariadb_{user}_password": "secret"
    for user in ("app", "readonly", "monitor", "replication", "backup")
}
# The docker CLI connection: each task's worker process loads the connection plugin,
# and docker_api's (the Docker SDK) costs twice the CPU of a whole preflight run.
GOOD_VARS = {
    "ansible_connection": "community.docker.docker",
    "ansible_host": "panda-preflight-test-nowhere",
    "facility_domain": "test.panda.example",
    "facility_services": [
        {
            "name": "pandaserver",
            "vip_name": "pandaserver.test.example",
            "vip_address": "192.0.2.100",
            "backend_group": "panda_servers",
        }
    ],
    **PASSWORDS,
}


def inventory(
    tmp_path: Path, vars_: dict, extra_hosts: dict | None = None, db: dict | None = None
) -> Path:
    db = db or {}
    data = {
        "all": {
            "vars": {**GOOD_VARS, "certificates_ca_dir": str(tmp_path / "ca"), **vars_},
            "children": {
                "panda_servers": {"hosts": {"srv1": None}},
                "panda_loggers": {"hosts": {"log1": None}},
                "db_primary": {"hosts": {"db1": db.get("db1")}},
                "db_replicas": {"hosts": {"db2": db.get("db2"), "db3": db.get("db3")}},
            },
            "hosts": extra_hosts or {},
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def playbook(inv: Path, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ansible-playbook", "-i", str(inv), f"playbooks/{name}", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def site(inv: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return playbook(inv, "site.yml", *extra)


def assert_stopped_early(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "UNREACHABLE" not in out and "Gathering Facts" not in out, out
    for word in words:
        assert word in out, f"{word!r} not in output:\n{out}"


def test_good_inventory_passes_preflight(tmp_path):
    proc = site(inventory(tmp_path, {}), "--tags", "preflight")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_group_named_otherwise_is_one_variable(tmp_path):
    """The replicas' group renamed in the inventory: one variable, and the replicas are
    placed in the facility_db_replicas group that the database play targets."""
    inv = inventory(tmp_path, {"facility_db_replica_group": "bnl_db_replicas"})
    data = yaml.safe_load(inv.read_text())
    children = data["all"]["children"]
    children["bnl_db_replicas"] = children.pop("db_replicas")
    inv.write_text(yaml.safe_dump(data))
    proc = site(inv, "--tags", "preflight", "-v")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for host in ("db2", "db3"):
        assert f"[{host}] => (item=db_replicas (bnl_db_replicas))" in out, out


def test_host_in_no_deployed_group(tmp_path):
    proc = site(inventory(tmp_path, {}, extra_hosts={"stray": None}))
    assert_stopped_early(proc, "stray", "facility_*_group")


@pytest.mark.parametrize("vip", ["panda_server.test.example", "-x.test.example", "a..b"])
def test_vip_name_not_a_dns_name(tmp_path, vip):
    services = [{**GOOD_VARS["facility_services"][0], "vip_name": vip}]
    proc = site(inventory(tmp_path, {"facility_services": services}))
    assert_stopped_early(proc, "facility_services[0]", "vip_name", vip)


def test_firewall_network_not_a_network(tmp_path):
    proc = site(inventory(tmp_path, {"facility_firewall_client_networks": ["10.0.0.0/33"]}))
    assert_stopped_early(proc, "facility_firewall_client_networks", "10.0.0.0/33")


def test_firewall_that_would_lock_ssh_out(tmp_path):
    """A host reached over SSH, and no network the firewall would accept SSH from."""
    vars_ = {"facility_firewall_ssh_networks": [], "facility_firewall_admin_networks": []}
    proc = site(inventory(tmp_path, vars_, db={"db3": {"ansible_connection": "ssh"}}))
    assert_stopped_early(proc, "facility_firewall_admin_networks", "db3")


def test_certificate_lifetime_below_a_day(tmp_path):
    proc = site(inventory(tmp_path, {"certificates_lifetime_days": 0}))
    assert_stopped_early(proc, "certificates_lifetime_days")


def test_missing_ca_path(tmp_path):
    proc = site(
        inventory(
            tmp_path,
            {
                "certificates_ca_source": "given",
                "certificates_ca_cert_path": str(tmp_path / "missing" / "ca.crt"),
                "certificates_ca_key_path": str(tmp_path / "missing" / "ca.key"),
            },
        )
    )
    assert_stopped_early(proc, "certificates_ca_cert_path", "missing/ca.crt")


def test_unknown_choice_is_named(tmp_path):
    proc = site(inventory(tmp_path, {"certificates_ca_source": "borrowed"}))
    assert_stopped_early(proc, "certificates_ca_source")


def test_empty_password_is_named(tmp_path):
    proc = site(inventory(tmp_path, {"mariadb_monitor_password": ""}))
    assert_stopped_early(proc, "mariadb_monitor_password")


def test_replication_user_without_password(tmp_path):
    proc = site(inventory(tmp_path, {"mariadb_replication_password": None}))
    assert_stopped_early(proc, "mariadb_replication_password")


def test_database_client_host_not_in_the_inventory(tmp_path):
    proc = site(inventory(tmp_path, {"mariadb_app_hosts": ["srv1", "srv9"]}))
    assert_stopped_early(proc, "srv9", "mariadb_app_hosts")


def test_host_pattern_of_earlier_releases_is_named(tmp_path):
    proc = site(inventory(tmp_path, {"mariadb_client_hosts": "10.0.0.%"}))
    assert_stopped_early(proc, "mariadb_client_hosts is no longer read", "mariadb_app_hosts")


def test_duplicate_server_ids_from_overrides(tmp_path):
    db = {"db2": {"mariadb_server_id": 7}, "db3": {"mariadb_server_id": 7}}
    proc = site(inventory(tmp_path, {}, db=db))
    assert_stopped_early(proc, "mariadb_server_id", "db2=7, db3=7")


def test_two_primaries(tmp_path):
    inv = inventory(tmp_path, {})
    data = yaml.safe_load(inv.read_text())
    data["all"]["children"]["db_primary"]["hosts"]["db9"] = None
    inv.write_text(yaml.safe_dump(data))
    assert_stopped_early(site(inv), "facility_db_primary_group", "exactly one host")


@pytest.mark.parametrize("target", ["db1", "srv1", "nosuchhost"])
def test_promotion_of_a_host_that_is_not_a_replica(tmp_path, target):
    proc = playbook(
        inventory(tmp_path, {}), "db-promote.yml", "-e", f"mariadb_promote_host={target}"
    )
    assert_stopped_early(proc, "mariadb_promote_host", target)


def test_second_logger_is_refused(tmp_path):
    inv = inventory(tmp_path, {}, extra_hosts={})
    data = yaml.safe_load(inv.read_text())
    data["all"]["children"]["panda_loggers"]["hosts"]["log2"] = None
    inv.write_text(yaml.safe_dump(data))
    assert_stopped_early(site(inv), "at most one host in panda_loggers")


def test_reaper_interval_is_named(tmp_path):
    inv = inventory(tmp_path, {"panda_server_reaper_interval": "often"})
    assert_stopped_early(site(inv), "panda_server_reaper_interval")


@pytest.mark.parametrize("readers", ["panda_logger_reader_dns", "panda_monitor_reader_dns"])
def test_the_pilots_dn_as_a_reader_of_logs_is_named(tmp_path, readers):
    """Pilots carry their certificate where payloads run: it may not read job logs."""
    pilot = "/DC=test/CN=pilot"
    inv = inventory(tmp_path, {"panda_server_production_dns": [pilot], readers: [pilot]})
    data = yaml.safe_load(inv.read_text())
    data["all"]["children"]["panda_monitors"] = {"hosts": {"srv1": None}}
    inv.write_text(yaml.safe_dump(data))
    assert_stopped_early(site(inv), readers)


def test_production_example_is_valid(tmp_path):
    vault = tmp_path / "vault.yml"
    secrets = [
        *PASSWORDS,
        "loadbalancer_stats_password",
        "autopilot_pilot_cert",
        "autopilot_pilot_key",
    ]
    vault.write_text(yaml.safe_dump({f"vault_{name}": "example" for name in secrets}))
    proc = site(
        ROOT / "inventories" / "production-example",
        "--tags",
        "preflight",
        "-e",
        "certificates_ca_source=generate",
        "-e",
        f"certificates_ca_dir={tmp_path}/ca",
        "-e",
        f"@{vault}",
        # Its hosts do not exist: skip reading the load balancers' interfaces.
        "--skip-tags",
        "loadbalancer_facts",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# Load balancers: the hosts are this controller (connection local), their VRRP interface
# is loopback, so the VIPs of a good inventory lie in 127.0.0.0/8.
LB_SERVICE = {
    "name": "pandaserver",
    "vip_name": "pandaserver.test.example",
    "vip_address": "127.0.0.100",
    "backend_group": "panda_servers",
    "port": 25443,
}


def lb_inventory(tmp_path: Path, services: list[dict] | None = None, **vars_) -> Path:
    inv = inventory(tmp_path, {"facility_services": services or [LB_SERVICE]})
    data = yaml.safe_load(inv.read_text())
    lb = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "loadbalancer_vrrp_interface": "lo",
    }
    data["all"]["children"]["loadbalancers"] = {
        "hosts": {"lb1": lb, "lb2": lb},
        "vars": {"loadbalancer_stats_password": "secret", **vars_},
    }
    inv.write_text(yaml.safe_dump(data))
    return inv


def test_good_load_balancers_pass_preflight(tmp_path):
    proc = site(lb_inventory(tmp_path), "--tags", "preflight")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_service_without_backends(tmp_path):
    services = [{**LB_SERVICE, "backend_group": "panda_monitors"}]
    proc = site(lb_inventory(tmp_path, services))
    assert_stopped_early(
        proc, "facility_services[0]", "backend_group", "'panda_monitors' with 0 hosts"
    )


def test_two_services_on_one_vip_and_port(tmp_path):
    services = [LB_SERVICE, {**LB_SERVICE, "name": "pandamon", "vip_name": "pandamon.test.example"}]
    proc = site(lb_inventory(tmp_path, services))
    assert_stopped_early(proc, "vip_address:port", "127.0.0.100:25443")


def test_vip_outside_the_subnet(tmp_path):
    proc = site(lb_inventory(tmp_path, [{**LB_SERVICE, "vip_address": "198.51.100.7"}]))
    assert_stopped_early(proc, "vip_address", "198.51.100.7", "127.0.0.0/8")


def test_two_load_balancers_with_one_priority(tmp_path):
    groups = [{"name": "facility", "virtual_router_id": 51, "priorities": {"lb1": 100, "lb2": 100}}]
    proc = site(lb_inventory(tmp_path, loadbalancer_vrrp_groups=groups))
    assert_stopped_early(
        proc, "loadbalancer_vrrp_groups[0]", "priorities", "'lb1': 100, 'lb2': 100"
    )


def test_stats_password_missing(tmp_path):
    proc = site(lb_inventory(tmp_path, loadbalancer_stats_password=""))
    assert_stopped_early(proc, "loadbalancer_stats_password")


def test_rolling_update_of_an_unknown_service(tmp_path):
    proc = playbook(
        lb_inventory(tmp_path), "rolling-update.yml", "-e", "rolling_update_service=nope"
    )
    assert_stopped_early(proc, "rolling_update_service", "nope")


# Pilot submission: two submit hosts, one grid site and the pilot cache; the queue
# placement is checked (a good one: test_production_example_is_valid, a shared queue).
def queue_inventory(tmp_path: Path, **queue) -> Path:
    good = {"name": "SITE_A", "site": "site1", "submit_host": "sub1", "min_idle": 1}
    inv = inventory(
        tmp_path,
        {"facility_queues": [{**good, **queue}], "autopilot_pilot_credential": "generate"},
    )
    data = yaml.safe_load(inv.read_text())
    data["all"]["children"]["submit_hosts"] = {"hosts": {"sub1": None, "sub2": None}}
    data["all"]["children"]["grid_sites"] = {"hosts": {"site1": None}}
    data["all"]["children"]["pilot_caches"] = {"hosts": {"cache1": None}}
    inv.write_text(yaml.safe_dump(data))
    return inv


@pytest.mark.parametrize(
    ("queue", "words"),
    [
        ({"submit_host": ["sub1", "sub2"]}, ["SITE_A", "on 2 submit hosts", "shared: true"]),
        ({"submit_host": []}, ["SITE_A", "no submit_host"]),
        ({"site": "nowhere"}, ["site 'nowhere' is not a host of grid_sites"]),
        ({"min_idle": -3}, ["min_idle must be numbers, not negative"]),
    ],
)
def test_bad_queue_placement_is_named(tmp_path, queue, words):
    proc = site(queue_inventory(tmp_path, **queue))
    assert_stopped_early(proc, "facility_queues", *words)


# Monitoring: a Nagios host, and who is told.
def monitoring_inventory(tmp_path: Path, **vars_) -> Path:
    good = {"monitoring_operators": [{"name": "ops", "email": "ops@example.org"}]}
    inv = inventory(tmp_path, {**good, **vars_})
    data = yaml.safe_load(inv.read_text())
    data["all"]["children"]["monitoring"] = {"hosts": {"mon1": None}}
    inv.write_text(yaml.safe_dump(data))
    return inv


# The message names every monitoring variable; the failed assertion shows which one.
@pytest.mark.parametrize(
    ("vars_", "assertion"),
    [
        ({"monitoring_operators": []}, "monitoring_operators | length > 0"),
        (
            {"monitoring_escalation_contacts": [{"name": "x", "email": "not-mail"}]},
            "__monitoring_contacts | map(attribute='email'",
        ),
        ({"monitoring_ticket": "http"}, "monitoring_ticket_url is match"),
        ({"monitoring_disk_warn": 95}, "monitoring_disk_warn | float < monitoring_disk_crit"),
    ],
)
def test_bad_monitoring_input_is_named(tmp_path, vars_, assertion):
    proc = site(monitoring_inventory(tmp_path, **vars_))
    assert_stopped_early(proc, "monitoring needs monitoring_operators", assertion)
