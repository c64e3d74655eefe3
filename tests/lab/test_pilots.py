"""Pilot submission on the converged lab: Condor-G from a submit host to a site with the
site's token only; the pilot code through Squid; jobs submitted through the pandaserver
VIP taken and finished by the pilots each queue's factory sent, their payload output
with the logger; then a queue moved to the other submit host by an inventory edit and a
re-run, and moved back."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.request

import pytest

import pandaapi
import testpki
from labhosts import (
    ADDRESSES,
    CA_CERT,
    CA_KEY,
    DOMAIN,
    HAND_QUEUE,
    INVENTORY,
    LOGS,
    OPERATOR_DN,
    PILOT_DN,
    ROOT,
    SERVER_VIP,
    USER_DN,
    exec_in,
    lab_host,
    run_ok,
)  # fmt: skip
from sitecheck import run_site

SUBMIT_HOSTS = ["submit1", "submit2"]
QUEUES = {"LAB_SITE1": "site1", "LAB_SITE2": "site2"}


# --- HTCondor -------------------------------------------------------------------------

SUBMIT = """universe = grid
grid_resource = condor site1@site1 site1.{domain}:9618
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


def test_grid_job_runs_at_the_site_and_comes_back(converged):
    host, work = lab_host("submit1"), "/var/lib/panda/htc-test"
    as_panda(host, f"rm -rf {work} && mkdir -p {work}")
    sub = SUBMIT.format(domain=DOMAIN).replace("'", "'\\''")
    cluster = as_panda(
        host, f"cd {work} && printf '%s' '{sub}' > job.sub && condor_submit -terse job.sub"
    ).split(".")[0]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # the factory's pilots share the queue: ours only
        if not as_panda(host, f"condor_q {cluster} -af ClusterId").strip():
            break
        time.sleep(3)
    history = as_panda(host, f"condor_history {cluster} -af JobStatus Nonessential GridResource")
    assert history.split()[:2] == ["4", "true"], history
    assert f"site1.{DOMAIN}" in history
    assert host.file(f"{work}/out.txt").content_string.strip() == "site1"


def test_site_accepts_writes_only_with_its_token(converged):
    host = lab_host("submit1")
    ping = f"condor_ping -pool site1.{DOMAIN}:9618 -type schedd -name site1@site1 WRITE"
    answer = as_panda(host, ping)
    assert "IDTOKENS) succeeded as panda@" in answer, answer
    as_root = host.run(ping)  # root on the submit host holds no token of the site
    assert as_root.rc != 0 and "succeeded" not in as_root.stdout, as_root.stdout
    token = host.file("/var/lib/panda/.condor/tokens.d/site1")
    assert token.user == "panda" and token.mode == 0o600


@pytest.mark.parametrize("name", ["site1", "site2", "submit1", "submit2"])
def test_nobody_may_write_to_the_pool(converged, name):
    host = lab_host(name)
    allow = run_ok(host, "condor_config_val ALLOW_WRITE")
    assert "*" not in allow and "panda@" in allow
    assert host.service("condor").is_enabled and host.service("condor").is_running


# --- The pilot code through Squid ------------------------------------------------------

CACHE_URL = f"https://{ADDRESSES['cache1']}"
ORIGIN_LOG = "/var/log/apache2/pilot-origin-access.log"
WRAPPER = "/opt/panda-facility/lib/pandafacility/wrapper.py"


def cache_tls() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(CA_CERT))
    context.check_hostname = False  # the cache by address; its certificate is verified
    return context


def fetch(path: str) -> tuple[bytes, str]:
    with urllib.request.urlopen(f"{CACHE_URL}{path}", timeout=10, context=cache_tls()) as answer:
        return answer.read(), answer.headers.get("Cache-Status", "")


