"""The fault audit's load and its accounting, shared by the lab test and the benchmark.

A bounded load goes through the pandaserver VIP the way the facility's clients send
it: submitters (a user's certificate) submit jobs one at a time, runners (the pilots'
certificate) acquire them, report running with heartbeats and end them finished. Each
call is tried as pilots and clients try: a fresh TLS connection per try, and a
connection error, a timeout or a 5xx is tried again after a backoff (0.25 s doubling to
4 s) for ``patience`` seconds. Each call is counted in the fault (phase) it started in.

The audit then reads the job tables on the database primary and sets them beside what
the clients saw: jobs acknowledged but missing, dispatched twice in one attempt (two
runners handed the same job and attempt, or two 'sent' in one attempt of the state
log), executed twice (run by two runners, or 'running' in two attempts), and the calls
that failed after their retries."""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
import ssl
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pandafacility.jobspec import JOB_ATTRIBUTES

RETRYABLE = frozenset({500, 502, 503, 504})


@dataclasses.dataclass
class Call:
    phase: str
    what: str
    tries: list[int | str]  # each try's HTTP status, or the exception's class name
    ok: bool
    seconds: float  # from the first try to the answer, retries included


class Record:
    """What the clients saw, from every thread: calls, acknowledged jobs, dispatches
    (job, attempt) to runners, and the jobs each runner executed."""

    def __init__(self) -> None:
        self.phase = "warm-up"
        self.aborted = threading.Event()  # the run failed: calls stop retrying
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.acknowledged: list[int] = []
        self.dispatches: list[tuple[int, int, str]] = []
        self.executions: list[tuple[int, int, str]] = []
        self.lost: list[tuple[int, int, str]] = []  # runners told their job is not theirs

    def add(self, name: str, item: object) -> None:
        with self.lock:
            getattr(self, name).append(item)


