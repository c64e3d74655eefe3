"""What the lab tests share: the lab's hosts and names, and ways into its containers
(testinfra's docker backend, or a plain docker exec)."""

from __future__ import annotations

import subprocess
import threading
import time
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
MONITOR = "pandamon.lab.panda.test"
SHOTS = ROOT / ".cache" / "results" / "screenshots"  # the browser's, kept
USER_DN = "/DC=test/DC=panda/CN=Test User"
PILOT_DN = "/DC=test/DC=panda/OU=Robots/CN=lab pilot"
OPERATOR_DN = "/DC=test/DC=panda/CN=Lab Operator"  # inventories/lab: facility_operator_dns
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


class Soak:
    """Fresh-connection requests through the pandaserver VIP, one every ``interval``
    seconds on a thread, while something else happens (a site.yml run): each must be
    answered. Bounded by ``limit`` requests; the errors are kept with their times."""

    def __init__(self, pem: Path, interval: float = 0.5, limit: int = 2000) -> None:
        import pandaapi

        self.context = pandaapi.context(CA_CERT, pem)
        self.interval, self.limit = interval, limit
        self.sent, self.errors = 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import pandaapi

        while not self._stop.is_set() and self.sent < self.limit:
            session = pandaapi.Session(SERVER_VIP, f"pandaserver.{DOMAIN}", 25443, self.context)
            try:
                session.states([1])
            except Exception as exc:
                self.errors.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}")
            finally:
                session.conn.close()
                self.sent += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Soak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def backend_stats(name: str = "pandaserver") -> dict[str, dict[str, str]]:
    """Per backend server of a service on lb1, HAProxy's statistics row by field."""
    password = (ROOT / ".lab" / "secrets" / "haproxy_stats").read_text().split()[0]
    csv = exec_in("lb1", "curl", "-fsS", "-u", f"admin:{password}",
                  "http://172.28.10.11:8404/;csv").stdout.splitlines()  # fmt: skip
    header = csv[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in csv[1:]]
    return {
        r["svname"]: r
        for r in rows
        if r["pxname"] == name and r["svname"] not in ("FRONTEND", "BACKEND")
    }


def server_connections(name: str = "pandaserver") -> dict[str, tuple[int, int]]:
    """Per backend server of a service on lb1: (connections opened, requests that
    reused a pooled connection), from HAProxy's statistics."""
    return {
        server: (int(row["connect"] or 0), int(row["reuse"] or 0))
        for server, row in backend_stats(name).items()
    }
