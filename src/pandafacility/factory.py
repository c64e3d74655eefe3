"""The pilot factory: keeps each of its queues' sites supplied with waiting pilots.

    python3 -m pandafacility.factory --config /etc/panda-facility/autopilot.json [--once]

Every cycle it asks the server how many jobs wait (activated) per queue and asks its
schedd, once, how many of its pilots are idle, running or held per queue. For each
queue it serves it aims at a number of idle pilots at the site that grows with the
waiting jobs, between the queue's min_idle (a trickle when nothing waits) and
max_idle, submits what is missing (at most max_per_cycle) with Condor-G to the site's
grid_resource as Nonessential jobs, and removes only idle surplus, never a running
pilot. It reports its counts to the server (the monitor's pilot page) and to a status
file (the probes). Queues that are not in its configuration any more get no new
pilots; the ones already sent finish on their own (moving a queue to another submit
host drains it here). SIGHUP re-reads the configuration; SIGTERM stops after the
current cycle.

Each pilot is told which pilot code to run and its SHA-256: every cycle the factory
reads the pilot cache's manifest (``<pilot_url>.sha256``, "<sha256>  <tarball>") over
HTTPS verified against the facility CA, and submits the wrapper with that tarball's
URL, its hash and the CA. The tarball is named by its hash and kept for some versions,
so a pilot that starts after a push still gets the code it was given the hash of.

Pilots never carry the long-lived credential (``cert``, certificate and key): each cycle
the factory makes sure that a proxy of it (RFC 3820, ``proxy_hours`` long, renewed once
less than ``proxy_renew_hours`` are left) lies beside it, and sends that with the
pilots. Without a current proxy it submits nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pandafacility import proxycert

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_MANIFEST = re.compile(r"^([0-9a-f]{64})\s+\*?([A-Za-z0-9._-]+\.tar\.gz)\s*$")
WRAPPER = Path(__file__).resolve().parent / "wrapper.py"


@dataclass(frozen=True)
class QueueConfig:
    name: str
    grid_resource: str
    min_idle: int = 1
    max_idle: int = 100
    jobs_per_pilot: float = 1.0
    max_per_cycle: int = 50

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"queue name {self.name!r}: letters, digits, . _ - only")
        if not self.grid_resource.startswith("condor ") or "\n" in self.grid_resource:
            raise ValueError(f"queue {self.name}: grid_resource must be 'condor <schedd> <host>'")
        if not 0 <= self.min_idle <= self.max_idle or self.max_per_cycle < 1:
            raise ValueError(
                f"queue {self.name}: need 0 <= min_idle <= max_idle and max_per_cycle >= 1"
            )
        if self.jobs_per_pilot <= 0:
            raise ValueError(f"queue {self.name}: jobs_per_pilot must be positive")


@dataclass(frozen=True)
class FactoryConfig:
    instance: str
    server: str
    pilot_url: str
    queues: tuple[QueueConfig, ...]
    ca_file: str = ""
    cert: str = ""  # the pilots' credential (cert and key), also the factory's
    logger: str = ""
    cycle_seconds: float = 60.0
    schedd_cache_seconds: float = 30.0
    held_remove_seconds: int = 1800  # Condor-G holds what it cannot submit; drop it
    work_dir: str = "/var/lib/panda/autopilot"
    pilot_args: tuple[str, ...] = ()
    proxy_hours: float = 12.0  # the pilots' proxy: its lifetime, and when it is renewed
    proxy_renew_hours: float = 6.0

    @property
    def proxy(self) -> str:
        """The pilots' proxy, beside the credential it is made from."""
        return str(Path(self.cert).with_name("proxy.pem")) if self.cert else ""

    def __post_init__(self) -> None:
        if not self.pilot_url.startswith("https://"):
            raise ValueError(f"pilot_url {self.pilot_url!r}: the pilot code comes over HTTPS")

    @classmethod
    def load(cls, path: Path) -> FactoryConfig:
        data = json.loads(path.read_text())
        queues = tuple(QueueConfig(**q) for q in data.pop("queues", []))
        names = [q.name for q in queues]
        if len(set(names)) != len(names):
            raise ValueError("a queue is listed twice")
        data["pilot_args"] = tuple(data.get("pilot_args", ()))
        return cls(queues=queues, **data)