class Client:
    """One identity's calls to the VIP at ``address``, its certificate verified for
    ``name``."""

    def __init__(
        self,
        address: str,
        name: str,
        port: int,
        context: ssl.SSLContext,
        record: Record,
        patience: float,
        timeout: float = 20.0,
        connect_timeout: float = 3.0,
    ) -> None:
        self.address, self.name, self.port, self.context = address, name, port, context
        self.record, self.patience, self.timeout = record, patience, timeout
        self.connect_timeout = connect_timeout

    def _once(self, path: str, body: dict) -> tuple[int, bytes]:
        sock = socket.create_connection((self.address, self.port), self.connect_timeout)
        sock.settimeout(self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = http.client.HTTPSConnection(self.name, self.port, timeout=self.timeout)
        try:
            conn.sock = self.context.wrap_socket(sock, server_hostname=self.name)
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            answer = conn.getresponse()
            return answer.status, answer.read()
        finally:
            conn.close()
            sock.close()

    def call(self, what: str, path: str, body: dict) -> dict | None:
        """The answer, or None once the call failed for good (after its retries, or
        at once for an answer that is no server fault)."""
        phase, tries, start = self.record.phase, [], time.monotonic()
        deadline, delay = start + self.patience, 0.25

        def done(ok: bool) -> None:
            self.record.add("calls", Call(phase, what, tries, ok, time.monotonic() - start))

        while True:
            try:
                status, data = self._once(path, body)
            except (OSError, http.client.HTTPException) as exc:
                status, data = type(exc).__name__, b""
            tries.append(status)
            if status == 200:
                try:
                    answer = json.loads(data)
                except ValueError:  # answered, but not in JSON: not tried again
                    tries[-1] = "not JSON"
                    done(False)
                    return None
                done(True)
                return answer
            retryable = not isinstance(status, int) or status in RETRYABLE
            late = time.monotonic() + delay > deadline or self.record.aborted.is_set()
            if not retryable or late:
                done(False)
                return None
            time.sleep(delay)
            delay = min(delay * 2, 4.0)


@dataclasses.dataclass
class LoadConfig:
    queue: str
    submitters: int = 2
    submit_interval: float = 1.0  # per submitter, between one answer and the next submit
    runners: int = 6  # more than the submitters feed, so that no backlog grows
    work: float = 2.0  # seconds a runner holds a job, heartbeating
    heartbeat: float = 1.0


class Load:
    """Submitters and runners on threads until stopped: submitters first (stop_submits),
    then runners once nothing acknowledged is left to run (stop)."""

    def __init__(self, config: LoadConfig, user: Client, pilot: Client) -> None:
        self.config, self.user, self.pilot = config, user, pilot
        self.record = user.record
        self.submitting, self.running = threading.Event(), threading.Event()
        self.threads = [
            threading.Thread(target=self._submitter, args=(n,), daemon=True)
            for n in range(config.submitters)
        ] + [
            threading.Thread(target=self._runner, args=(n,), daemon=True)
            for n in range(config.runners)
        ]

    def start(self) -> None:
        self.submitting.set()
        self.running.set()
        for thread in self.threads:
            thread.start()

    def stop_submits(self, timeout: float = 600) -> None:
        """Stop the submitters; returns once the last submit is answered."""
        self.submitting.clear()
        deadline = time.monotonic() + timeout
        for thread in self.threads[: self.config.submitters]:
            thread.join(max(0.0, deadline - time.monotonic()))

    def stop(self, timeout: float = 600) -> None:
        self.submitting.clear()
        self.running.clear()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _submitter(self, n: int) -> None:
        count = 0
        while self.submitting.is_set():
            count += 1
            job = {"computingSite": self.config.queue, "jobName": f"audit-{n}-{count}",
                   "transformation": "/bin/true", "prodSourceLabel": "user"}  # fmt: skip
            row = [job.get(a, "NULL") for a in JOB_ATTRIBUTES] + [[]]
            answer = self.user.call("submit", "/api/v1/job/submit", {"jobs": json.dumps([row])})
            if answer and answer.get("success"):
                for pid, *_ in answer["data"]:
                    self.record.add("acknowledged", int(pid))
            time.sleep(self.config.submit_interval)

    def _runner(self, n: int) -> None:
        worker = f"audit-runner-{n}"
        body = {"site_name": self.config.queue, "n_jobs": 1, "worker_id": worker,
                "node": f"audit-node-{n}"}  # fmt: skip
        while self.running.is_set():
            answer = self.pilot.call("acquire", "/api/v1/pilot/acquire_jobs", body)
            jobs = ((answer or {}).get("data") or {}).get("jobs") or []
            if not jobs:
                time.sleep(0.5)
            for job in jobs:
                self._run(worker, int(job["PandaID"]), int(job["attemptNr"]))

    def _update(self, pid: int, attempt: int, state: str) -> str | None:
        """The server's command for the job, or None when the call failed for good."""
        body = {"job_id": pid, "job_status": state, "attempt_nr": attempt}
        answer = self.pilot.call(f"update {state}", "/api/v1/pilot/update_job", body)
        return None if answer is None else str(answer.get("command"))

    def _run(self, worker: str, pid: int, attempt: int) -> None:
        self.record.add("dispatches", (pid, attempt, worker))
        command = self._update(pid, attempt, "running")
        if command == "tobekilled":
            self.record.add("lost", (pid, attempt, worker))
            return
        self.record.add("executions", (pid, attempt, worker))
        end = time.monotonic() + self.config.work
        while time.monotonic() < end:
            time.sleep(self.config.heartbeat)
            if self._update(pid, attempt, "running") == "tobekilled":
                self.record.add("lost", (pid, attempt, worker))
                return
        if self._update(pid, attempt, "finished") == "tobekilled":
            self.record.add("lost", (pid, attempt, worker))


# --- The audit ---------------------------------------------------------------------------

Sql = Callable[[str], list[list[str]]]  # a query on the primary: its rows, as text


@dataclasses.dataclass
class Audit:
    acknowledged: int
    missing: list[int]
    dispatched_twice: list[int]  # in one attempt
    executed_twice: list[int]
    not_finished: dict[int, str]  # acknowledged jobs that did not end finished: their state
    lost: int  # runners told their job was not theirs (the reaper gave it to another)
    per_phase: dict[str, dict[str, int]]  # calls, retried, failed, longest, the 5xx seen
    failures: list[Call]

    @property
    def failed(self) -> int:
        return len(self.failures)


def state_log(sql: Sql, ids: Iterable[int]) -> dict[int, list[str]]:
    """Each job's states in the order the server logged them."""
    log: dict[int, list[str]] = defaultdict(list)
    ids = sorted(set(ids))
    for start in range(0, len(ids), 500):
        chunk = ",".join(str(i) for i in ids[start : start + 500])
        for pid, state in sql(
            f"SELECT panda_id, job_status FROM job_states WHERE panda_id IN ({chunk}) ORDER BY id"
        ):
            log[int(pid)].append(state)
    return log


def audit(record: Record, sql: Sql) -> Audit:
    acked = sorted(set(record.acknowledged))
    found: dict[int, str] = {}
    for start in range(0, len(acked), 500):
        chunk = ",".join(str(i) for i in acked[start : start + 500])
        for pid, state in sql(f"SELECT panda_id, job_status FROM jobs WHERE panda_id IN ({chunk})"):
            found[int(pid)] = state
    # Every job a runner was handed too: a submission whose answer was lost and that the
    # client sent again is run as well, without an acknowledgement.
    log = state_log(sql, {*acked, *(pid for pid, _, _ in record.dispatches)})

    twice_in_attempt = {
        pid for (pid, _), n in Counter((p, a) for p, a, _ in record.dispatches).items() if n > 1
    }
    runners = defaultdict(set)
    for pid, _, worker in record.executions:
        runners[pid].add(worker)
    executed_twice = {pid for pid, who in runners.items() if len(who) > 1}
    for pid, states in log.items():
        attempts = split_attempts(states)
        if any(a.count("sent") > 1 for a in attempts):
            twice_in_attempt.add(pid)
        if sum("running" in a for a in attempts) > 1:
            executed_twice.add(pid)

    per_phase: dict[str, Counter] = defaultdict(Counter)
    for call in record.calls:
        counts = per_phase[call.phase]
        counts["calls"] += 1
        counts["retried"] += len(call.tries) > 1
        counts["failed"] += not call.ok
        counts["longest"] = max(counts["longest"], round(call.seconds))
        for status in call.tries:
            if isinstance(status, int) and status >= 500:
                counts[str(status)] += 1
            elif not isinstance(status, int):
                counts["no answer"] += 1
    return Audit(
        acknowledged=len(acked),
        missing=[pid for pid in acked if pid not in found],
        dispatched_twice=sorted(twice_in_attempt),
        executed_twice=sorted(executed_twice),
        not_finished={pid: s for pid, s in found.items() if s != "finished"},
        lost=len(record.lost),
        per_phase={phase: dict(c) for phase, c in per_phase.items()},
        failures=[c for c in record.calls if not c.ok],
    )


def split_attempts(states: list[str]) -> list[list[str]]:
    """A job's state log cut at each 'activated' (its submission, and each time the
    reaper gave it another attempt)."""
    attempts: list[list[str]] = []
    for state in states:
        if state == "activated" or not attempts:
            attempts.append([])
        attempts[-1].append(state)
    return attempts


COLUMNS = ("calls", "retried", "failed", "longest")


def table(result: Audit, phases: list[str]) -> str:
    """The audit as the benchmark prints it and the test shows it on failure."""
    lines = [
        f"jobs acknowledged {result.acknowledged}: missing {len(result.missing)}, "
        f"dispatched twice in one attempt {len(result.dispatched_twice)}, "
        f"executed twice {len(result.executed_twice)}, not finished {len(result.not_finished)}, "
        f"runners told their job was not theirs {result.lost}",
        f"{'fault':<34}{'calls':>7}{'retried':>9}{'failed':>8}{'longest s':>10}"
        "  errors seen (before retries)",
    ]
    for phase in phases:
        c = result.per_phase.get(phase, {})
        seen = ", ".join(f"{k} x{v}" for k, v in sorted(c.items())
                         if k not in COLUMNS) or "-"  # fmt: skip
        figures = "".join(
            f"{c.get(k, 0):>{w}}" for k, w in zip(COLUMNS, (7, 9, 8, 10), strict=True)
        )
        lines.append(f"{phase:<34}{figures}  {seen}")
    return "\n".join(lines)
