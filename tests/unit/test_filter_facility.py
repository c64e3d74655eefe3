from __future__ import annotations

import pytest

from conftest import load_plugin

facility = load_plugin("filter", "facility")

SERVICES = [
    {
        "name": "pandaserver",
        "vip_name": "PandaServer.example.org",
        "backend_group": "panda_servers",
    },
    {
        "name": "pandamon",
        "vip_name": "pandamon.example.org",
        "vip_aliases": ["panda.example.org"],
        "backend_group": "panda_monitors",
    },
]
GROUPS = {
    "panda_servers": ["srv1", "srv2"],
    "panda_monitors": ["srv2"],
    "loadbalancers": ["lb1"],
    "panda_loggers": ["log1"],
}


@pytest.mark.parametrize(
    "name,domain,expected",
    [
        ("srv1", "example.org", "srv1.example.org"),
        ("srv1.other.org", "example.org", "srv1.other.org"),
        ("srv1", "", "srv1"),
    ],
)
def test_host_fqdn(name, domain, expected):
    assert facility.host_fqdn(name, domain) == expected


def test_backend_gets_only_its_services_vip_names():
    assert facility.vip_names(SERVICES, "srv1", GROUPS) == ["pandaserver.example.org"]
    assert facility.vip_names(SERVICES, "srv2", GROUPS) == [
        "panda.example.org",
        "pandamon.example.org",
        "pandaserver.example.org",
    ]


def test_load_balancer_gets_every_vip_name():
    assert len(facility.vip_names(SERVICES, "lb1", GROUPS)) == 3


def test_host_behind_no_vip_gets_none():
    assert facility.vip_names(SERVICES, "log1", GROUPS) == []
    assert facility.vip_names([], "srv1", GROUPS) == []


def test_sans_hold_names_and_addresses_without_loopback():
    sans = facility.host_sans(
        "srv1.example.org",
        ["10.0.0.5", "127.0.0.1", "::1", "fe80::1%eth0", "2001:db8::5"],
        ["pandaserver.example.org"],
    )
    assert sans == [
        "DNS:pandaserver.example.org",
        "DNS:srv1",
        "DNS:srv1.example.org",
        "IP:10.0.0.5",
        "IP:2001:db8::5",
    ]


def test_sans_are_deduplicated_and_stable():
    one = facility.host_sans("a.b.c", ["10.0.0.2", "10.0.0.10"], ["x.b.c", "X.B.C"])
    two = facility.host_sans("A.b.c", ["10.0.0.10", "10.0.0.2"], ["x.b.c"])
    assert one == two
    assert one.index("IP:10.0.0.2") < one.index("IP:10.0.0.10")


def test_server_id_is_stable_and_in_range():
    ids = {facility.server_id(f"db{i}.example.org") for i in range(500)}
    assert len(ids) == 500
    assert all(1 <= i <= 2**32 - 1 for i in ids)
    assert facility.server_id("DB1.example.org") == facility.server_id("db1.example.org")


def test_server_ids_honour_overrides():
    hostvars = {"db1": {}, "db2": {"mariadb_server_id": 7}, "db3": {"mariadb_server_id": None}}
    pairs = facility.server_ids(["db1", "db2", "db3"], hostvars)
    assert pairs == [
        f"db1={facility.server_id('db1')}",
        "db2=7",
        f"db3={facility.server_id('db3')}",
    ]


HOSTVARS = {
    "given": {
        "facility_address": "10.0.0.5",
        "ansible_facts": {"default_ipv4": {"address": "10.9.9.9"}},
    },
    "facts": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.6"}}},
    "unknown": {},
}


def test_host_address_prefers_the_inventory_then_facts():
    assert facility.host_address("given", HOSTVARS) == "10.0.0.5"
    assert facility.host_address("facts", HOSTVARS) == "10.0.0.6"
    with pytest.raises(ValueError, match="facility_address"):
        facility.host_address("unknown", HOSTVARS)


def test_unaddressed_lists_each_unknown_host_once():
    assert facility.unaddressed(["given", "unknown", "facts", "unknown"], HOSTVARS) == ["unknown"]


DB_USERS = [
    {"name": "rw", "hosts": ["given", "facts", "given"], "priv": "p.*:SELECT", "tls": {"SSL": ""}},
    {"name": "ro", "hosts": []},  # nobody reads: no account at all
    {"name": "mon", "host": "localhost", "password": "x"},
]


def test_db_accounts_one_per_address_of_each_users_hosts():
    assert facility.db_accounts(DB_USERS, HOSTVARS) == [
        {"name": "rw", "priv": "p.*:SELECT", "tls": {"SSL": ""}, "host": "10.0.0.5"},
        {"name": "rw", "priv": "p.*:SELECT", "tls": {"SSL": ""}, "host": "10.0.0.6"},
        {"name": "mon", "password": "x", "host": "localhost"},
    ]


