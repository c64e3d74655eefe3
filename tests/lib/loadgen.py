#!/usr/bin/env python3
"""Bounded HTTP(S) load through a load balancer VIP while faults are injected.

Molecule side-effect playbooks and the benchmark scripts start this in the
background, wait for ``--start-file`` to appear, break something (stop a backend,
move a VIP) and then assert on the JSON summary: how many requests failed and why,
which backends answered, and how long clients saw no successful response at all
(``gap_s``).

Every run is bounded: at most ``--requests`` requests, none started after
``--deadline`` seconds, each socket operation limited by ``--timeout``; a worker
still stuck ``--timeout`` + 1 s after the deadline is abandoned and its request is
counted as failed with reason "unfinished". Only the standard library is used, so
it runs with any python3 on the controller or a lab host.

    loadgen.py https://10.0.0.10/ --server-name www.example.test --cafile ca.pem \\
        --requests 2000 --rate 200 --start-file /tmp/load-started --output out.json

Exit status: 0 whenever the run completed (the caller asserts on the JSON),
2 on bad arguments.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import re
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_BACKEND_HEADER = "X-Served-By"
MAX_CONCURRENCY = 1024  # one thread and one socket each: keep a typo from forking a storm
GRACE_S = 1.0  # after deadline + timeout, how long to wait before abandoning workers
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token: header names, methods


@dataclass(frozen=True)
class Config:
    """What to send and the bounds of the run (the CLI options, or a test's direct call)."""

    url: str
    requests: int = 2000
    concurrency: int = 20
    rate: float = 0.0
    timeout: float = 2.0
    deadline: float = 120.0
    cafile: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    backend_header: str = DEFAULT_BACKEND_HEADER
    output: str | None = None
    start_file: str | None = None


@dataclass(frozen=True)
class Target:
    """Where to connect, and which name the server must prove (TLS) and is addressed by."""

    scheme: str
    host: str
    port: int
    path: str
    server_name: str | None = None

    @property
    def tls_name(self) -> str:
        """The name sent as SNI and checked against the certificate."""
        return self.server_name or self.host

    @property
    def host_header(self) -> str | None:
        """Host header replacing http.client's default (the connect address), if any.

        The VIP is usually given as an IP address, but the balancer routes and the
        backends answer by name, so the name must travel in the request too.
        """
        if not self.server_name:
            return None
        default_port = 443 if self.scheme == "https" else 80
        if self.port == default_port:
            return self.server_name
        return f"{self.server_name}:{self.port}"


@dataclass(frozen=True)
class Result:
    """One request's outcome; times in seconds relative to the run's start (monotonic)."""

    start_s: float
    latency_s: float
    ok: bool
    reason: str | None = None
    backend: str | None = None

    @property
    def end_s(self) -> float:
        """When the request completed: successes are placed on the timeline by this."""
        return self.start_s + self.latency_s


@dataclass(frozen=True)
class Plan:
    """A validated Config, with what every worker shares already built."""

    config: Config
    target: Target
    context: ssl.SSLContext | None
    headers: dict[str, str]


class Schedule:
    """Hands out request slots to workers: the global count and pace of the run.

    One shared schedule, not a per-worker one, so that ``--rate`` means requests per
    second overall whatever the concurrency: slot i is not due before t0 + i/rate.
    A slot due at or after the deadline is never handed out, so workers stop by
    themselves and the undelivered rest is reported as "not sent".
    """

    def __init__(self, requests: int, rate: float, t0: float, deadline_at: float) -> None:
        self.requests = requests
        self.rate = rate
        self.t0 = t0
        self.deadline_at = deadline_at
        self._lock = threading.Lock()
        self._next = 0

    def claim(self) -> float | None:
        """Reserve the next slot; return the monotonic time it is due, or None to stop."""
        with self._lock:
            now = time.monotonic()
            if self._next >= self.requests or now >= self.deadline_at:
                return None
            due = self.t0 + self._next / self.rate if self.rate > 0 else now
            if due >= self.deadline_at:
                return None
            self._next += 1
            return due

    @property
    def claimed(self) -> int:
        """How many slots were handed out, i.e. requests sent or being sent."""
        with self._lock:
            return self._next


class Recorder:
    """Thread-safe list of results, so the main thread can take a consistent snapshot
    even if it has to abandon workers that are still running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: list[Result] = []

    def add(self, result: Result) -> None:
        """Record one finished request."""
        with self._lock:
            self._results.append(result)

    def snapshot(self) -> list[Result]:
        """A copy of what has been recorded so far."""
        with self._lock:
            return list(self._results)


class NamedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address, verified against (and SNI for) a possibly different name.

    The stock HTTPSConnection verifies the certificate against the host it connects
    to; a VIP given as an IP address has a certificate for the service name, so the
    TCP connection and the TLS identity have to be decoupled.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        context: ssl.SSLContext,
        timeout: float,
        server_name: str,
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls_context = context
        self.server_name = server_name

    def connect(self) -> None:
        """Open the TCP connection as plain HTTP does, then TLS for server_name."""
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=self.server_name)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by nearest rank, or None without values.

    Nearest rank returns a latency that was actually observed, which is what one
    wants to compare with timeouts and health-check intervals.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    if not values:
        return None
    ordered = sorted(values)
    # round() first: 7 * 100 / 100 style products must not ceil to the next rank
    rank = max(1, math.ceil(round(q * len(ordered) / 100, 9)))
    return ordered[rank - 1]


def longest_gap(success_ends: Iterable[float], failures: Iterable[tuple[float, float]]) -> float:
    """The longest stretch in which clients saw no success: the outage, in seconds.

    ``success_ends`` are completion times of successful requests, ``failures`` the
    (start, end) times of failed ones. The gap is the largest distance between
    consecutive successful completions, plus the edges that only failures reveal:
    from the first failure to the first success when failures came before any
    success, and from the last success to the last failure's end when the run ended
    without recovering (or first to last failure when nothing succeeded).
    """
    ends = sorted(success_ends)
    failed = list(failures)
    gaps = [later - earlier for earlier, later in itertools.pairwise(ends)]
    if failed:
        first_failure = min(start for start, _ in failed)
        last_failure_end = max(end for _, end in failed)
        if not ends:
            gaps.append(last_failure_end - first_failure)
        else:
            if first_failure < ends[0]:
                gaps.append(ends[0] - first_failure)
            if last_failure_end > ends[-1]:
                gaps.append(last_failure_end - ends[-1])
    return max(gaps, default=0.0)


def parse_header(text: str) -> tuple[str, str]:
    """Parse a ``--header 'Name: value'`` option into (name, value)."""
    name, sep, value = text.partition(":")
    name = name.strip()
    value = value.strip()
    if not sep or not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value:
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name, value


def parse_target(url: str, server_name: str | None = None) -> Target:
    """Split the URL into what to connect to and what to request."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"URL must be http:// or https://, not {url!r}")
    if not parts.hostname:
        raise ValueError(f"URL has no host: {url!r}")
    try:
        port = parts.port
    except ValueError as exc:  # urlsplit only complains when the port is read
        raise ValueError(f"URL has a bad port: {url!r}") from exc
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, parts.hostname, port, path, server_name or None)


