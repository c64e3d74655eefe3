"""The pilot: runs on a worker node of a grid site, takes jobs of its queue from the
PanDA server and runs them, one after another, until none is waiting.

    python3 pilot.py --server https://pandaserver.example.org:25443 --queue BNL_ATLAS_1 \\
        [--logger https://pandalog.example.org:8443] [--max-jobs 10]

For each job: "starting", then "running" with a heartbeat while the payload (the job's
transformation with its parameters) runs under a time limit, then "finished" or
"failed" with the exit code; its output and the pilot's own messages go to the logger,
tied to the PandaID. Standard library only: the pilot code is downloaded at each
start (through the pilot cache) and must run on whatever Python the worker node has.
The client certificate comes from X509_USER_PROXY (cert and key in one file), the CA
from --ca or X509_CERT_DIR.

A payload is hostile code that runs as the pilot's user. It gets a clean environment
(no credential variable), no descriptor of the pilot's, and, where bubblewrap (bwrap)
is installed, a view of the file system without the pilots' sandboxes, the batch
system's spool, the credential's directory, the user's home and the shared temporary
directories (its own work directory bound back), read-only elsewhere, in a PID
namespace of its own. The pilot itself is not dumpable, so /proc/<pilot>/cwd, environ,
fd and mem are not the payload's to read.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

LOG_TAIL = 4000  # characters of the payload's output sent to the logger
RETRY_STATUS = (502, 503, 504)  # a busy or unreachable server behind the load balancer


@dataclass(frozen=True)
class PilotConfig:
    server: str
    queue: str
    logger: str = ""
    max_jobs: int = 10
    heartbeat: float = 300.0
    max_walltime: float = 0.0  # 0: the queue's maxtime, else 2 days
    timeout: float = 30.0
    # Pauses before a state update is sent again after a dropped connection or a busy
    # server (502-504): a lost final update would leave a finished job running.
    update_pauses: tuple[float, ...] = (2.0, 10.0)
    cert: str = ""
    ca: str = ""
    node: str = socket.getfqdn()
    worker_id: str = os.environ.get("CONDOR_JOBID", "") or str(os.getpid())


class Pilot:
    def __init__(self, config: PilotConfig) -> None:
        self.config = config
        # The attempt each job was dispatched for: every update names it, and the
        # server refuses (tobekilled) one for an attempt that is no longer the job's.
        self.attempts: dict[int, int] = {}
        self.context = ssl.create_default_context(
            cafile=config.ca or None, capath=os.environ.get("X509_CERT_DIR") or None
        )
        if config.cert:
            self.context.load_cert_chain(config.cert)

    # -- talking to the services -------------------------------------------------------
    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.config.server}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(
            request, timeout=self.config.timeout, context=self.context
        ) as answer:
            return json.load(answer)

    def queue_data(self) -> dict[str, Any]:
        url = f"{self.config.server}/cache/schedconfig/{self.config.queue}.all.json"
        try:
            with urllib.request.urlopen(
                url, timeout=self.config.timeout, context=self.context
            ) as answer:
                return json.load(answer)
        except (OSError, ValueError):
            return {}

    def log(self, panda_id: int, level: str, message: str) -> None:
        """One record to the logger; a logger that is down costs the job nothing."""
        if not self.config.logger:
            return
        record = {
            "PandaID": panda_id,
            "name": "pilot",
            "levelname": level,
            "message": message,
            "created": time.time(),
        }
        body = [{"headers": {"host": self.config.node}, "body": json.dumps(record)}]
        request = urllib.request.Request(
            f"{self.config.logger}/logger/logger/query",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context):
                pass
        except OSError as exc:
            print(f"pilot: logger unreachable: {exc}", file=sys.stderr)

    def report(self, panda_id: int, state: str, **extra: Any) -> str:
        """A job's state to the server; the server's command back ("tobekilled")."""
        body = {"job_id": panda_id, "job_status": state, "node": self.config.node, **extra}
        if panda_id in self.attempts:
            body["attempt_nr"] = self.attempts[panda_id]
        answer = self.update(body)
        if not answer.get("success"):
            raise RuntimeError(f"update of job {panda_id} to {state}: {answer.get('message')}")
        return str(answer.get("command") or "NULL")

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        """A state update, sent again after each pause of ``update_pauses`` while the
        connection drops or the server is busy. An update only sets a state, so a second
        copy does no harm; taking a job is never repeated (a lost answer may have
        dispatched one already)."""
        pauses = list(self.config.update_pauses)
        while True:
            try:
                return self.call("/api/v1/pilot/update_job", body)
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_STATUS or not pauses:
                    raise
                reason = f"HTTP {exc.code}"
            except OSError as exc:
                if not pauses:
                    raise
                reason = str(exc)
            pause = pauses.pop(0)
            print(
                f"pilot: job {body['job_id']} update again in {pause:.0f} s: {reason}",
                file=sys.stderr,
            )
            time.sleep(pause)

    def acquire(self) -> dict[str, Any] | None:
        answer = self.call(
            "/api/v1/pilot/acquire_jobs",
            {
                "site_name": self.config.queue,
                "n_jobs": 1,
                "node": self.config.node,
                "worker_id": self.config.worker_id,
            },
        )
        jobs = (answer.get("data") or {}).get("jobs") or [] if answer.get("success") else []
        return jobs[0] if jobs else None

    # -- running a job -----------------------------------------------------------------
    def hidden(self) -> list[str]:
        """What a payload must not see: every pilot sandbox beside this one, the batch
        system's spool and state (Condor-C keeps the pilots' input files, the proxy with
        them, in the site schedd's spool), the credential's directory, the home
        directory, the shared temporary directories."""
        paths = [os.path.dirname(os.getcwd()), os.path.expanduser("~"), "/tmp", "/var/tmp",
                 "/var/spool", "/var/lib/condor"]  # fmt: skip
        if self.config.cert:
            paths.append(os.path.dirname(os.path.abspath(self.config.cert)))
        return sorted({p for p in paths if p and p != "/" and os.path.isdir(p)})

    def run_job(self, job: dict[str, Any], limit: float) -> str:
        panda_id = int(job["PandaID"])
        self.attempts[panda_id] = int(job.get("attemptNr") or 1)
        self.report(panda_id, "starting")
        command = [job["transformation"], *shlex.split(job.get("jobPars") or "")]
        self.log(panda_id, "INFO", f"running {shlex.join(command)} for at most {limit:.0f} s")
        killed = threading.Event()
        with tempfile.TemporaryDirectory(prefix=f"panda-{panda_id}-") as work:
            argv, env = isolated(command, work, self.hidden(), panda_id)
            if argv == command:
                self.log(panda_id, "WARNING", "no bwrap here: the payload sees the file system")
            try:
                process = subprocess.Popen(
                    argv,
                    cwd=work,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
                )
            except OSError as exc:
                self.log(panda_id, "ERROR", f"cannot start the payload: {exc}")
                self.report(panda_id, "failed", pilot_error_code=1, pilot_error_diag=str(exc))
                return "failed"
            self.report(panda_id, "running")
            beat = threading.Thread(
                target=self._heartbeat, args=(panda_id, process, killed), daemon=True
            )
            beat.start()
            try:
                output, _ = process.communicate(timeout=limit)
                timed_out = False
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
                timed_out = True
            beat.join(timeout=1)
        code = process.returncode
        self.log(panda_id, "INFO", f"payload output (tail):\n{output[-LOG_TAIL:]}")
        if killed.is_set():
            self.log(panda_id, "WARNING", "killed on the server's command")
            return "cancelled"
        if timed_out:
            diag = f"payload ran over its limit of {limit:.0f} s"
            self.log(panda_id, "ERROR", diag)
            self.report(panda_id, "failed", pilot_error_code=2, pilot_error_diag=diag)
            return "failed"
        state = "finished" if code == 0 else "failed"
        self.log(panda_id, "INFO" if code == 0 else "ERROR", f"payload exited {code}")
        self.report(panda_id, state, trans_exit_code=code)
        return state

    def _heartbeat(self, panda_id: int, process: subprocess.Popen, killed: threading.Event) -> None:
        while process.poll() is None:
            try:
                process.wait(timeout=self.config.heartbeat)
                return
            except subprocess.TimeoutExpired:
                pass
            try:
                if self.report(panda_id, "running") == "tobekilled":
                    killed.set()
                    process.kill()
                    return
            except (OSError, RuntimeError, ValueError) as exc:
                print(f"pilot: heartbeat of job {panda_id} failed: {exc}", file=sys.stderr)

    def run(self) -> dict[str, int]:
        """Jobs until none waits or --max-jobs; the count of each outcome."""
        queue = self.queue_data()
        limit = self.config.max_walltime or float(queue.get("maxtime") or 0) or 172800.0
        outcomes: dict[str, int] = {}
        for _ in range(self.config.max_jobs):
            job = self.acquire()
            if job is None:
                break
            state = self.run_job(job, float(job.get("maxWalltime") or 0) or limit)
            outcomes[state] = outcomes.get(state, 0) + 1
        return outcomes


def no_dump() -> None:
    """This process becomes non-dumpable: its /proc entries (cwd, environ, fd, mem)
    belong to root, out of reach of a payload of the same user."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0