def test_db_stale_accounts_are_the_managed_users_others():
    existing = [
        {"User": "rw", "Host": "%"},  # an earlier release's wildcard
        {"User": "rw", "Host": "10.0.0.5"},
        {"User": "rw", "Host": "10.0.0.9"},  # a host that left the inventory
        {"User": "ro", "Host": "10.0.0.5"},  # a user whose hosts are now none
        {"User": "mon", "Host": "localhost"},
        {"User": "root", "Host": "localhost"},  # not ours
    ]
    assert facility.db_stale_accounts(existing, DB_USERS, HOSTVARS) == [
        {"name": "rw", "host": "%"},
        {"name": "rw", "host": "10.0.0.9"},
        {"name": "ro", "host": "10.0.0.5"},
    ]


def test_gtid_ahead_names_the_replicas_that_received_more():
    positions = {
        "db2": "0-1-120",
        "db3": "0-1-125",
        "db4": "0-1-120,1-4-7",  # another domain the others lack
        "db5": "",  # never replicated
    }
    assert facility.gtid_ahead(positions, "db2") == ["db3", "db4"]
    assert facility.gtid_ahead(positions, "db3") == ["db4"]
    assert facility.gtid_ahead({"a": "0-1-5", "b": "0-2-5"}, "a") == []


def test_ipv4_network():
    assert facility.ipv4_network("172.28.10.11", "255.255.255.0") == "172.28.10.0/24"
    assert facility.ipv4_network("127.0.0.1", "255.0.0.0") == "127.0.0.0/8"


def test_lb_services_fill_defaults_without_overriding():
    defaults = {"port": 443, "mode": "http", "tls": "terminate", "balance": "roundrobin"}
    plain, passthrough, clear = facility.lb_services(
        [
            {"name": "a", "port": 25443},
            {"name": "b", "tls": "passthrough", "backend_port": 8443},
            {"name": "c", "tls": "none", "balance": "leastconn"},
        ],
        defaults,
    )
    assert plain["backend_port"] == 25443 and plain["backend_tls"] and plain["mode"] == "http"
    assert passthrough["mode"] == "tcp" and passthrough["backend_port"] == 8443
    assert clear["backend_tls"] is False and clear["balance"] == "leastconn"
    assert defaults == {"port": 443, "mode": "http", "tls": "terminate", "balance": "roundrobin"}


def test_vrrp_priorities_from_inventory_else_from_order():
    hosts = ["lb1", "lb2", "lb3"]
    assert facility.vrrp_priorities({"priorities": {"lb2": 250}}, hosts) == {
        "lb1": 200,
        "lb2": 250,
        "lb3": 180,
    }
    assert facility.vrrp_priorities({}, hosts) == {"lb1": 200, "lb2": 190, "lb3": 180}


# --- queues on submit hosts -----------------------------------------------------------

QUEUES = [
    {"name": "A", "site": "site1", "submit_host": "submit1", "corecount": 1},
    {"name": "B", "site": "site2.lab.test", "submit_host": ["submit1", "submit2"],
     "shared": True, "min_idle": 3, "max_idle": 9, "maxtime": 60},
    {"name": "C", "grid_resource": "condor ce@ce ce.example.org:9619", "submit_host": "submit2"},
]  # fmt: skip


def test_queue_data_leaves_out_the_factory_keys_and_names_the_site():
    data = facility.queue_data(QUEUES)
    assert data["A"] == {"corecount": 1, "atlas_site": "site1"}
    assert data["B"] == {"maxtime": 60, "atlas_site": "site2.lab.test"} and data["C"] == {}
    own = facility.queue_data([{**QUEUES[0], "atlas_site": "BNL-ATLAS"}])
    assert own["A"]["atlas_site"] == "BNL-ATLAS"


def test_a_good_placement_has_no_problems():
    sites = ["site1", "site2.lab.test"]
    assert facility.queue_problems(QUEUES, ["submit1", "submit2"], sites) == []


