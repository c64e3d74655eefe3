"""The deployed lab as its operators see it, after test_site.py has converged it and run
jobs through it: every Nagios check on mon1 is OK, the monitor's pages, opened
through the pandamon VIP by headless Chromium (Debian's package) with the lab CA
trusted, show what they should (screenshots are kept under .cache/results/screenshots),
and a rolling update that Nagios sees pages nobody.
"""

from __future__ import annotations

import json
import re
import time

import pytest

import nagiosstatus
from labhosts import HOSTS, INVENTORY, LOGS, MONITOR, ROOT, SERVERS, SHOTS, exec_in
from sitecheck import run_site

# page, what it must show (regular expressions over the DOM)
PAGES = [
    ("/", [r'id="summary"', r"LAB_SITE1", r"LAB_SITE2", r"finished"]),
    (
        "/jobs?queue=LAB_SITE1&state=finished&days=1",
        [r"LAB_SITE1", r'href="/jobs/\d+"', r"past 24 h"],
    ),
    ("/errors?days=7", [r'id="pilot_error"', r'id="exe_error"', r"past 168 h"]),
    ("/plots/states", [r"<svg", r"finished", r'class="xtick"', r"time \(UTC\)"]),
    ("/plots/states?queue=LAB_SITE1&window=day", [r"<svg", r"LAB_SITE1: jobs", r"finished"]),
    ("/plots/states?window=month", [r"<svg", r"jobs per 6 h", r'class="chosen">month<']),
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


def test_a_rolling_update_that_nagios_sees_pages_nobody(converged):
    """srv1 is held down during its update until Nagios has its isAlive problem HARD
    (tests/lab/roles/held_down): the downtime the playbook scheduled keeps it from
    anyone's mail; each server's downtime is gone afterwards (test_faults.py then sees
    an unplanned stop of srv2 notified)."""
    log = "/var/log/nagios4/nagios.log"
    lines_before = len(exec_in("mon1", "cat", log).stdout.splitlines())
    held_down = ROOT / "tests" / "lab" / "roles" / "held_down"
    extra = {"rolling_update_service": "pandaserver", "rolling_update_units": ["apache2"],
             "rolling_update_role": str(held_down), "held_down_host": "srv1"}  # fmt: skip
    run = run_site(INVENTORY, "-e", json.dumps(extra), log=LOGS / "rolling-update.log",
                   playbook=ROOT / "playbooks" / "rolling-update.yml")  # fmt: skip
    assert run.returncode == 0, run.failures()
    time.sleep(15)  # the fresh checks made as each downtime ended, and their mail
    new = exec_in("mon1", "cat", log).stdout.splitlines()[lines_before:]
    text = "\n".join(new)
    assert "SERVICE ALERT: srv1;pandaserver isAlive;CRITICAL;HARD" in text, text[-3000:]
    for srv in SERVERS:
        assert f"HOST DOWNTIME ALERT: {srv};STARTED" in text, text[-3000:]
        assert f"HOST DOWNTIME ALERT: {srv};CANCELLED" in text, text[-3000:]
    assert "SERVICE DOWNTIME ALERT: lb1;haproxy backends;CANCELLED" in text, text[-3000:]
    assert not [line for line in new if "NOTIFICATION:" in line], text[-3000:]
    status = exec_in("mon1", "cat", nagiosstatus.STATUS_FILE).stdout
    assert "downtime {" not in status, "a downtime was left behind"
    touched = {k: v for k, v in services().items()
               if k[0] in SERVERS or k[1] == "haproxy backends"}  # fmt: skip
    assert not nagiosstatus.not_ok(touched)


def prometheus(path: str) -> dict:
    """Prometheus' API on mon1 (it listens on loopback there)."""
    got = exec_in("mon1", "curl", "-sf", f"http://127.0.0.1:9090/api/v1/{path}")
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)["data"]


def test_prometheus_scrapes_every_server_and_load_balancer(converged):
    wanted = {("pandaserver", "srv1"), ("pandaserver", "srv2"), ("haproxy", "lb1"),
              ("haproxy", "lb2"), ("prometheus", "mon1")}  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        targets = prometheus("targets")["activeTargets"]
        health = {(t["labels"]["job"], t["labels"]["host"]): t["health"] for t in targets}
        if set(health) == wanted and set(health.values()) == {"up"}:
            break
        assert time.monotonic() < deadline, {t["scrapeUrl"]: t["lastError"] for t in targets}
        time.sleep(3)
    # The servers count the lab's requests and see its jobs; HAProxy its frontends.
    jobs = prometheus("query?query=sum(panda_jobs)")["result"]
    assert jobs and float(jobs[0]["value"][1]) > 0, jobs
    acquires = prometheus("query?query=sum(panda_server_acquire_seconds_count)")["result"]
    assert acquires and float(acquires[0]["value"][1]) > 0, acquires
    frontends = prometheus("query?query=haproxy_frontend_http_requests_total")["result"]
    assert {r["metric"]["proxy"] for r in frontends} >= {"pandaserver", "pandamon"}, frontends
