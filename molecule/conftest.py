"""Helpers shared by the testinfra suites of every scenario."""

from __future__ import annotations

import os

import pytest
import testinfra


def other_host(name: str) -> testinfra.host.Host:
    """Another host of the scenario, for tests that cross the network."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}")


def only_on(host: testinfra.host.Host, *names: str) -> None:
    """Skip the test unless it runs on one of these hosts (the suite runs on every host)."""
    if host.backend.get_hostname() not in names:
        pytest.skip(f"runs on {', '.join(names)}")


def run_ok(host: testinfra.host.Host, *args: str) -> str:
    """Run a command that must succeed; on failure show what it printed."""
    cmd = host.run(*args)
    assert cmd.rc == 0, f"{cmd.command!r} exited {cmd.rc}\n{cmd.stdout}\n{cmd.stderr}"
    return cmd.stdout


@pytest.fixture
def journal(host: testinfra.host.Host):
    """Call with a unit name in a failing assertion's message: its recent journal."""

    def read(unit: str, lines: int = 40) -> str:
        return host.run(f"journalctl --no-pager -n {lines} -u {unit}").stdout

    return read