@dataclass
class PilotCounts:
    idle: int = 0
    running: int = 0
    held: int = 0
    idle_ids: list[str] = field(default_factory=list)  # oldest first


def target_idle(queue: QueueConfig, activated: int) -> int:
    """Idle pilots to keep at the site for ``activated`` waiting jobs."""
    if activated <= 0:
        return queue.min_idle
    wanted = math.ceil(activated / queue.jobs_per_pilot)
    return max(queue.min_idle, min(queue.max_idle, wanted))


def plan(queue: QueueConfig, activated: int, counts: PilotCounts) -> tuple[int, list[str]]:
    """Pilots to submit, and idle pilots to remove (the newest, never running ones)."""
    target = target_idle(queue, activated)
    if counts.idle < target:
        return min(target - counts.idle, queue.max_per_cycle), []
    surplus = counts.idle - target
    return 0, counts.idle_ids[len(counts.idle_ids) - surplus :] if surplus else []


def parse_condor_q(output: str) -> dict[str, PilotCounts]:
    """``condor_q -af PandaQueue JobStatus ClusterId ProcId`` lines, per queue."""
    counts: dict[str, PilotCounts] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) != 4 or not parts[1].isdigit():
            continue
        queue, status, job_id = parts[0], int(parts[1]), f"{parts[2]}.{parts[3]}"
        c = counts.setdefault(queue, PilotCounts())
        if status == 1:
            c.idle += 1
            c.idle_ids.append(job_id)
        elif status == 2:
            c.running += 1
        elif status == 5:
            c.held += 1
    for c in counts.values():
        c.idle_ids.sort(key=lambda j: tuple(int(x) for x in j.split(".")))
    return counts


@dataclass(frozen=True)
class PilotCode:
    """One version of the pilot code: its tarball's URL and SHA-256."""

    url: str
    sha256: str


def parse_manifest(text: str, pilot_url: str) -> PilotCode:
    """The manifest's one line, "<sha256>  <tarball>" (sha256sum's form), as the code
    beside ``pilot_url``; anything else is refused."""
    match = _MANIFEST.match(text.strip())
    if not match:
        raise ValueError(f"{pilot_url}.sha256 is not '<sha256>  <name>.tar.gz'")
    return PilotCode(f"{pilot_url.rsplit('/', 1)[0]}/{match.group(2)}", match.group(1))


class Code:
    """The current pilot code, from the cache's manifest; the last one read when the
    cache does not answer (its tarball is kept there for some versions)."""

    def __init__(self, config: FactoryConfig) -> None:
        self.config = config
        self.context = ssl.create_default_context(cafile=config.ca_file or None)
        self.last: PilotCode | None = None

    def current(self) -> PilotCode:
        url = f"{self.config.pilot_url}.sha256"
        try:
            with urllib.request.urlopen(url, timeout=30, context=self.context) as answer:
                text = answer.read(1000).decode(errors="replace")
            self.last = parse_manifest(text, self.config.pilot_url)
        except (OSError, ValueError) as exc:
            if self.last is None:
                raise
            print(f"factory: kept pilot code {self.last.sha256}: {exc}", file=sys.stderr)
        return self.last