@pytest.mark.parametrize(
    "queue,words",
    [
        ({"name": "X", "site": "site1"}, "no submit_host"),
        ({"name": "X", "site": "site1", "submit_host": ["submit1", "submit2"]}, "shared: true"),
        ({"name": "X", "site": "site1", "submit_host": "submit9"}, "submit9 is not in"),
        ({"name": "X", "site": "nowhere", "submit_host": "submit1"}, "'nowhere' is not a host"),
        ({"name": "X", "site": "site1", "submit_host": "submit1", "min_idle": -1}, "negative"),
        ({"name": "X", "site": "site1", "submit_host": "submit1", "min_idle": 5, "max_idle": 2},
         "above max_idle"),
    ],
)  # fmt: skip
def test_placement_problems_name_the_queue_and_the_fault(queue, words):
    problems = facility.queue_problems([queue], ["submit1", "submit2"], ["site1"])
    assert len(problems) == 1 and "queue X" in problems[0] and words in problems[0], problems


def test_factory_queues_of_a_host_with_shares():
    defaults = {"min_idle": 1, "max_idle": 100, "jobs_per_pilot": 1, "max_per_cycle": 50}
    mine = facility.factory_queues(QUEUES, "submit1", defaults, "lab.test")
    assert [q["name"] for q in mine] == ["A", "B"]
    assert mine[0]["grid_resource"] == "condor site1@site1 site1.lab.test:9618"
    assert mine[1]["grid_resource"] == "condor site2@site2 site2.lab.test:9618"
    assert (mine[1]["min_idle"], mine[1]["max_idle"], mine[1]["jobs_per_pilot"]) == (2, 5, 2.0)
    other = facility.factory_queues(QUEUES, "submit2", defaults, "lab.test")
    assert [q["grid_resource"] for q in other][-1] == "condor ce@ce ce.example.org:9619"


def test_sha256sums_is_what_sha256sum_prints(tmp_path):
    import subprocess

    (tmp_path / "probes").mkdir()
    (tmp_path / "a.py").write_bytes(b"x = 1\n")
    (tmp_path / "probes" / "b.py").write_bytes(b"")
    files = [{"src": str(tmp_path / p), "path": p} for p in ("a.py", "probes/b.py")]
    printed = subprocess.run(
        ["sha256sum", "--", "a.py", "probes/b.py"], cwd=tmp_path, capture_output=True, text=True
    ).stdout
    assert facility.sha256sums(files) == printed.rstrip("\n")


INFO = {
    "subject_ordered": [["commonName", "srv1.lab.panda.test"]],
    "subject_alt_name": ["DNS:srv1", "DNS:srv1.lab.panda.test", "IP:172.28.10.21"],
    "extended_key_usage": ["TLS Web Server Authentication", "TLS Web Client Authentication"],
    "authority_key_identifier": "de:8f:80",
    "public_key_fingerprints": {"sha256": "ab:cd"},
    "valid_at": {"renewal": True},
}
WANT = (
    [{"commonName": "srv1.lab.panda.test"}],
    ["DNS:srv1.lab.panda.test", "DNS:srv1", "IP:172.28.10.21"],
    ["serverAuth", "clientAuth"],
    "DE:8F:80",
    {"sha256": "ab:cd"},
)


def test_a_certificate_that_is_what_would_be_issued_is_current():
    assert facility.certificate_current(INFO, *WANT)
    pilot = {
        **INFO,
        "subject_ordered": [["domainComponent", "test"], ["commonName", "p"]],
        "subject_alt_name": None,
        "extended_key_usage": ["TLS Web Client Authentication"],
    }
    subject = [{"DC": "test"}, {"CN": "p"}]
    assert facility.certificate_current(pilot, subject, [], ["clientAuth"], *WANT[3:])


@pytest.mark.parametrize(
    "change",
    [
        {"subject_ordered": [["commonName", "other"]]},
        {"subject_alt_name": ["DNS:srv1"]},
        {"extended_key_usage": ["TLS Web Server Authentication"]},
        {"authority_key_identifier": "00:11"},
        {"public_key_fingerprints": {"sha256": "ff"}},
        {"valid_at": {"renewal": False}},
    ],
)
def test_any_difference_makes_a_certificate_not_current(change):
    assert not facility.certificate_current({**INFO, **change}, *WANT)


def test_no_certificate_is_not_current():
    assert not facility.certificate_current({"msg": "not found", "failed": False}, *WANT)
    assert not facility.certificate_current({}, *WANT)


def test_missing_packages_are_all_of_them_until_the_list_is_read():
    assert facility.missing_packages(["a", "b"], {}) == ["a", "b"]
    assert facility.missing_packages(["a", "b"], {"names": ["a", "c"]}) == ["b"]


def test_host_dns_are_the_certificates_subjects():
    assert facility.host_dns(["lb1", "lb2.other.org"], "lab.test") == [
        "/CN=lb1.lab.test",
        "/CN=lb2.other.org",
    ]
    assert facility.host_dns(["srv1"], "lab.test", "panda monitor") == [
        "/OU=panda monitor/CN=srv1.lab.test"
    ]
