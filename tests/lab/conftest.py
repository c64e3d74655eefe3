"""The one converged lab that every lab test reads: the lab is recreated and site.yml
run once per session (the first test that needs it pays), then each module checks its
tier on it. Modules run in ORDER: the convergence checks first, on the fresh lab, then
the tiers, then what changes the inventory and puts it back, then the operators' view,
then what breaks and repairs components, and last the fault audit, which leaves the lab
with its primary database replaced."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import lab
from labhosts import CA_CERT, INVENTORY, LOGS, MONITOR, MONITOR_VIP, SHOTS
from sitecheck import SiteRun, run_site

ORDER = [
    "test_site.py",
    "test_base.py",
    "test_certificates.py",
    "test_panda_services.py",
    "test_pilots.py",
    "test_site_operations.py",
    "test_faults.py",
    "test_fault_audit.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = Path(str(item.fspath)).name
        return ORDER.index(name) if name in ORDER else len(ORDER)

    items.sort(key=rank)  # stable: a module's own tests keep their order


@pytest.fixture(scope="session")
def first_run() -> SiteRun:
    """A fresh lab's first site.yml run; with LAB_REUSE=1 (a developer's shortcut, not
    CI's) a site.yml run on the lab as it is."""
    if os.environ.get("LAB_REUSE") != "1":
        lab.down(INVENTORY)
    lab.up(INVENTORY)
    run = run_site(INVENTORY, log=LOGS / "first.log")
    write_profile(run, LOGS / "first-profile.txt")
    return run


def write_profile(run: SiteRun, path: Path, top: int = 25) -> None:
    """Where a run's time went, for the CI log's reader: tasks and roles by time."""
    tasks = sorted(run.task_seconds.items(), key=lambda t: -t[1])[:top]
    roles = sorted(run.role_seconds.items(), key=lambda t: -t[1])
    lines = [f"{run.seconds:.0f} s, {run.tasks} tasks, module executions per host: "
             f"{dict(sorted(run.executions.items()))}"]  # fmt: skip
    lines += [f"{s:8.1f} s  {t}" for t, s in tasks] + ["roles:"]
    lines += [f"{s:8.1f} s  {r}" for r, s in roles]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def converged(first_run: SiteRun) -> SiteRun:
    """The lab after a successful first run: what the tests of each tier start from."""
    if first_run.returncode != 0:
        pytest.fail("the lab did not converge (test_fresh_lab_converges says why)")
    return first_run


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    """Run headless Chromium with a profile that trusts the lab CA (an NSS database) and
    resolves the monitor's VIP name to the VIP, as the facility's DNS would."""
    home = tmp_path_factory.mktemp("chromium-home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "panda-lab-ca",
                    "-t", "C,,", "-i", str(CA_CERT)], check=True)  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={home / 'profile'}", "--window-size=1280,900",
               f"--host-resolver-rules=MAP {MONITOR} {MONITOR_VIP}", *args]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              env={"HOME": str(home), "PATH": "/usr/bin:/bin"})  # fmt: skip

    return run
