"""site.yml and the inventories agree with the groups preflight knows."""

from __future__ import annotations

import re

import yaml

from conftest import ROOT

FACILITY = yaml.safe_load((ROOT / "roles/facility/defaults/main.yml").read_text())
TIERS = FACILITY["facility_tier_groups"]
TIER_GROUPS = [FACILITY[value.strip("{} ")] for value in TIERS.values()]


def entries():
    return yaml.safe_load((ROOT / "playbooks/site.yml").read_text())


def plays():
    """The plays written in site.yml (not the imported tiers.yml)."""
    return [entry for entry in entries() if "hosts" in entry]


def tier_role(play: dict) -> str:
    return play["tasks"][0]["ansible.builtin.import_role"]["name"].split(".")[-1]


def test_tier_plays_skip_only_the_argument_checks_preflight_made():
    """A tier play imports its role without the argument-spec check only because the
    preflight play checked the same options: each role's validate entry point has
    exactly its main entry point's options."""
    for play in plays()[2:]:
        imported = play["tasks"][0]["ansible.builtin.import_role"]
        assert imported["rolespec_validate"] is False, play["name"]
        spec_file = ROOT / "roles" / tier_role(play) / "meta/argument_specs.yml"
        specs = yaml.safe_load(spec_file.read_text())
        main, validate = specs["argument_specs"]["main"], specs["argument_specs"]["validate"]
        assert validate["options"] == main["options"], tier_role(play)


def test_every_play_targets_a_tier_group_made_from_the_inventory():
    """Plays target the facility_<tier> groups that the preflight play makes from the
    inventory groups named by facility_*_group, never an inventory group by name."""
    for play in plays():
        for group in re.split(r"[:,&!]+", play["hosts"]):
            assert group == "all" or group.removeprefix("facility_") in TIERS, (play["name"], group)
    assert entries()[0]["ansible.builtin.import_playbook"] == "tiers.yml"
    tiers = yaml.safe_load((ROOT / "playbooks/tiers.yml").read_text())[0]
    assert tiers["tags"] == ["always"] and tiers["hosts"] == "all"
    assert tiers["tasks"][0]["ansible.builtin.import_role"]["tasks_from"] == "tiers"


def test_tier_groups_are_the_facility_group_variables():
    assert TIER_GROUPS == [
        "loadbalancers", "db_primary", "db_replicas", "panda_servers", "panda_monitors",
        "panda_loggers", "pilot_caches", "submit_hosts", "grid_sites", "monitoring",
    ]  # fmt: skip


def test_preflight_comes_first_and_touches_nothing():
    first = plays()[0]
    assert first["gather_facts"] is False and first["any_errors_fatal"] is True
    assert "always" in first["tags"]


def test_every_play_but_preflight_has_a_tag():
    for play in plays()[1:]:
        assert play.get("tags"), play["name"]


def test_lab_inventory_has_every_tier_group():
    hosts = (ROOT / "inventories/lab/hosts.yml").read_text()
    for group in TIER_GROUPS:
        assert re.search(rf"^\s+{group}:$", hosts, re.MULTILINE), group


def test_facts_are_gathered_once_under_the_tag_of_every_tier():
    """The facts play runs under any tier's tag (so a --tags run of one tier has facts)
    but not under preflight alone; the plays after it gather nothing."""
    facts, tiers = plays()[1], plays()[2:]
    assert facts["gather_facts"] is True and not facts.get("tasks")
    assert sorted(facts["tags"]) == sorted(t for play in tiers for t in play["tags"])
    assert "preflight" not in facts["tags"] and "always" not in facts["tags"]
    assert all(play["gather_facts"] is False for play in tiers)


def test_preflight_checks_each_role_on_the_tiers_its_play_deploys():
    """The preflight's list of roles per tier names, for each tier play, that play's
    role and exactly the tiers it targets (the plays and the list must not drift)."""
    loop = plays()[0]["tasks"][1]
    assert loop["ansible.builtin.include_role"]["tasks_from"] == "validate"
    lines = {
        re.search(r"\['(\w+)'\]", line).group(1): line
        for line in loop["vars"]["__site_roles"].splitlines()
        if re.search(r"\['(\w+)'\] if", line)
    }
    for play in plays()[2:]:
        role = tier_role(play)
        tiers = [g.removeprefix("facility_") for g in play["hosts"].split(":")]
        if tiers == ["all"]:
            continue
        assert role in lines, role
        assert sorted(re.findall(r"'(\w+)'", lines[role])[1:]) == sorted(tiers), lines[role]
