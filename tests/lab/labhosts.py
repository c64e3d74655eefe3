"""What the lab tests share: the lab's hosts and names, and ways into its containers
(testinfra's docker backend, or a plain docker exec)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import testinfra

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventories" / "lab"
LOGS = ROOT / ".cache" / "lab-test"
CA_CERT, CA_KEY = ROOT / ".lab" / "ca" / "ca.crt", ROOT / ".lab" / "ca" / "ca.key"
TLS = "/etc/panda-facility/tls"
DOMAIN = "lab.panda.test"
ADDRESSES = {
    "lb1": "172.28.10.11", "lb2": "172.28.10.12", "srv1": "172.28.10.21",
    "srv2": "172.28.10.22", "log1": "172.28.10.31", "cache1": "172.28.10.32",
    "db1": "172.28.10.41", "db2": "172.28.10.42", "submit1": "172.28.10.51",
    "submit2": "172.28.10.52", "site1": "172.28.10.61", "site2": "172.28.10.62",
    "mon1": "172.28.10.71",
}  # fmt: skip
HOSTS = list(ADDRESSES)
SERVERS = ["srv1", "srv2"]
SERVER_VIP, MONITOR_VIP = "172.28.10.100", "172.28.10.101"
USER_DN = "/DC=test/DC=panda/CN=Test User"
PILOT_DN = "/DC=test/DC=panda/OU=Robots/CN=lab pilot"
# The lab's queue whose factory is drained (max_idle 0): tests play its pilots by hand.
HAND_QUEUE = "LAB_HAND"


def lab_host(name: str) -> testinfra.host.Host:
    """A lab host as testinfra sees it, through docker exec."""
    return testinfra.get_host(f"docker://lab-{name}")


def exec_in(host: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", f"lab-{host}", *cmd], capture_output=True, text=True)


def run_ok(host: testinfra.host.Host, *args: str) -> str:
    """Run a command that must succeed; on failure show what it printed."""
    cmd = host.run(*args)
    assert cmd.rc == 0, f"{cmd.command!r} exited {cmd.rc}\n{cmd.stdout}\n{cmd.stderr}"
    return cmd.stdout