def tls_context(
    cafile: str | None = None, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """Client TLS context that always verifies: a load test that silently accepted any
    certificate would not notice a balancer serving the wrong one during failover."""
    context = ssl.create_default_context(cafile=cafile)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    if cert:
        context.load_cert_chain(cert, key)
    return context


def request_headers(target: Target, extra: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers for every request: Host for --server-name, then --header (last one wins)."""
    headers: dict[str, str] = {}
    if target.host_header:
        headers["Host"] = target.host_header
    for name, value in extra:
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value
    return headers


def prepare(config: Config) -> Plan:
    """Validate a Config and build what the workers share; ValueError/OSError if bad."""
    if config.requests < 1:
        raise ValueError("--requests must be at least 1")
    if not 1 <= config.concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"--concurrency must be within 1..{MAX_CONCURRENCY}")
    if not math.isfinite(config.rate) or config.rate < 0:
        raise ValueError("--rate must be 0 (unpaced) or positive")
    if not all(math.isfinite(v) and v > 0 for v in (config.timeout, config.deadline)):
        raise ValueError("--timeout and --deadline must be positive")
    if config.key and not config.cert:
        raise ValueError("--key needs --cert")
    if not _TOKEN.fullmatch(config.method):
        raise ValueError(f"bad --method {config.method!r}")
    if not _TOKEN.fullmatch(config.backend_header):
        raise ValueError(f"bad --backend-header {config.backend_header!r}")
    for option, path in (("--output", config.output), ("--start-file", config.start_file)):
        if path and not Path(path).resolve().parent.is_dir():
            raise ValueError(f"{option}: no directory for {path}")
    target = parse_target(config.url, config.server_name)
    context = None
    if target.scheme == "https":
        context = tls_context(config.cafile, config.cert, config.key)
    return Plan(config, target, context, request_headers(target, config.headers))


def make_connection(
    target: Target, context: ssl.SSLContext | None, timeout: float
) -> http.client.HTTPConnection:
    """A new (not yet opened) keep-alive connection to the target."""
    if target.scheme == "https":
        assert context is not None
        return NamedHTTPSConnection(
            target.host, target.port, context=context, timeout=timeout, server_name=target.tls_name
        )
    return http.client.HTTPConnection(target.host, target.port, timeout=timeout)


def failure_reason(exc: BaseException) -> str:
    """A short, countable reason: the exception class, and "timeout" for all timeouts."""
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since 3.10
        return "timeout"
    return type(exc).__name__


def send_one(conn: http.client.HTTPConnection, plan: Plan, t0: float) -> tuple[Result, bool]:
    """Send one request on conn and read the whole body; return (result, conn reusable).

    The body is read even for error statuses so that the connection stays usable;
    a short body raises IncompleteRead and counts as a failure.
    """
    start = time.monotonic()
    try:
        conn.request(plan.config.method, plan.target.path, headers=plan.headers)
        response = conn.getresponse()
        response.read()
    except Exception as exc:  # anything at all: the request failed, the run goes on
        return Result(start - t0, time.monotonic() - start, False, failure_reason(exc)), False
    latency = time.monotonic() - start
    backend = response.getheader(plan.config.backend_header)
    if 200 <= response.status < 300:
        return Result(start - t0, latency, True, None, backend), True
    return Result(start - t0, latency, False, f"status {response.status}", backend), True


def worker(plan: Plan, schedule: Schedule, recorder: Recorder, started: threading.Event) -> None:
    """Send requests on one persistent connection until the schedule says stop.

    After any error the connection is dropped and the next request opens a new one,
    so a failed-over VIP or a restarted backend is picked up at once.
    """
    conn: http.client.HTTPConnection | None = None
    try:
        while (due := schedule.claim()) is not None:  # at most `requests` claims in all
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # due is before the deadline, so this is bounded too
            started.set()
            if conn is None:
                conn = make_connection(plan.target, plan.context, plan.config.timeout)
            result, reusable = send_one(conn, plan, schedule.t0)
            recorder.add(result)
            if not reusable:
                conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def summarise(
    results: Sequence[Result], requests: int, sent: int, duration_s: float
) -> dict[str, object]:
    """The JSON summary the callers assert on.

    ``sent`` counts requests handed to workers; those without a result (abandoned at
    the end) are failures with reason "unfinished". Latencies and backends are of
    successful requests; failure times are the failed requests' start times.
    """
    oks = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    reasons = Counter(r.reason or "unknown" for r in failed)
    if sent > len(results):
        reasons["unfinished"] += sent - len(results)
    latencies_ms = [r.latency_s * 1000 for r in oks]
    backends = Counter(r.backend for r in oks if r.backend is not None)
    failure_starts = [r.start_s for r in failed]
    gap = longest_gap((r.end_s for r in oks), ((r.start_s, r.end_s) for r in failed))
    return {
        "requests": requests,
        "sent": sent,
        "ok": len(oks),
        "failed": sent - len(oks),
        "not_sent": requests - sent,
        "duration_s": round(duration_s, 3),
        "rps": round(len(oks) / duration_s, 1) if duration_s > 0 else 0.0,
        "latency_p50_ms": _rounded(percentile(latencies_ms, 50), 2),
        "latency_p90_ms": _rounded(percentile(latencies_ms, 90), 2),
        "latency_p99_ms": _rounded(percentile(latencies_ms, 99), 2),
        "latency_max_ms": _rounded(max(latencies_ms, default=None), 2),
        "failures_by_reason": dict(sorted(reasons.items())),
        "backends": dict(sorted(backends.items())),
        "gap_s": round(gap, 3),
        "first_failure_s": _rounded(min(failure_starts, default=None), 3),
        "last_failure_s": _rounded(max(failure_starts, default=None), 3),
    }


def execute(plan: Plan) -> dict[str, object]:
    """Run the load described by plan and return its summary."""
    config = plan.config
    if config.start_file:  # a stale file would let the playbook inject its fault too early
        Path(config.start_file).unlink(missing_ok=True)
    t0 = time.monotonic()
    schedule = Schedule(config.requests, config.rate, t0, t0 + config.deadline)
    recorder = Recorder()
    started = threading.Event()
    threads = [
        threading.Thread(
            target=worker,
            args=(plan, schedule, recorder, started),
            name=f"loadgen-{n}",
            daemon=True,  # an abandoned worker must not keep the process alive
        )
        for n in range(min(config.concurrency, config.requests))
    ]
    for thread in threads:
        thread.start()
    hard_stop = t0 + config.deadline + config.timeout + GRACE_S
    if config.start_file:
        while not started.wait(0.02):
            if time.monotonic() >= hard_stop or not any(t.is_alive() for t in threads):
                break
        if started.is_set():
            Path(config.start_file).touch()
    for thread in threads:
        thread.join(max(0.0, hard_stop - time.monotonic()))
    duration = time.monotonic() - t0
    return summarise(recorder.snapshot(), config.requests, schedule.claimed, duration)


def run(config: Config) -> dict[str, object]:
    """Validate config, run the load, return the summary (the API for scripts and tests)."""
    return execute(prepare(config))


def build_parser() -> argparse.ArgumentParser:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="loadgen.py",
        description="Bounded HTTP(S) load generator; prints a JSON summary.",
    )
    parser.add_argument("url", help="http:// or https:// URL, host may be the VIP's address")
    parser.add_argument("--requests", type=int, default=2000, help="total requests (2000)")
    parser.add_argument("--concurrency", type=int, default=20, help="worker connections (20)")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="requests/s overall, 0 = unpaced (0)"
    )
    parser.add_argument("--timeout", type=float, default=2.0, help="per request, s (2.0)")
    parser.add_argument("--deadline", type=float, default=120.0, help="whole run, s (120)")
    parser.add_argument("--cafile", help="CA bundle to verify the server with")
    parser.add_argument("--cert", help="client certificate (PEM)")
    parser.add_argument("--key", help="client certificate's key (PEM)")
    parser.add_argument(
        "--server-name", help="name for SNI, Host and certificate check when URL has an IP"
    )
    parser.add_argument(
        "--header",
        dest="headers",
        type=parse_header,
        action="append",
        default=[],
        help="'Name: value', repeatable",
    )
    parser.add_argument("--method", default="GET", help="HTTP method (GET)")
    parser.add_argument(
        "--backend-header",
        default=DEFAULT_BACKEND_HEADER,
        help=f"response header naming the backend ({DEFAULT_BACKEND_HEADER})",
    )
    parser.add_argument("--output", help="also write the JSON summary to this file")
    parser.add_argument("--start-file", help="touched once requests have started")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: 0 when the run completed, 2 on bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = Config(
        url=args.url,
        requests=args.requests,
        concurrency=args.concurrency,
        rate=args.rate,
        timeout=args.timeout,
        deadline=args.deadline,
        cafile=args.cafile,
        cert=args.cert,
        key=args.key,
        server_name=args.server_name,
        headers=tuple(args.headers),
        method=args.method,
        backend_header=args.backend_header,
        output=args.output,
        start_file=args.start_file,
    )
    try:
        plan = prepare(config)
    except (ValueError, OSError) as exc:  # OSError: unreadable CA/cert/key, ssl.SSLError
        parser.error(str(exc))
    summary = execute(plan)
    text = json.dumps(summary)
    print(text, flush=True)
    if config.output:
        Path(config.output).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