def download() -> dict[str, bytes]:
    """The tarball's files, and under "Cache-Status" how Squid answered (RFC 9211)."""
    data, cache = fetch("/pilot/pilot.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    return {**files, "Cache-Status": cache.encode()}


def manifest() -> tuple[str, str]:
    """The current version's SHA-256 and file name, as the factories read them."""
    sha, name = fetch("/pilot/pilot.tar.gz.sha256")[0].decode().split()
    return sha, name


def origin_requests() -> int:
    out = run_ok(lab_host("cache1"), f"grep -c 'GET /pilot/pilot.tar.gz ' {ORIGIN_LOG} || true")
    return int(out or 0)


def test_repeated_downloads_are_memory_hits_that_leave_the_origin_alone(converged):
    files = download()  # the copy is in memory now, whatever came before
    assert "pilot/README.md" in files and b"def main(" in files["pilot/pilot.py"]
    before = origin_requests()
    answers = [download()["Cache-Status"].decode() for _ in range(30)]
    assert origin_requests() == before
    assert all(";hit" in a for a in answers), answers


def test_a_pushed_commit_is_served_at_once_and_the_version_before_stays(converged):
    host, stamp = lab_host("cache1"), f"v{time.time_ns()}"
    download()
    old_sha, old_name = manifest()
    before = origin_requests()
    push = (
        "set -e; d=$(mktemp -d); cd $d; git clone -q /srv/pilot-code/pilot.git p; cd p;"
        " printf '%s\\n' '{}' > VERSION; git add VERSION;"
        " git -c user.name=t -c user.email=t@localhost commit -q -m test;"
        " git push -q origin main; rm -rf $d"
    )
    run_ok(host, "runuser -u panda -- sh -c %s", push.format(stamp))
    assert download()["pilot/VERSION"].decode().strip() == stamp
    for _ in range(5):
        download()
    assert origin_requests() == before + 1
    # The manifest names the new version by its hash; a pilot given the old one's hash
    # before the push still finds it.
    sha, name = manifest()
    assert sha != old_sha and name == f"pilot-{sha}.tar.gz"
    assert hashlib.sha256(fetch(f"/pilot/{name}")[0]).hexdigest() == sha
    assert hashlib.sha256(fetch(f"/pilot/{old_name}")[0]).hexdigest() == old_sha


def test_pilots_are_sent_with_the_code_hash_and_refuse_other_code(converged):
    """The factory's pilots carry the current version's URL, hash and CA; the wrapper,
    given a hash that is not the tarball's (a changed tarball), runs nothing."""
    sha, name = manifest()
    host = lab_host("submit1")
    where = "-constraint 'PandaQueue =?= \"LAB_SITE1\"' -af Arguments"
    args = as_panda(host, f"condor_q {where}; condor_history -limit 1 {where}").split()
    assert "--pilot-sha256" in args, args
    given = args[args.index("--pilot-sha256") + 1]
    assert args[args.index("--pilot-url") + 1].endswith(f"/pilot/pilot-{given}.tar.gz"), args
    assert args[args.index("--ca") + 1] == "ca.crt", args
    # The pilots carry a proxy of their credential, hours long, never the credential.
    assert args[args.index("--cert") + 1] == "proxy.pem", args
    where_inputs = where.replace("Arguments", "TransferInput")
    inputs = as_panda(host, f"condor_q {where_inputs}; condor_history -limit 1 {where_inputs}")
    assert "proxy.pem" in inputs and "pilot.pem" not in inputs, inputs
    cred = "/var/lib/panda/autopilot/credential"
    lifetimes = run_ok(host, f"for f in {cred}/pilot.pem {cred}/proxy.pem; do"
                             " openssl x509 -noout -startdate -enddate -in $f; done")  # fmt: skip
    starts = [ssl.cert_time_to_seconds(v.split("=", 1)[1]) for v in lifetimes.split("\n")
              if v.startswith("notBefore")]  # fmt: skip
    ends = [ssl.cert_time_to_seconds(v.split("=", 1)[1]) for v in lifetimes.split("\n")
            if v.startswith("notAfter")]  # fmt: skip
    assert ends[1] - starts[1] <= 12.1 * 3600 < ends[0] - starts[0], lifetimes
    url = f"https://cache1.{DOMAIN}/pilot/{name}"
    ca = "/etc/panda-facility/tls/ca.crt"
    wrong = "0" * 64
    run = host.run(
        "cd $(runuser -u panda -- mktemp -d) && runuser -u panda -- python3 %s"
        " --pilot-url %s --pilot-sha256 %s --ca %s -- --queue LAB_HAND; echo rc=$?; ls",
        WRAPPER, url, wrong, ca,
    )  # fmt: skip
    assert "rc=64" in run.stdout and "pilot" not in run.stdout.split("rc=64")[1], run.stdout
    assert f"SHA-256 is {sha}" in run.stderr, run.stderr


def test_origin_is_on_loopback_and_only_the_pilot_code_is_served(converged):
    host = lab_host("cache1")
    assert host.socket("tcp://127.0.0.1:8081").is_listening
    assert not host.socket("tcp://0.0.0.0:8081").is_listening
    # Plain HTTP is the host's own (the purge, the probe); pilots have HTTPS only.
    assert host.socket("tcp://127.0.0.1:80").is_listening
    assert not host.socket("tcp://0.0.0.0:80").is_listening
    for port in (80, 8081):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://{ADDRESSES['cache1']}:{port}/pilot/pilot.tar.gz",
                                   timeout=3)  # fmt: skip
    for method, path in (("PURGE", "/pilot/pilot.tar.gz"), ("GET", "/etc/passwd")):
        request = urllib.request.Request(f"{CACHE_URL}{path}", method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5, context=cache_tls())
        assert refused.value.code == 403, (method, path)
    run_ok(host, "squid -k parse -f /etc/squid/squid.conf")
    assert host.service("squid").is_enabled and host.service("squid").is_running
    key = host.file("/etc/squid/tls/host.key")
    assert key.user == "proxy" and key.mode == 0o600


