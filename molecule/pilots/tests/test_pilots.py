"""Pilot submission end to end: jobs submitted to the server are taken and finished by
pilots that the factories sent to the sites through Condor-G; each queue is served by
the submit host its inventory entry names (before and after the side effect moves
MOL_SITE2), pilots are Nonessential, every site has its own gridmanager log, pilots
leave their log with the logger, and the factories' counts reach the database."""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request
from pathlib import Path

import pytest

from conftest import only_on, other_host, run_ok

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "tools"))
import pandaapi
import testpki

WORK = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
CA_CERT, CA_KEY = WORK / "ca" / "ca.crt", WORK / "ca" / "ca.key"
SERVER = ("172.28.90.21", "mol-pil-srv1.mol.panda.test")
SUBMIT_HOSTS = ["mol-pil-submit1", "mol-pil-submit2"]
QUEUES = ["MOL_SITE1", "MOL_SITE2"]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> pandaapi.Session:
    """The server as a user, by address (no DNS on the controller), its name verified."""
    ca = testpki.load_ca(CA_CERT, CA_KEY)
    pem = testpki.user_pem("/DC=test/DC=panda/CN=Test User", ca,
                           tmp_path_factory.mktemp("u") / "user.pem")  # fmt: skip
    return pandaapi.Session(*SERVER, 25443, pandaapi.context(CA_CERT, pem))


def placement() -> dict[str, str]:
    """Which submit host's factory serves each queue now (its settings file)."""
    serving = {}
    for name in SUBMIT_HOSTS:
        text = other_host(name).file("/etc/panda-facility/autopilot.json").content_string
        settings = json.loads(text)
        for queue in settings["queues"]:
            assert queue["name"] not in serving, f"{queue['name']} on two hosts"
            serving[queue["name"]] = name
    return serving


def test_each_queue_is_served_by_one_submit_host(host):
    only_on(host, "mol-pil-submit1")
    assert sorted(placement()) == QUEUES


def test_jobs_are_taken_and_finished_by_pilots(host, server):
    only_on(host, "mol-pil-submit1")
    jobs = [
        {"computingSite": q, "jobName": f"pilot-test-{q}-{i}", "transformation": "/bin/sh",
         "jobParameters": "-c 'echo payload on $(hostname)'"}
        for q in QUEUES for i in range(3)
    ]  # fmt: skip
    ids = server.submit(jobs)
    states = server.wait_for(ids, "finished", 420)
    assert states == ["finished"] * len(ids), states
    records = json.load(
        urllib.request.urlopen(
            f"https://{SERVER[0]}:8443/logger/records?panda_id={ids[0]}",
            context=_by_address(),
            timeout=10,
        )
    )["data"]
    assert any("payload on mol-pil-site" in r["message"] for r in records), records


def _by_address() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(CA_CERT))
    context.check_hostname = False  # the logger by address; its certificate is verified
    return context


def test_pilots_are_nonessential_grid_jobs_with_a_log_per_site(host):
    if host.backend.get_hostname() not in SUBMIT_HOSTS:
        pytest.skip("submit hosts")
    mine = [q for q, h in placement().items() if h == host.backend.get_hostname()]
    if not mine:
        pytest.skip("serves no queue now")
    out = run_ok(host, "condor_history -limit 20 -af Nonessential PandaQueue")
    assert out.strip() and all(line.split()[0] == "true" for line in out.splitlines()), out
    logs = run_ok(host, "ls /var/log/condor").split()
    for queue in mine:
        site = queue.replace("MOL_SITE", "mol-pil-site")
        assert any(n.startswith("GridmanagerLog.panda.") and site in n for n in logs), logs


def test_factories_report_their_counts(host):
    only_on(host, "mol-pil-db1")
    serving = placement()
    rows = run_ok(
        host,
        "mariadb -N -B -e 'SELECT queue, submit_host FROM panda.pilot_stats"
        " WHERE cycle_at > UTC_TIMESTAMP() - INTERVAL 2 MINUTE'",
    )
    reported = {tuple(line.split("\t")) for line in rows.splitlines()}
    assert {(q, h) for q, h in serving.items()} <= reported, rows


def test_factory_runs_as_the_service_account(host):
    if host.backend.get_hostname() not in SUBMIT_HOSTS:
        pytest.skip("submit hosts")
    assert host.service("panda-autopilot").is_running
    assert run_ok(host, "ps -o user= -C python3").split().count("panda") >= 1
    pem = host.file("/var/lib/panda/autopilot/credential/pilot.pem")
    assert pem.user == "panda" and pem.mode == 0o600
