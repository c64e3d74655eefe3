"""HTCondor: a pilot-like job goes from the submit host to the site with Condor-G as
the service account, authenticated by the site's token; the site refuses writes from
anyone else; each site has its own gridmanager log; jobs are Nonessential."""

from __future__ import annotations

import time

import pytest

from conftest import run_ok

SITE = "mol-htc-site1"
SITE_FQDN = f"{SITE}.mol.panda.test"
SCHEDD = f"{SITE}@{SITE}"  # htcondor_site_name@htcondor_site_name
SUBMIT = f"""universe = grid
grid_resource = condor {SCHEDD} {SITE_FQDN}:9618
executable = /bin/hostname
output = out.txt
error = err.txt
log = job.log
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
+Nonessential = True
queue
"""


def only_on(host, name: str) -> None:
    if host.backend.get_hostname() != name:
        pytest.skip(f"runs on {name}")


def as_panda(host, script: str) -> str:
    return run_ok(host, "runuser -u panda -- sh -c %s", script)


def test_grid_job_runs_at_the_site_and_comes_back(host):
    only_on(host, "mol-htc-submit1")
    work = "/var/lib/panda/htc-test"
    as_panda(host, f"rm -rf {work} && mkdir -p {work}")
    as_panda(host, f"cd {work} && printf '%s' {quote(SUBMIT)} > job.sub && condor_submit job.sub")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        left = as_panda(host, "condor_q -af ClusterId | wc -l").strip()
        if left == "0":
            break
        time.sleep(3)
    history = as_panda(host, "condor_history -limit 1 -af JobStatus Nonessential GridResource")
    assert history.split()[:2] == ["4", "true"], history
    assert SITE_FQDN in history
    assert host.file(f"{work}/out.txt").content_string.strip() == SITE


def quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_each_site_has_its_own_gridmanager_log(host):
    only_on(host, "mol-htc-submit1")
    logs = run_ok(host, "ls /var/log/condor").split()
    assert any(name.startswith("GridmanagerLog.panda.") and SITE in name for name in logs), logs


def test_site_accepts_writes_only_with_its_token(host):
    only_on(host, "mol-htc-submit1")
    ping = f"condor_ping -pool {SITE_FQDN}:9618 -type schedd -name {SCHEDD} WRITE"
    answer = as_panda(host, ping)
    assert "IDTOKENS) succeeded as panda@" in answer, answer
    as_root = host.run(ping)  # root on the submit host holds no token of the site
    assert as_root.rc != 0 and "succeeded" not in as_root.stdout, as_root.stdout
    token = host.file(f"/var/lib/panda/.condor/tokens.d/{SITE}")
    assert token.user == "panda" and token.mode == 0o600


def test_nobody_may_write_to_the_pool(host):
    allow = run_ok(host, "condor_config_val ALLOW_WRITE")
    assert "*" not in allow and "panda@" in allow
    assert host.service("condor").is_enabled and host.service("condor").is_running