def submit_description(
    config: FactoryConfig, queue: QueueConfig, count: int, code: PilotCode
) -> str:
    """The Condor-G submit description of ``count`` pilots for ``queue``, which run
    ``code``."""
    logs = Path(config.work_dir) / "logs" / queue.name
    inputs = [p for p in (config.ca_file, config.proxy) if p]
    pilot = ["--server", config.server, "--queue", queue.name]
    if config.logger:
        pilot += ["--logger", config.logger]
    if config.ca_file:
        pilot += ["--ca", Path(config.ca_file).name]
    if config.proxy:
        pilot += ["--cert", Path(config.proxy).name]
    wrapper = ["--pilot-url", code.url, "--pilot-sha256", code.sha256]
    if config.ca_file:
        wrapper += ["--ca", Path(config.ca_file).name]
    arguments = [*wrapper, "--", *pilot, *config.pilot_args]
    lines = [
        "universe = grid",
        f"grid_resource = {queue.grid_resource}",
        f"executable = {WRAPPER}",
        f'arguments = "{" ".join(_condor_arg(a) for a in arguments)}"',
        f"transfer_input_files = {', '.join(inputs)}" if inputs else "",
        "should_transfer_files = YES",
        "when_to_transfer_output = ON_EXIT",
        f"output = {logs}/$(Cluster).$(Process).out",
        f"error = {logs}/$(Cluster).$(Process).err",
        f"log = {logs}/pilots.log",
        "+Nonessential = True",
        "periodic_remove = JobStatus == 5 && "
        f"time() - EnteredCurrentStatus > {int(config.held_remove_seconds)}",
        f'+PandaQueue = "{queue.name}"',
        f'+PandaFactory = "{config.instance}"',
        f"queue {count}",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def _condor_arg(value: str) -> str:
    """One argument in the new (double-quoted) syntax: spaces and quotes protected."""
    if not value or any(c in value for c in " \t'\""):
        return "'" + value.replace('"', '""').replace("'", "''") + "'"
    return value


class Schedd:
    """The local schedd through the condor command line; one query per cache period."""

    def __init__(self, config: FactoryConfig) -> None:
        self.config = config
        self._cached: tuple[float, dict[str, PilotCounts]] | None = None

    def run(self, *cmd: str, stdin: str | None = None) -> str:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]}: {(proc.stderr or proc.stdout).strip()[:300]}")
        return proc.stdout

    def counts(self) -> dict[str, PilotCounts]:
        now = time.monotonic()
        if self._cached and now - self._cached[0] < self.config.schedd_cache_seconds:
            return self._cached[1]
        out = self.run(
            "condor_q", "-allusers", "-constraint", f'PandaFactory == "{self.config.instance}"',
            "-af", "PandaQueue", "JobStatus", "ClusterId", "ProcId",
        )  # fmt: skip
        counts = parse_condor_q(out)
        self._cached = (now, counts)
        return counts

    def submit(self, queue: QueueConfig, count: int, code: PilotCode) -> int:
        (Path(self.config.work_dir) / "logs" / queue.name).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", suffix=".sub", dir=self.config.work_dir) as f:
            f.write(submit_description(self.config, queue, count, code))
            f.flush()
            self.run("condor_submit", "-terse", f.name)
        self._cached = None
        return count

    def remove(self, ids: list[str]) -> None:
        if ids:
            self.run("condor_rm", *ids)
            self._cached = None


class Server:
    """What the factory asks of and tells the PanDA server."""

    def __init__(self, config: FactoryConfig) -> None:
        self.config = config
        self.context = ssl.create_default_context(cafile=config.ca_file or None)
        if config.cert:
            self.context.load_cert_chain(config.cert)

    def _call(self, path: str, body: dict | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.config.server}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30, context=self.context) as answer:
            data = json.load(answer)
        if not data.get("success"):
            raise RuntimeError(f"{path}: {data.get('message')}")
        return data

    def activated(self) -> dict[str, int]:
        return {
            str(k): int(v) for k, v in self._call("/api/v1/statistics/activated")["data"].items()
        }

    def report(self, stats: list[dict[str, Any]]) -> None:
        self._call("/api/v1/factory/report", {"submit_host": self.config.instance, "queues": stats})