# --- Jobs through the VIP, finished by the factories' pilots ---------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> pandaapi.Session:
    """The pandaserver VIP as a user, by address, its name verified."""
    pem = testpki.user_pem(USER_DN, testpki.load_ca(CA_CERT, CA_KEY),
                           tmp_path_factory.mktemp("u") / "user.pem")  # fmt: skip
    return pandaapi.Session(SERVER_VIP, f"pandaserver.{DOMAIN}", 25443,
                            pandaapi.context(CA_CERT, pem))  # fmt: skip


# --- The PanDA pilot from PyPI ----------------------------------------------------------

# A dedicated account on site1: the pilot kills every orphan process of its user.
PYPI_USER = "pypipilot"
# The generic pilot fetches a transformation only from its own two URL prefixes; with
# HARVESTER_WORKDIR set it copies the file of that name from there instead.
PYPI_TRF = "http://pandaserver-doma.cern.ch:25080/trf/user/lab-payload.sh"
PYPI_RUN = """set -e
cd "$HOME"
tar xzf pilot.tar.gz
mkdir -p trf out work
printf '#!/bin/sh\\necho "payload: $*" | tee "$HOME/payload.out"\\n' > trf/lab-payload.sh
chmod +x trf/lab-payload.sh
echo '{{"LOCAL": {{"name": "LOCAL", "is_deterministic": true}}}}' > storage.json
curl -sf --capath /etc/grid-security/certificates "{vip}/cache/schedconfig/{queue}.all.json" \\
  | python3 -c 'import json, sys; print(json.dumps({{"{queue}": json.load(sys.stdin)}}))' \\
  > schedconf.json
cd panda-pilot-*/
export X509_USER_PROXY="$HOME/proxy.pem" X509_CERT_DIR=/etc/grid-security/certificates
export HARVESTER_WORKDIR="$HOME/trf" LOCAL_AGIS_SCHEDCONF="$HOME/schedconf.json"
exec timeout 900 python3 pilot.py -q {queue} --pilot-user generic -w generic -j managed -t -d \\
  --url https://pandaserver.{domain} -p 25443 \\
  --queuedata-url "{vip}/cache/schedconfig/{{pandaqueue}}.all.json" \\
  --storagedata-url "$HOME/storage.json" --use-rucio-traces false \\
  --output-dir "$HOME/out" -a "$HOME/work"
"""


