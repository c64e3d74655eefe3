"""The fault audit on the lab: faultaudit's load through the pandaserver VIP while the
faults of a plan happen one after the other, each with load running before and after.

    restart    the database primary restarted (systemctl restart mariadb)
    pause      the primary frozen (docker pause) for Timing.pause seconds
    kill-wsgi  kill -9 of srv1's mod_wsgi daemons mid-dispatch (the primary held 1.5 s
               first, so that requests are in them waiting on the database)
    kill-lb    the VIP holder's container killed outright; started again afterwards
    cut-lb     both load balancers drop everything sent to the VIP for Timing.cut seconds
               (longer than the reaper's silent period), while the reaper runs every 2 s
               with that period: no heartbeat reaches any server, and it re-dispatches
               nothing
    promote    the primary killed outright, db-promote.yml makes db2 the primary, the
               inventory is edited as it says and site.yml is run, as it suggests, on
               what restores the service first: the servers and monitors (which name
               the primary) and the new primary

A probe opens a fresh TLS connection to the VIP every 20 ms (0.25 s timeout), so the
failover gap is the VIP's, not a client timer's. After the plan the submitters stop,
the reaper runs with a short silent period while the runners are still taking jobs (a
job whose acquire was answered to nobody goes to another attempt), then the runners
stop and the job tables are audited on the primary."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "lab"))

import faultaudit
import testpki
from labhosts import (
    ADDRESSES,
    CA_CERT,
    CA_KEY,
    DOMAIN,
    HAND_QUEUE,
    INVENTORY,
    PILOT_DN,
    SERVER_VIP,
    SERVERS,
)
from sitecheck import ROOT, run_site

VIP, VIP_NAME, PORT = SERVER_VIP, f"pandaserver.{DOMAIN}", 25443
LBS = ["lb1", "lb2"]
USER_DN = "/DC=test/DC=panda/CN=Audit User"
QUEUE = HAND_QUEUE  # the lab's queue without pilots of its own
RESTORE = "panda_servers:panda_monitors:db_primary"  # site.yml's --limit after a promotion
SERVER_CONFIG = "/etc/panda-facility/server.json"
LIB = "/opt/panda-facility/lib"  # facility_python_lib_dir
PLAN = ["restart", "pause", "kill-wsgi", "kill-lb", "cut-lb", "promote"]
LABELS = {
    "restart": "primary restarted",
    "pause": "primary paused",
    "kill-wsgi": "mod_wsgi kill -9 on srv1",
    "kill-lb": "VIP holder killed",
    "cut-lb": "load balancers cut",
    "promote": "primary killed, db2 promoted",
    "reclaim": "(after: reaper reclaims)",
}


@dataclasses.dataclass
class Timing:
    settle: float = 8.0  # load before and after each fault
    pause: float = 20.0
    cut: float = 25.0
    silent: int = 15  # the reaper's, while the load balancers are cut and after
    outage_gap: int = 6
    patience: float = 600.0  # the clients' retries: longer than a promotion


def docker(*args: str, check: bool = True, timeout: float = 300) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return proc.stdout


def sh(host: str, script: str, check: bool = True) -> str:
    return docker("exec", f"lab-{host}", "sh", "-c", script, check=check)


def mysql(host: str) -> faultaudit.Sql:
    def query(statement: str) -> list[list[str]]:
        out = docker("exec", f"lab-{host}", "mariadb", "-N", "-B", "-e", statement, "panda")
        return [line.split("\t") for line in out.splitlines() if line]

    return query


@contextlib.contextmanager
def paused(host: str) -> Iterator[None]:
    """The host's container frozen (docker pause) for the block."""
    docker("pause", f"lab-{host}")
    try:
        yield
    finally:
        docker("unpause", f"lab-{host}")


def holder() -> str | None:
    for name in LBS:
        if VIP in sh(name, "ip -4 -o addr show", check=False):
            return name
    return None