class Factory:
    def __init__(
        self, config: FactoryConfig, schedd: Any = None, server: Any = None, code: Any = None
    ) -> None:
        self.config = config
        self.schedd = schedd or Schedd(config)
        self.server = server or Server(config)
        self.code = code or Code(config)
        self.submitted: dict[str, int] = {}

    def cycle(self) -> list[dict[str, Any]]:
        """One round over the queues; per queue what it counted, did and failed at."""
        try:
            activated, server_error = self.server.activated(), ""
        except (OSError, RuntimeError, ValueError) as exc:
            activated, server_error = {}, f"server: {exc}"
        try:
            counts, schedd_error = self.schedd.counts(), ""
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            counts, schedd_error = {}, f"schedd: {exc}"
        try:
            code, code_error = self.code.current(), ""
        except (OSError, ValueError) as exc:
            code, code_error = None, f"pilot code: {exc}"
        try:
            self.renew_proxy()
        except (OSError, ValueError) as exc:  # no pilot goes without a current proxy
            code, code_error = None, f"pilots' proxy: {exc}"
        stats = []
        for queue in self.config.queues:
            c = counts.get(queue.name, PilotCounts())
            error = server_error or schedd_error or code_error
            if not error and code is not None:  # without every figure, change nothing
                to_submit, to_remove = plan(queue, activated.get(queue.name, 0), c)
                try:
                    if to_submit:
                        self.submitted[queue.name] = self.submitted.get(
                            queue.name, 0
                        ) + self.schedd.submit(queue, to_submit, code)
                    self.schedd.remove(to_remove)
                except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                    error = f"condor: {exc}"
            stats.append(
                {
                    "queue": queue.name,
                    "activated": activated.get(queue.name, 0),
                    "idle": c.idle,
                    "running": c.running,
                    "held": c.held,
                    "submitted_total": self.submitted.get(queue.name, 0),
                    "last_error": error[:500],
                }
            )
        self.publish(stats)
        return stats

    def renew_proxy(self) -> None:
        config = self.config
        if config.cert and proxycert.renew(
            Path(config.cert), Path(config.proxy), config.proxy_hours, config.proxy_renew_hours
        ):
            print(f"factory: new pilots' proxy {config.proxy}", file=sys.stderr)

    def publish(self, stats: list[dict[str, Any]]) -> None:
        status = Path(self.config.work_dir) / "status.json"
        payload = {"instance": self.config.instance, "cycle_at": time.time(), "queues": stats}
        tmp = status.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(status)
        report = [{k: v for k, v in s.items() if k != "activated"} for s in stats]
        try:
            self.server.report(report)
        except (OSError, RuntimeError, ValueError) as exc:
            print(f"factory: report to the server failed: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--once", action="store_true", help="one cycle, then exit")
    args = parser.parse_args(argv)
    # First: a reload or stop that comes while it starts must not kill it.
    stop, reload = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    try:
        factory = Factory(FactoryConfig.load(args.config))
    except (OSError, ValueError, TypeError) as exc:
        print(f"factory: bad configuration {args.config}: {exc}", file=sys.stderr)
        return 2
    while True:
        if reload.is_set():
            reload.clear()
            try:
                old = factory
                factory = Factory(FactoryConfig.load(args.config))
                factory.submitted = old.submitted
                if factory.config.pilot_url == old.config.pilot_url:
                    factory.code.last = old.code.last  # a cache away now costs no cycle
            except (OSError, ValueError, TypeError) as exc:
                print(f"factory: kept the old configuration: {exc}", file=sys.stderr)
        stats = factory.cycle()
        print(json.dumps({"at": time.time(), "host": socket.gethostname(), "queues": stats}),
              flush=True)  # fmt: skip
        if args.once or stop.wait(factory.config.cycle_seconds):
            return 0


if __name__ == "__main__":
    sys.exit(main())