def test_the_pypi_pilot_finishes_a_job_through_the_vip(converged, tmp_path):
    """panda-pilot from PyPI with its stock configuration (only the URLs and paths set
    on its command line and environment) as a non-root user on site1, with a proxy of
    the pilots' certificate: takes the job through the VIP, runs it, saves its log with
    the queue's mv copytool (into its own directory, which it removes when it ends) and
    reports it finished, the log's file report with it."""
    sdist = sorted((ROOT / ".cache" / "pypi").glob("panda-pilot-*.tar.gz"))[-1]
    ca = testpki.load_ca(CA_CERT, CA_KEY)
    owner = testpki.issue(PILOT_DN, ca)
    cert, key = testpki.proxy(owner)
    proxy = tmp_path / "proxy.pem"
    proxy.write_bytes(testpki.pem(cert) + testpki.pem(key) + testpki.pem(owner[0]))
    production = pandaapi.Session(SERVER_VIP, f"pandaserver.{DOMAIN}", 25443,
                                  pandaapi.context(CA_CERT, proxy))  # fmt: skip
    # Above every other job left in the queue, earlier runs' included: this pilot takes
    # this job.
    (pid,) = production.submit([{
        "computingSite": HAND_QUEUE, "jobName": "lab-pypi-pilot", "transformation": PYPI_TRF,
        "jobParameters": "hello from the PyPI pilot", "currentPriority": int(time.time()),
    }])  # fmt: skip
    home = f"/home/{PYPI_USER}"
    host = lab_host("site1")
    run_ok(host, f"id {PYPI_USER} >/dev/null 2>&1 || useradd -m -s /bin/bash {PYPI_USER}")
    try:
        for local, name in ((sdist, "pilot.tar.gz"), (proxy, "proxy.pem")):
            subprocess.run(["docker", "cp", str(local), f"lab-site1:{home}/{name}"], check=True)
        run_ok(host, f"chown -R {PYPI_USER}: {home} && chmod 600 {home}/proxy.pem")
        script = PYPI_RUN.format(vip=f"https://pandaserver.{DOMAIN}:25443", queue=HAND_QUEUE,
                                 domain=DOMAIN)  # fmt: skip
        command = ["docker", "exec", "lab-site1", "runuser", "-u", PYPI_USER, "--", "sh", "-c"]
        ran = subprocess.run([*command, script], capture_output=True, text=True, timeout=960)
        (LOGS / "pypi-pilot.log").write_text(ran.stdout + ran.stderr)
        states = production.wait_for([pid], "finished", 30)
        assert states == ["finished"], f"{states}; pilot exited {ran.returncode}, see {LOGS}"
        assert host.file(f"{home}/payload.out").content_string == (
            "payload: hello from the PyPI pilot\n"
        )
        # The log the server named, its GUID, as the pilot reported saving it.
        query = ("SELECT JSON_UNQUOTE(JSON_EXTRACT(pilot_report, '$.fileReport'))"
                 f" FROM panda.jobs WHERE panda_id = {pid}")  # fmt: skip
        report = json.loads(exec_in("db1", "mariadb", "-N", "-e", query).stdout)
        log = f"lab-pypi-pilot.{pid}.1.log.tgz"
        assert report[log]["guid"] and int(report[log]["fsize"]) > 0, report
    finally:
        exec_in("site1", "pkill", "-KILL", "-u", PYPI_USER)
        exec_in("site1", "userdel", "-r", PYPI_USER)


def placement() -> dict[str, str]:
    """Which submit host's factory serves each queue now (its settings file)."""
    serving: dict[str, str] = {}
    for name in SUBMIT_HOSTS:
        text = lab_host(name).file("/etc/panda-facility/autopilot.json").content_string
        for queue in json.loads(text)["queues"]:
            assert queue["name"] not in serving, f"{queue['name']} on two hosts"
            serving[queue["name"]] = name
    return serving


def run_jobs(server: pandaapi.Session, queues: list[str]) -> list[int]:
    jobs = [{"computingSite": q, "jobName": f"lab-{q}", "transformation": "/bin/sh",
             "jobParameters": "-c 'echo payload on $(hostname)'"} for q in queues]  # fmt: skip
    ids = server.submit(jobs)
    states = server.wait_for(ids, "finished", 420)
    by_queue = dict(zip(queues, states, strict=True))
    assert states == ["finished"] * len(ids), f"{by_queue} {server.dropped}\n{pilot_trail()}"
    return ids