def wait(what: str, ready: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(1)


class Probe:
    """isAlive at the VIP on a fresh connection every ``interval``: the times answered."""

    def __init__(self, context: ssl.SSLContext, interval: float = 0.02) -> None:
        self.context, self.interval = context, interval
        self.answered: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        request = f"GET /server/panda/isAlive HTTP/1.1\r\nHost: {VIP_NAME}\r\n\r\n".encode()
        while not self._stop.is_set():
            try:
                with (
                    socket.create_connection((VIP, PORT), 0.25) as raw,
                    self.context.wrap_socket(raw, server_hostname=VIP_NAME) as tls,
                ):
                    tls.sendall(request)
                    if tls.recv(64).startswith(b"HTTP/1.1 200"):
                        self.answered.append(time.monotonic())
            except OSError:
                pass
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def gap(self, start: float, end: float) -> float:
        """The longest time without an answer between ``start`` and ``end``."""
        times = [start] + [t for t in self.answered if start <= t <= end] + [end]
        return round(max(b - a for a, b in itertools.pairwise(times)), 2)


class Reaper:
    """The facility's reaper (pandafacility.jobs.reap, as the role's timer runs it) on
    srv1 as the service user every ``every`` seconds, with a short silent period: the
    audit's time scale, which its command line refuses (at least 60 s). Each pass's
    outcome is kept."""

    def __init__(self, silent: int, outage_gap: int, every: float = 2.0) -> None:
        code = (
            "import json; from pathlib import Path; from pandafacility.db import DbSettings,"
            " connect; from pandafacility.jobs import reap;"
            f" s = json.loads(Path('{SERVER_CONFIG}').read_text())['database'];"
            f" print(json.dumps(reap(connect(DbSettings.from_dict(s)), {silent}, {outage_gap})))"
        )
        self.cmd = f'runuser -u panda -- env PYTHONPATH={LIB} python3 -c "{code}"'
        self.every, self.passes, self.errors = every, 0, []
        self.reaped: dict[str, list[int]] = {"activated": [], "failed": []}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = sh("srv1", self.cmd).strip().splitlines()
                for key, ids in json.loads(out[-1]).items():
                    self.reaped[key] += ids
                self.passes += 1
            except (RuntimeError, ValueError, IndexError) as exc:
                self.errors.append(str(exc))
            self._stop.wait(self.every)

    def __enter__(self) -> Reaper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        assert self.passes > 0 and not self.errors, f"the reaper failed: {self.errors}"


# A runtime rule in the firewall policy that admits the VIPs' clients (the firewall
# role's, for the loadbalancer tier): gone with a reload or a reboot.
CUT = (
    "firewall-cmd -q --policy panda-loadbalancer"
    f" --%s-rich-rule='rule family=ipv4 destination address={VIP} drop'"
)


def promoted_inventory(tmp: Path) -> Path:
    """The lab inventory as db-promote.yml says to edit it: db2 the only primary, db1
    gone (it is rebuilt from a backup before it rejoins)."""
    inventory = tmp / "promoted"
    shutil.copytree(INVENTORY, inventory)
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    databases = hosts["all"]["children"]["databases"]["children"]
    databases["db_primary"]["hosts"] = {"db2": databases["db_replicas"]["hosts"]["db2"]}
    databases["db_replicas"]["hosts"] = {}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    return inventory


def unfinished(sql: faultaudit.Sql, record: faultaudit.Record) -> int:
    ids = ",".join(str(i) for i in set(record.acknowledged)) or "0"
    return int(sql(f"SELECT COUNT(*) FROM jobs WHERE panda_id IN ({ids})"
                   " AND job_status <> 'finished'")[0][0])  # fmt: skip


@dataclasses.dataclass
class Outcome:
    audit: faultaudit.Audit
    gaps: dict[str, float]  # per fault, the probe's longest time without an answer
    # What the reaper took back while the load balancers were cut, in every queue: a
    # runner's job among them shows as Audit.lost (the runner is told tobekilled).
    reaped: dict[str, list[int]]
    seconds: dict[str, float]  # per fault, from its start to the end of its settling

    def table(self, plan: list[str]) -> str:
        phases = [LABELS[p] for p in plan] + [LABELS["reclaim"]]
        lines = [faultaudit.table(self.audit, ["warm-up", *phases])]
        lines.append(f"{'fault':<34}{'VIP gap s':>10}{'seconds':>9}")
        for p in plan:
            lines.append(f"{LABELS[p]:<34}{self.gaps.get(p, 0):>10}{self.seconds.get(p, 0):>9.0f}")
        if "kill-lb back" in self.gaps:
            lines.append(f"{'  (its return, preempting)':<34}{self.gaps['kill-lb back']:>10}")
        lines.append(f"reaped while the load balancers were cut: {self.reaped}")
        return "\n".join(lines)


def wait_ok(what: str, host: str, script: str, timeout: float = 60) -> None:
    wait(what, lambda: subprocess.run(["docker", "exec", f"lab-{host}", "sh", "-c", script],
                                      capture_output=True).returncode == 0, timeout)  # fmt: skip


def run(
    plan: list[str], timing: Timing, logs: Path, config: faultaudit.LoadConfig | None = None
) -> Outcome:
    """The plan's faults under load on the converged lab, then the audit. Leaves the
    lab as the faults did: after ``promote`` its primary is db2."""
    tmp = Path(tempfile.mkdtemp(prefix="fault-audit-"))
    ca = testpki.load_ca(CA_CERT, CA_KEY)
    contexts = {}
    for who, dn in (("user", USER_DN), ("pilot", PILOT_DN)):
        context = ssl.create_default_context(cafile=str(CA_CERT))
        context.load_cert_chain(str(testpki.user_pem(dn, ca, tmp / f"{who}.pem")))
        contexts[who] = context
    record = faultaudit.Record()
    # A try gives up within half the reaper's silent period: a call stuck on a dead
    # connection (the VIP holder killed under it) must not leave a runner silent for
    # the audit's short period, which would then reap a job the runner still holds.
    user, pilot = (faultaudit.Client(VIP, VIP_NAME, PORT, contexts[w], record, timing.patience,
                                     timeout=timing.silent / 2)
                   for w in ("user", "pilot"))  # fmt: skip
    load = faultaudit.Load(config or faultaudit.LoadConfig(QUEUE), user, pilot)
    probe = Probe(ssl.create_default_context(cafile=str(CA_CERT)))
    gaps: dict[str, float] = {}
    seconds: dict[str, float] = {}
    reaped: dict[str, list[int]] = {}
    primary = "db1"
    # The audit owns the queue: earlier tests' jobs left in it are cancelled, and the
    # servers' own reaper timers wait (a pass on their time scale between the audit's
    # passes would take its outage for a silence of minutes).
    mysql(primary)(
        f"UPDATE jobs SET job_status = 'cancelled' WHERE computing_site = '{QUEUE}'"
        " AND job_status NOT IN ('finished', 'failed', 'cancelled')"
    )
    for server in SERVERS:
        sh(server, "systemctl stop panda-reaper.timer")
    probe.start()
    load.start()
    try:
        time.sleep(timing.settle)
        for fault in plan:
            record.phase = LABELS[fault]
            start = time.monotonic()
            if fault == "restart":
                sh(primary, "systemctl restart mariadb")
            elif fault == "pause":
                with paused(primary):
                    time.sleep(timing.pause)
            elif fault == "kill-wsgi":
                # The primary held for a moment, so that requests are in the middle of
                # their dispatch on srv1 when its daemons die.
                with paused(primary):
                    time.sleep(1.5)
                    sh("srv1", "pkill -KILL -f '^[(]wsgi:pandaserver'")
            elif fault == "kill-lb":
                victim = holder()
                assert victim, "no load balancer holds the VIP"
                docker("kill", "--signal", "KILL", f"lab-{victim}")
                peer = next(name for name in LBS if name != victim)
                wait(f"{peer} holding the VIP", lambda p=peer: holder() == p, 10)
                time.sleep(timing.settle)
                gaps[fault] = probe.gap(start, time.monotonic())
                back = time.monotonic()
                docker("start", f"lab-{victim}")
                wait(f"{victim} back with the VIP", lambda v=victim: holder() == v)
                time.sleep(1)  # past the preemption's gratuitous ARP
                gaps["kill-lb back"] = probe.gap(back, time.monotonic())
            elif fault == "cut-lb":
                with Reaper(timing.silent, timing.outage_gap) as reaper:
                    for name in LBS:
                        sh(name, CUT % "add")
                    try:
                        time.sleep(timing.cut)
                    finally:
                        for name in LBS:
                            sh(name, CUT % "remove", check=False)
                    time.sleep(timing.silent + timing.settle)
                reaped = reaper.reaped
            elif fault == "promote":
                docker("kill", "--signal", "KILL", f"lab-{primary}")
                promote = run_site(INVENTORY, "-e", "mariadb_promote_host=db2",
                                   playbook=ROOT / "playbooks" / "db-promote.yml",
                                   log=logs / "promote.log")  # fmt: skip
                assert promote.returncode == 0, promote.failures()
                primary = "db2"
                wait_ok("db2 writable", primary, "mariadb -N -e 'SELECT @@read_only' | grep -qx 0")
                # What db-promote.yml says restores the service first: the servers and
                # the new primary, on the inventory edited as it says.
                site = run_site(promoted_inventory(tmp), "--limit", RESTORE,
                                log=logs / "after-promote.log")  # fmt: skip
                assert site.returncode == 0, site.failures()
                for server in SERVERS:
                    wait_ok(
                        f"{server} on db2", server, f"grep -q '{ADDRESSES['db2']}' {SERVER_CONFIG}"
                    )
            time.sleep(timing.settle)
            gaps.setdefault(fault, probe.gap(start, time.monotonic()))
            seconds[fault] = time.monotonic() - start
        record.phase = LABELS["reclaim"]
        load.stop_submits()
        sql = mysql(primary)
        with Reaper(timing.silent, timing.silent * 4):
            time.sleep(timing.silent)
            # Not raised when it times out: the audit lists the jobs left unfinished.
            with contextlib.suppress(TimeoutError):
                wait("every acknowledged job finished", lambda: unfinished(sql, record) == 0, 180)
    except BaseException:
        record.aborted.set()
        raise
    finally:
        load.stop()
        probe.stop()
        for server in SERVERS:
            sh(server, "systemctl start panda-reaper.timer", check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    return Outcome(faultaudit.audit(record, mysql(primary)), gaps, reaped, seconds)
