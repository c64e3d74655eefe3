"""The deployed lab as its operators see it, after test_site.py has converged it and run
jobs through it: every Nagios check on mon1 is OK, and the monitor's pages, opened
through the pandamon VIP by headless Chromium (Debian's package) with the lab CA
trusted, show what they should. Screenshots are kept under .cache/results/screenshots.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest

import nagiosstatus
from labhosts import CA_CERT, HOSTS, ROOT, exec_in

SHOTS = ROOT / ".cache" / "results" / "screenshots"
CA = CA_CERT
MONITOR, MONITOR_VIP = "pandamon.lab.panda.test", "172.28.10.101"

# page, what it must show (regular expressions over the DOM)
PAGES = [
    ("/", [r'id="summary"', r"LAB_SITE1", r"LAB_SITE2", r"finished"]),
    (
        "/jobs?queue=LAB_SITE1&state=finished&days=1",
        [r"LAB_SITE1", r'href="/jobs/\d+"', r"past 24 h"],
    ),
    ("/errors?days=7", [r'id="pilot_error"', r'id="exe_error"', r"past 168 h"]),
    ("/plots/states", [r"<svg", r"finished"]),
    ("/pilots", [r'id="pilots"', r"LAB_SITE1", r"submit1", r"LAB_SITE2", r"submit2"]),
    ("/plots/pilots?queue=LAB_SITE1", [r"<svg", r"idle", r"running", r"held"]),
    ("/servers", [r'id="servers"', r"srv1", r"srv2"]),
]


def services() -> dict[tuple[str, str], dict[str, str]]:
    return nagiosstatus.services(exec_in("mon1", "cat", nagiosstatus.STATUS_FILE).stdout)


def test_every_nagios_check_of_the_lab_is_ok(converged):
    since = int(time.time())
    for host in HOSTS:
        line = nagiosstatus.force_checks(host)
        cmd = exec_in("mon1", "sh", "-c", f"echo '{line}' > {nagiosstatus.COMMAND_FILE}")
        assert cmd.returncode == 0, cmd.stderr
    deadline = time.monotonic() + 180
    while True:
        status = services()
        if status and all(int(s["last_check"]) >= since for s in status.values()):
            break
        assert time.monotonic() < deadline, "Nagios did not check every service in 180 s"
        time.sleep(5)
    bad = nagiosstatus.not_ok(status)
    assert not bad, bad
    assert {h for h, _ in status} == set(HOSTS)
    described = {d for _, d in status}
    wanted = ["memory", "disk", "cleanup", "host certificate", "replication",
              "slow-query guard", "pandaserver isAlive", "pandamon page", "logger isAlive",
              "schedd and idle pilots", "pilot factory", "pilot credential", "haproxy backends",
              "vips held", "squid hit ratio", "pandaserver through its VIP",
              "pandamon through its VIP"]  # fmt: skip
    assert set(wanted) <= described, set(wanted) - described


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """Run headless Chromium with a profile that trusts the lab CA (an NSS database) and
    resolves the monitor's VIP name to the VIP, as the facility's DNS would."""
    home = tmp_path_factory.mktemp("chromium-home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "panda-lab-ca",
                    "-t", "C,,", "-i", str(CA)], check=True)  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={home / 'profile'}", "--window-size=1280,900",
               f"--host-resolver-rules=MAP {MONITOR} {MONITOR_VIP}", *args]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              env={"HOME": str(home), "PATH": "/usr/bin:/bin"})  # fmt: skip

    return run


@pytest.mark.parametrize("page,expected", PAGES, ids=[p for p, _ in PAGES])
def test_monitor_pages_in_a_browser_through_the_vip(converged, chromium, page, expected):
    url = f"https://{MONITOR}{page}"
    dom = chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for pattern in expected:
        assert re.search(pattern, dom.stdout), f"{url}: no {pattern!r} in the page"
    # Every page says which backend served it.
    assert re.search(r'id="served-by">srv[12]<', dom.stdout), url
    name = re.sub(r"[^a-z0-9]+", "-", page.lower()).strip("-") or "summary"
    shot = SHOTS / f"{name}.png"
    taken = chromium(f"--screenshot={shot}", url)
    assert taken.returncode == 0 and shot.stat().st_size > 5000, taken.stderr[-2000:]