def job_records(panda_id: int, tmp_path) -> list[dict]:
    """A job's records at the logger, read with an operator's certificate."""
    context = ssl.create_default_context(cafile=str(CA_CERT))
    context.check_hostname = False  # the logger by address; its certificate is verified
    ca = testpki.load_ca(CA_CERT, CA_KEY)
    context.load_cert_chain(str(testpki.user_pem(OPERATOR_DN, ca, tmp_path / "op.pem")))
    url = f"https://{ADDRESSES['log1']}:8443/logger/records?panda_id={panda_id}"
    with urllib.request.urlopen(url, context=context, timeout=10) as answer:
        return json.load(answer)["data"]


# A payload looking for the pilots' credential every way it could reach it: its
# environment, every process's environment, working directory and descriptors, and any
# readable private key under the usual directories.
HOSTILE = (
    'f() { echo FOUND: "$@"; }; env | grep -qi x509 && f env;'
    " for p in /proc/[0-9]*; do grep -qai x509 $p/environ 2>/dev/null && f $p/environ;"
    " ls $p/cwd 2>/dev/null | grep -q pem && f $p/cwd; ls -l $p/fd 2>/dev/null | grep -q pem"
    " && f $p/fd; done; for d in /var /home /tmp /etc /root /run /opt /srv /dev/shm; do"
    " grep -rlsE -- '-----BEGIN ([A-Z]+ )?PRIVATE KEY-----' $d 2>/dev/null"
    " | sed 's/^/FOUND: /'; done; echo HOSTILE DONE"
)


def test_a_hostile_payload_finds_no_credential(converged, server, tmp_path):
    """A job's payload on a site, run by a factory pilot, reads every path to the pilot's
    credential (issue 16): its environment, /proc of every process (the pilot's cwd,
    environ and descriptors), and any readable private key; it finds none."""
    job = {"computingSite": "LAB_SITE1", "jobName": "lab-hostile", "transformation": "/bin/sh",
           "jobParameters": shlex.join(["-c", HOSTILE])}  # fmt: skip
    (pid,) = server.submit([job])
    assert server.wait_for([pid], "finished", 420) == ["finished"], pilot_trail()
    output = "\n".join(r["message"] for r in job_records(pid, tmp_path))
    assert "\nHOSTILE DONE" in output, output
    assert not re.search(r"^FOUND: ", output, re.M), output


def test_pilots_finish_jobs_of_both_queues_and_log_their_payload(converged, server, tmp_path):
    assert placement() == {"LAB_SITE1": "submit1", "LAB_SITE2": "submit2", "LAB_HAND": "submit1"}
    ids = run_jobs(server, list(QUEUES))
    records = job_records(ids[1], tmp_path)  # the operators read every job's records
    assert any("payload on site2" in r["message"] for r in records), records


@pytest.mark.parametrize("name", SUBMIT_HOSTS)
def test_pilots_are_nonessential_grid_jobs_with_a_log_per_site(converged, name):
    host = lab_host(name)
    assert host.service("panda-autopilot").is_running
    assert run_ok(host, "ps -o user= -C python3").split().count("panda") >= 1
    pem = host.file("/var/lib/panda/autopilot/credential/pilot.pem")
    assert pem.user == "panda" and pem.mode == 0o600
    out = run_ok(host, "condor_history -limit 20 -af Nonessential PandaQueue")
    assert out.strip() and all(line.split()[0] == "true" for line in out.splitlines()), out
    logs = run_ok(host, "ls /var/log/condor").split()
    for queue, site in QUEUES.items():
        if placement()[queue] == name:
            assert any(n.startswith("GridmanagerLog.panda.") and site in n for n in logs), logs


def reported_counts() -> set[tuple[str, ...]]:
    """(queue, submit host) of the factories' reports of the last two minutes."""
    rows = run_ok(
        lab_host("db1"),
        "mariadb -N -B -e 'SELECT queue, submit_host FROM panda.pilot_stats"
        " WHERE cycle_at > UTC_TIMESTAMP() - INTERVAL 2 MINUTE'",
    )
    return {tuple(line.split("\t")) for line in rows.splitlines()}


