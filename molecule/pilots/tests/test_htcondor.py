"""HTCondor: a pilot-like job goes from a submit host to a site with Condor-G as the
service account, authenticated by the site's token; the site refuses writes from anyone
else, and nobody may write to a pool without authenticating."""

from __future__ import annotations

import time

from conftest import only_on, run_ok

SUBMIT_HOST, SITE = "mol-pil-submit1", "mol-pil-site1"
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


def as_panda(host, script: str) -> str:
    return run_ok(host, "runuser -u panda -- sh -c %s", script)


def test_grid_job_runs_at_the_site_and_comes_back(host):
    only_on(host, SUBMIT_HOST)
    work = "/var/lib/panda/htc-test"
    as_panda(host, f"rm -rf {work} && mkdir -p {work}")
    cluster = as_panda(
        host, f"cd {work} && printf '%s' {quote(SUBMIT)} > job.sub && condor_submit -terse job.sub"
    ).split(".")[0]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # the factory's pilots share the queue: ours only
        if not as_panda(host, f"condor_q {cluster} -af ClusterId").strip():
            break
        time.sleep(3)
    history = as_panda(host, f"condor_history {cluster} -af JobStatus Nonessential GridResource")
    assert history.split()[:2] == ["4", "true"], history
    assert SITE_FQDN in history
    assert host.file(f"{work}/out.txt").content_string.strip() == SITE


def quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_site_accepts_writes_only_with_its_token(host):
    only_on(host, SUBMIT_HOST)
    ping = f"condor_ping -pool {SITE_FQDN}:9618 -type schedd -name {SCHEDD} WRITE"
    answer = as_panda(host, ping)
    assert "IDTOKENS) succeeded as panda@" in answer, answer
    as_root = host.run(ping)  # root on the submit host holds no token of the site
    assert as_root.rc != 0 and "succeeded" not in as_root.stdout, as_root.stdout
    token = host.file(f"/var/lib/panda/.condor/tokens.d/{SITE}")
    assert token.user == "panda" and token.mode == 0o600


def test_nobody_may_write_to_the_pool(host):
    only_on(host, "mol-pil-site1", "mol-pil-site2", "mol-pil-submit1", "mol-pil-submit2")
    allow = run_ok(host, "condor_config_val ALLOW_WRITE")
    assert "*" not in allow and "panda@" in allow
    assert host.service("condor").is_enabled and host.service("condor").is_running