_PROC: list[bool | None] = []  # bwrap here: with a /proc of its own, without, unusable


def isolated(
    command: list[str], work: str, hide: list[str], panda_id: int
) -> tuple[list[str], dict[str, str]]:
    """The payload's command line and environment: inside bubblewrap when it is here."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": work,
           "LANG": "C.UTF-8", "PANDA_ID": str(panda_id)}  # fmt: skip
    bwrap = shutil.which("bwrap")
    base = [bwrap or "bwrap", "--unshare-pid", "--unshare-ipc", "--die-with-parent",
            "--new-session", "--ro-bind", "/", "/", "--dev", "/dev"]  # fmt: skip
    if bwrap and not _PROC:  # asked once: a container may refuse a new /proc (/proc is
        # then the host's view), a host without user namespaces bwrap altogether
        for extra, verdict in ((["--proc", "/proc"], True), ([], False)):
            if subprocess.run([*base, *extra, "true"], capture_output=True).returncode == 0:
                _PROC.append(verdict)
                break
        else:
            _PROC.append(None)
    if not bwrap or _PROC[0] is None:
        return command, env
    argv = [*base, *(["--proc", "/proc"] if _PROC[0] else [])]
    for path in [*hide, "/dev/shm"]:
        argv += ["--tmpfs", path]
    argv += ["--bind", work, work, "--chdir", work, "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return [*argv, "--", *command], env


def main(argv: list[str] | None = None) -> int:
    no_dump()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True, help="https://host:port of the server")
    parser.add_argument("--queue", required=True, help="the PanDA queue this pilot serves")
    parser.add_argument("--logger", default="", help="https://host:port of the logger")
    parser.add_argument("--max-jobs", type=int, default=10, help="jobs in one pilot life")
    parser.add_argument("--heartbeat", type=float, default=300.0, help="seconds between")
    parser.add_argument("--max-walltime", type=float, default=0.0, help="payload limit, s")
    parser.add_argument("--ca", default=os.environ.get("PANDA_CA_FILE", ""), help="CA file")
    parser.add_argument(
        "--cert", default=os.environ.get("X509_USER_PROXY", ""), help="cert and key, one PEM"
    )
    args = parser.parse_args(argv)
    if args.max_jobs < 1 or args.heartbeat <= 0 or args.max_walltime < 0:
        parser.error("--max-jobs must be at least 1, --heartbeat and --max-walltime positive")
    config = PilotConfig(
        server=args.server.rstrip("/"),
        queue=args.queue,
        logger=args.logger.rstrip("/"),
        max_jobs=args.max_jobs,
        heartbeat=args.heartbeat,
        max_walltime=args.max_walltime,
        cert=args.cert,
        ca=args.ca,
    )
    try:
        outcomes = Pilot(config).run()
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"pilot: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"queue": config.queue, "jobs": outcomes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