def test_factories_report_their_counts(converged):
    reported = reported_counts()
    assert set(placement().items()) <= reported, reported


def queues_with(moves: dict[str, str]) -> str:
    """The inventory's facility_queues with some queues placed on other submit hosts."""
    inventory = subprocess.run(["ansible-inventory", "-i", str(INVENTORY), "--host", "submit1"],
                               capture_output=True, text=True, check=True)  # fmt: skip
    queues = json.loads(inventory.stdout)["facility_queues"]
    for queue in queues:
        queue["submit_host"] = moves.get(queue["name"], queue["submit_host"])
    return json.dumps({"facility_queues": queues})


def test_a_queue_moves_to_the_other_submit_host_and_back(converged, server):
    moves = queues_with({"LAB_SITE2": "submit1"})
    moved = run_site(INVENTORY, "--limit", "submit_hosts", "--tags", "autopilot",
                     "-e", moves, log=LOGS / "move.log")  # fmt: skip
    try:
        assert moved.returncode == 0, moved.failures()
        assert placement()["LAB_SITE2"] == "submit1"
        server.conn.close()  # idle through the site run: start on a fresh connection
        run_jobs(server, ["LAB_SITE2"])  # by whichever pilot reaches it first
        # submit1's factory now sends LAB_SITE2's pilots (within a cycle or two).
        host, pilots = lab_host("submit1"), ""
        for _ in range(30):  # bounded: 90 s
            pilots = run_ok(host, "condor_q -allusers -af PandaQueue; "
                                  "condor_history -limit 50 -af PandaQueue")  # fmt: skip
            if "LAB_SITE2" in pilots.split():
                break
            time.sleep(3)
        assert "LAB_SITE2" in pilots.split(), pilots
        # It reports the queue's counts, and Condor-G keeps a log for the site there.
        assert ("LAB_SITE2", "submit1") in reported_counts()
        logs = run_ok(host, "ls /var/log/condor").split()
        assert any(n.startswith("GridmanagerLog.panda.") and QUEUES["LAB_SITE2"] in n
                   for n in logs), logs  # fmt: skip
    finally:
        back = run_site(INVENTORY, "--limit", "submit_hosts", "--tags", "autopilot",
                        log=LOGS / "move-back.log")  # fmt: skip
    assert back.returncode == 0, back.failures()
    assert placement()["LAB_SITE2"] == "submit2"


# What an operator looks at first when pilots take no jobs. At a submit host: the
# factory's last cycle and words, the pilots in its queue (held ones with their reason),
# and the newest pilot's own output.
TRAIL = r"""
tr -d ' \n' < /var/lib/panda/autopilot/status.json | head -c 600; echo
journalctl -u panda-autopilot -n 200 --no-pager -o cat | grep -v '^{"at"' | tail -n 3
condor_q -allusers -af PandaQueue JobStatus HoldReason | sort | uniq -c | head -n 5
out=$(ls -t /var/lib/panda/autopilot/logs/*/*.out 2>/dev/null | head -n 1)
[ -n "$out" ] && echo "$out:" && tail -n 4 "$out" "${out%.out}.err"
"""


# At a site: its pilots by state, and how long each running one has been at it.
SITE_TRAIL = r"""
condor_q -allusers -af JobStatus | sort | uniq -c
ps -eo etimes=,args= | grep '[p]ilot[.]py' | cut -c 1-160 | head -n 4
"""


# At the load balancer: VRRP state changes, and requests that did not end normally.
LB_TRAIL = r"""
journalctl -u keepalived --since -15min -o cat --no-pager | grep -i 'state' | tail -n 4
journalctl -t haproxy --since -15min -o cat --no-pager | grep '"' | grep -v ' ---- ' | tail -n 6
"""


def pilot_trail() -> str:
    parts = []
    hosts = (("submit1", TRAIL), ("submit2", TRAIL), ("site1", SITE_TRAIL), ("lb1", LB_TRAIL))
    for host, trail in hosts:
        proc = exec_in(host, "sh", "-c", trail)
        parts.append(f"--- {host}\n{(proc.stdout + proc.stderr).strip()[:1500]}")
    return "\n".join(parts)
