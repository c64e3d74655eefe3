"""The PanDA server: a stateless WSGI application over the job store.

Several instances run behind the pandaserver VIP, each under Apache/mod_wsgi, all on
one database; everything they share lives there. They speak the legacy pilot protocol
(form-encoded, /server/panda/...) and the JSON API (/api/v1/...), whose answers are
``{"success": bool, "message": str, "data": ...}``.

Settings come from a JSON file the panda_server role writes (see ServerConfig);
mod_wsgi loads ``application`` with PANDA_SERVER_CONFIG pointing at it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pandafacility import dbhealth, jobs, jobspec, metrics, reports, tokens, workernodes
from pandafacility.db import DbSettings, connect, ping, unavailable
from pandafacility.identity import Identity, canonical_dns, identify
from pandafacility.web import (
    MAX_BODY,
    HttpError,
    Request,
    StartResponse,
    integer,
    lazy_application,
    respond,
    respond_json,
    text,
)

_log = logging.getLogger(__name__)
_QUEUE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
LEGACY_NO_JOB = 20  # upstream StatusCode: no jobs
LEGACY_INVALID = 50


@dataclass(frozen=True)
class ServerConfig:
    database: DbSettings
    instance: str = field(default_factory=socket.gethostname)
    production_dns: frozenset[str] = frozenset()
    production_roles: frozenset[str] = frozenset()  # VOMS roles: /atlas/Role=production
    trusted_proxy_dns: frozenset[str] = frozenset()  # the load balancers' certificates
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_body: int = MAX_BODY
    max_jobs_per_request: int = 1000
    retry_after: int = 5  # seconds a client is told to wait when the database is away
    # Every database host's address: the health check's witnesses (see dbhealth).
    database_witnesses: tuple[str, ...] = ()
    health_timeout: float = 0.3  # each step of the health check (within HAProxy's 1 s)
    user_max_priority: int = 1000  # the highest priority a non-production job gets
    # /metrics: the directory the processes share their counts in ("": this process
    # only), and who may read them (Prometheus' certificate, the operators).
    metrics_dir: str = ""
    metrics_dns: frozenset[str] = frozenset()
    # Bearer tokens (panda-client's oidc mode): the VOs whose tokens are believed, and
    # the CA file their issuers' https is verified with ("": the system's).
    token_vos: tuple[tokens.TokenVo, ...] = ()
    token_ca_file: str = ""

    @classmethod
    def load(cls, path: Path) -> ServerConfig:
        data = json.loads(path.read_text())
        return cls(
            database=DbSettings.from_dict(data["database"]),
            instance=data.get("instance") or socket.gethostname(),
            production_dns=canonical_dns(data.get("production_dns", [])),
            production_roles=frozenset(data.get("production_roles", [])),
            trusted_proxy_dns=frozenset(data.get("trusted_proxy_dns", [])),
            queues=dict(data.get("queues", {})),
            max_body=int(data.get("max_body", MAX_BODY)),
            max_jobs_per_request=int(data.get("max_jobs_per_request", 1000)),
            retry_after=int(data.get("retry_after", 5)),
            database_witnesses=tuple(data.get("database_witnesses", [])),
            health_timeout=float(data.get("health_timeout", 0.3)),
            user_max_priority=int(data.get("user_max_priority", 1000)),
            metrics_dir=str(data.get("metrics_dir", "")),
            metrics_dns=canonical_dns(data.get("metrics_dns", [])),
            token_vos=tuple(tokens.TokenVo.from_dict(v) for v in data.get("token_vos", [])),
            token_ca_file=str(data.get("token_ca_file", "")),
        )


class Connections:
    """One database connection per mod_wsgi thread, reopened after an error. Each
    request's connection is checked first (one round trip): one that the database
    dropped (a restart, a promotion, an idle timeout) is replaced before the request
    has done anything, so such faults cost no request."""

    def __init__(self, settings: DbSettings, counters: metrics.Counters | None = None) -> None:
        self._settings = settings
        self._local = threading.local()
        self._counters = counters

    def get(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                ping(conn, min(self._settings.check_timeout, self._settings.read_timeout or 1e9))
            except Exception:  # any failure: the connection is gone
                self.discard()
                conn = None
                if self._counters is not None:
                    self._counters.inc("panda_server_db_reconnects_total")
        if conn is None:
            conn = self._local.conn = connect(self._settings)
        return conn

    def discard(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):  # it is being thrown away
                conn.close()


# Paths answered outside the route table, and the routes whose time is the acquire
# latency histogram's.
FIXED_PATHS = frozenset(
    {"/server/panda/isAlive", "/api/v1/system/is_alive", "/api/v1/system/health", "/metrics"}
)
ACQUIRES = frozenset({("POST", "/server/panda/getJob"), ("POST", "/api/v1/pilot/acquire_jobs")})
METRICS_HELP = {
    "panda_server_requests_total": ("counter", "Requests answered, by endpoint and HTTP code."),
    "panda_server_acquire_seconds": ("histogram", "Time to answer a pilot's request for jobs."),
    "panda_server_db_reconnects_total": (
        "counter", "Database connections found dropped and reopened before a request."),
    "panda_server_db_unavailable_total": (
        "counter", "Requests answered 503 because the database was away."),
    "panda_server_database_up": ("gauge", "Whether this scrape could read the database."),
    "panda_jobs": ("gauge", "Jobs in the database, by queue and state."),
}  # fmt: skip

# What upstream answers for a job it does not know: the pilot stops it.
UNKNOWN_JOB = {"status": "unknown", "command": "tobekilled"}


def envelope(data: Any = None, message: str = "", success: bool = True) -> dict[str, Any]:
    return {"success": success, "message": message, "data": data}


class Server:
    """Routes requests to the job store; one instance per mod_wsgi process."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.counters = metrics.Counters(Path(config.metrics_dir) if config.metrics_dir else None)
        self.db = Connections(config.database, self.counters)
        self.tokens = tokens.Verifier(
            {vo.vo: vo for vo in config.token_vos},
            fetch=lambda url: tokens.fetch_json(url, config.token_ca_file),
        )
        self.routes: dict[tuple[str, str], Callable[[Request, Identity], Any]] = {
            ("POST", "/server/panda/getJob"): self.legacy_get_job,
            ("POST", "/server/panda/updateJob"): self.legacy_update_job,
            ("POST", "/server/panda/getStatus"): self.legacy_get_status,
            ("POST", "/server/panda/submitJobs"): self.legacy_submit,
            ("POST", "/api/v1/job/submit"): self.submit,
            ("POST", "/api/v1/job/get_description"): self.get_description,
            ("POST", "/api/v1/pilot/acquire_jobs"): self.acquire_jobs,
            ("POST", "/api/v1/pilot/update_job"): self.update_job,
            ("POST", "/api/v1/pilot/update_jobs_bulk"): self.update_jobs_bulk,
            ("GET", "/api/v1/pilot/get_job_status"): self.pilot_job_status,
            ("POST", "/api/v1/pilot/update_worker_node"): self.update_worker_node,
            ("POST", "/api/v1/pilot/update_worker_status"): self.update_worker_status,
            ("POST", "/api/v1/job/get_status"): self.get_status,
            ("GET", "/api/v1/job/get_status"): self.get_status_by_get,
            ("POST", "/api/v1/job/kill"): self.kill,
            ("GET", "/api/v1/statistics/activated"): self.activated,
            ("POST", "/api/v1/factory/report"): self.factory_report,
        }
        self.endpoints = {p for _, p in self.routes} | FIXED_PATHS

    # -- WSGI -------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """Each request counted by endpoint and answer code; acquires timed."""
        start = time.monotonic()
        answered: list[str] = []

        def counted(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            answered.append(status.split(" ", 1)[0])
            return start_response(status, headers, *exc_info)

        try:
            return self.handle(environ, counted)
        finally:
            method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
            endpoint = path if path in self.endpoints else "other"
            if path.startswith("/cache/schedconfig/"):
                endpoint = "/cache/schedconfig/"
            code = answered[0] if answered else "500"
            self.counters.inc(
                "panda_server_requests_total", metrics.labels(endpoint=endpoint, code=code)
            )
            if (method, path) in ACQUIRES:
                self.counters.observe("panda_server_acquire_seconds", time.monotonic() - start)

    def handle(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        request = Request(environ, self.config.max_body)
        served_by = [("X-Served-By", self.config.instance)]
        path = request.path
        if path == "/server/panda/isAlive":
            return respond(start_response, 200, b"alive=yes", "text/plain", served_by)
        if path == "/api/v1/system/is_alive":
            return respond_json(start_response, envelope(), headers=served_by)
        if path == "/api/v1/system/health":
            return self.health(start_response, served_by)
        if path.startswith("/cache/schedconfig/"):
            return self.schedconfig(request, start_response, served_by)
        if path == "/metrics":
            return self.metrics(environ, start_response, served_by)
        if path.startswith("/auth/") and path.endswith("_auth_config.json"):
            return self.auth_config(path, start_response, served_by)
        handler = self.routes.get((request.method, path))
        if handler is None:
            known = {p for _, p in self.routes}
            status = 405 if path in known else 404
            return respond_json(
                start_response, envelope(None, f"no {request.method} {path}", False), status
            )
        try:
            answer = handler(request, self.who(environ))
        except HttpError as exc:
            body = envelope(None, exc.message, False)
            if path.startswith("/server/panda/"):
                body = {"StatusCode": LEGACY_INVALID, "errorDialog": exc.message}
            retry = [("Retry-After", str(self.config.retry_after))] if exc.status == 503 else []
            return respond_json(start_response, body, exc.status, [*served_by, *retry])
        except jobs.JobError as exc:
            body = envelope({"StatusCode": LEGACY_INVALID}, str(exc), False)
            if path.startswith("/server/panda/"):
                body = {"StatusCode": LEGACY_INVALID, "errorDialog": str(exc)}
            return respond_json(start_response, body, 400, served_by)
        except Exception as exc:
            self.db.discard()  # a broken connection must not serve the next request
            if not unavailable(exc):
                raise
            # The database is away (restarting, paused, promoted, unreachable): the
            # client retries, the pilots after their backoff, and the load balancer
            # on another server where the method allows.
            _log.warning("%s %s: database unavailable: %s", request.method, path, exc)
            self.counters.inc("panda_server_db_unavailable_total")
            message = "the database is unavailable; retry later"
            body = envelope(None, message, False)
            if path.startswith("/server/panda/"):
                body = {"StatusCode": LEGACY_INVALID, "errorDialog": message}
            retry = [("Retry-After", str(self.config.retry_after))]
            return respond_json(start_response, body, 503, [*served_by, *retry])
        return respond_json(start_response, answer, headers=served_by)

    def health(self, start_response: StartResponse, served_by: list) -> list[bytes]:
        """The load balancer's check: 503 only when this server's own path to the
        database is broken (dbhealth)."""
        verdict = dbhealth.check(
            self.config.database, self.config.database_witnesses, self.config.health_timeout
        )
        body = envelope({"database": verdict.database}, verdict.detail, verdict.in_service)
        return respond_json(start_response, body, 200 if verdict.in_service else 503, served_by)

    def metrics(
        self, environ: dict[str, Any], start_response: StartResponse, served_by: list
    ) -> list[bytes]:
        """Prometheus' text format: this server's counts (all its processes), and the
        jobs by state and queue as the database has them (absent while it is away)."""
        identity = self.identify(environ)
        if identity.dn not in self.config.metrics_dns:
            body = envelope(None, "metrics are for the facility's Prometheus and operators", False)
            return respond_json(start_response, body, 403, served_by)
        samples = [(name, lbls, value) for (name, lbls), value in self.counters.totals().items()]
        try:
            for site, state, n in jobs.counts_by_queue_and_state(self.db.get()):
                samples.append(("panda_jobs", metrics.labels(queue=site, state=state), n))
            up = 1.0
        except Exception as exc:
            self.db.discard()
            if not unavailable(exc):
                raise
            up = 0.0
        samples.append(("panda_server_database_up", (), up))
        page = metrics.exposition(METRICS_HELP, samples).encode()
        return respond(start_response, 200, page, "text/plain; version=0.0.4", served_by)

    def auth_config(self, path: str, start_response: StartResponse, served_by: list) -> list[bytes]:
        """/auth/<vo>_auth_config.json: what panda-client's oidc mode reads first."""
        name = path.removeprefix("/auth/").removesuffix("_auth_config.json")
        vo = next((v for v in self.config.token_vos if v.vo == name), None)
        if vo is None:
            return respond_json(start_response, {"error": f"no VO {name[:64]}"}, 404, served_by)
        return respond_json(start_response, vo.auth_config(), headers=served_by)

    def who(self, environ: dict[str, Any]) -> Identity:
        """The caller: a verified certificate (directly or through the load balancer),
        else a bearer token with its Origin (tokens), else nobody. A token that is not
        believed is a 403, one whose issuer cannot be read now a 503."""
        identity = self.identify(environ)
        auth = str(environ.get("HTTP_AUTHORIZATION", ""))
        if identity.authenticated or not auth.lower().startswith("bearer "):
            return identity
        if not self.config.token_vos:
            raise HttpError(403, "this server accepts no tokens")
        try:
            name, production = self.tokens.identify(
                auth[7:].strip(), str(environ.get("HTTP_ORIGIN", ""))
            )
        except tokens.TokenError as exc:
            raise HttpError(403, f"token refused: {exc}") from exc
        except tokens.IssuerUnavailable as exc:
            _log.warning("token issuer unavailable: %s", exc)
            raise HttpError(503, "the token's issuer cannot be reached; retry later") from exc
        return Identity(dn=name, production=production)

    # -- helpers ----------------------------------------------------------------------
    def identify(self, environ: dict[str, Any]) -> Identity:
        config = self.config
        return identify(
            environ, config.trusted_proxy_dns, config.production_dns, config.production_roles
        )

    @staticmethod
    def need_identity(identity: Identity, what: str = "this call") -> None:
        if identity.limited:
            raise HttpError(403, f"{what} refuses a limited proxy")
        if not identity.authenticated:
            raise HttpError(403, f"{what} needs a client certificate")

    @staticmethod
    def need_production(identity: Identity) -> None:
        Server.need_identity(identity)
        if not identity.production:
            raise HttpError(403, f"{identity.dn} is not a production (pilot) identity")

    @staticmethod
    def queue(value: str, name: str) -> str:
        if not _QUEUE.match(value):
            raise HttpError(400, f"{name} is not a queue name")
        return value

    def id_list(self, value: Any, name: str) -> list[int]:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not value:
            raise HttpError(400, f"{name} must be a non-empty list of job ids")
        if len(value) > self.config.max_jobs_per_request:
            raise HttpError(400, f"{name} has more than {self.config.max_jobs_per_request} ids")
        return [integer({name: v}, name) for v in value]

    # -- pilots -----------------------------------------------------------------------
    def _acquire(self, fields: dict[str, Any], identity: Identity, keys: dict[str, str]) -> list:
        self.need_production(identity)
        site = self.queue(text(fields, keys["site"], limit=128), keys["site"])
        n_jobs = integer(fields, keys["n_jobs"], 1) if keys["n_jobs"] else 1
        if not 1 <= n_jobs <= 100:
            raise HttpError(400, f"{keys['n_jobs']} must be 1 to 100")
        node = text(fields, keys["node"], "")
        pilot = text(fields, keys["pilot"], identity.dn or "", limit=255)
        return jobs.acquire(self.db.get(), site, n_jobs, pilot_id=pilot, node=node)

    def legacy_get_job(self, request: Request, identity: Identity) -> dict[str, Any]:
        keys = {"site": "siteName", "n_jobs": "", "node": "node", "pilot": "pilotID"}
        got = self._acquire(request.form(), identity, keys)
        return jobspec.pilot_description(got[0]) if got else {"StatusCode": LEGACY_NO_JOB}

    def acquire_jobs(self, request: Request, identity: Identity) -> dict[str, Any]:
        keys = {"site": "site_name", "n_jobs": "n_jobs", "node": "node", "pilot": "worker_id"}
        fields = request.json()
        if isinstance(fields.get("worker_id"), int):  # pilots send it as a number
            fields["worker_id"] = str(fields["worker_id"])
        got = self._acquire(fields, identity, keys)
        if not got:
            return envelope(None, "No jobs in PanDA", False)
        return envelope({"StatusCode": 0, "jobs": [jobspec.pilot_description(row) for row in got]})

    def _update(
        self, panda_id: int, state: str, values: dict[str, Any], attempt: int
    ) -> tuple[dict[str, Any], str]:
        """The legacy answer and a message. A pilot may not put a job back in the queue;
        the report of an attempt that is not the job's dispatch changes nothing and tells
        the pilot to stop (as upstream answers for a job it no longer has)."""
        if state in jobs.UNDISPATCHED:
            raise HttpError(409, f"a pilot may not report {state}")
        try:
            job = jobs.update(self.db.get(), panda_id, state, values, attempt=attempt)
        except jobs.NotThisDispatch as exc:
            return {"StatusCode": 0, "command": "tobekilled"}, str(exc)
        command = "tobekilled" if job["job_status"] == "cancelled" else "NULL"
        return {"StatusCode": 0, "command": command}, ""

    def _report(self, fields: dict[str, Any], names: tuple[str, ...]) -> tuple[int, str, dict, int]:
        """A pilot's report in either protocol; ``names`` are that protocol's field
        names for the job id, state and attempt. What else it sends (node, exit and
        error codes, metrics, times, log tail) is in reports.FIELDS."""
        job_id, state, attempt = names
        return (
            integer(fields, job_id),
            text(fields, state, limit=16),
            reports.pilot_values(fields, legacy=job_id == "jobId"),
            integer(fields, attempt),
        )

    def legacy_update_job(self, request: Request, identity: Identity) -> dict[str, Any]:
        self.need_production(identity)
        names = ("jobId", "state", "attemptNr")
        return self._update(*self._report(request.form(), names))[0]

    def update_job(self, request: Request, identity: Identity) -> dict[str, Any]:
        self.need_production(identity)
        names = ("job_id", "job_status", "attempt_nr")
        answer, message = self._update(*self._report(request.json(), names))
        return {**envelope(answer, message), "command": answer["command"]}

    def update_jobs_bulk(self, request: Request, identity: Identity) -> dict[str, Any]:
        """Harvester's form: {"job_list": [update_job's fields, ...]}; one answer per job,
        in order, each as update_job's. A bad entry fails that entry only."""
        self.need_production(identity)
        job_list = request.json().get("job_list")
        if not isinstance(job_list, list) or not job_list:
            raise HttpError(400, "job_list must be a non-empty list")
        if len(job_list) > self.config.max_jobs_per_request:
            raise HttpError(400, f"job_list has more than {self.config.max_jobs_per_request} jobs")
        names = ("job_id", "job_status", "attempt_nr")
        answers = []
        for entry in job_list:
            try:
                if not isinstance(entry, dict):
                    raise HttpError(400, "each job is an object")
                answer, message = self._update(*self._report(entry, names))
                answers.append(envelope(answer, message))
            except (HttpError, jobs.JobError) as exc:
                message = exc.message if isinstance(exc, HttpError) else str(exc)
                answers.append(envelope({"StatusCode": LEGACY_INVALID}, message, False))
        return envelope(answers)

    def pilot_job_status(self, request: Request, identity: Identity) -> dict[str, Any]:
        """Pilot3's check of its job: GET ?job_ids=..; per id its state and attempt
        ("not found" and 0 for an id the server does not have)."""
        self.need_production(identity)
        ids = self.id_list(request.query("job_ids"), "job_ids")
        conn = self.db.get()
        marks = ", ".join(["%s"] * len(ids))
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT panda_id, job_status, attempt_nr FROM jobs WHERE panda_id IN ({marks})",
                ids,
            )
            found = {row["panda_id"]: row for row in cur.fetchall()}
        conn.rollback()
        missing = {"job_status": "not found", "attempt_nr": 0}
        rows = [(i, found.get(i, missing)) for i in ids]
        return envelope([{"job_id": i, "status": row["job_status"],
                          "attempt_number": row["attempt_nr"]} for i, row in rows])  # fmt: skip

    def update_worker_node(self, request: Request, identity: Identity) -> dict[str, Any]:
        """What a pilot tells of its machine at start (the latest report is kept)."""
        self.need_production(identity)
        values = workernodes.node_values(request.json())
        new = workernodes.record_node(self.db.get(), values, identity.dn or "")
        return envelope(None, "Inserted new worker node." if new else "Updated worker node.")

    def update_worker_status(self, request: Request, identity: Identity) -> dict[str, Any]:
        """A pilot's start or end (worker and harvester ids, the node)."""
        self.need_production(identity)
        fields = request.json()
        status = text(fields, "status", limit=16)
        if status not in workernodes.WORKER_STATES:
            raise HttpError(400, f"status is one of {', '.join(workernodes.WORKER_STATES)}")
        harvester = text(fields, "harvester_id", limit=64)
        node = text(fields, "node_id", "", limit=255) or None
        worker = integer(fields, "worker_id")
        if not 0 <= worker < reports.BIG:
            raise HttpError(400, "worker_id is out of range")
        workernodes.record_worker(self.db.get(), harvester, worker, status, node, identity.dn or "")
        return envelope(None)

    # -- users ------------------------------------------------------------------------
    def _statuses(self, ids: list[int]) -> list[str | None]:
        conn = self.db.get()
        marks = ", ".join(["%s"] * len(ids))
        with conn.cursor() as cur:
            cur.execute(f"SELECT panda_id, job_status FROM jobs WHERE panda_id IN ({marks})", ids)
            found = {row["panda_id"]: row["job_status"] for row in cur.fetchall()}
        conn.rollback()
        return [found.get(i) for i in ids]

    def _submit(self, jobs_field: Any, identity: Identity) -> list[list[Any]]:
        self.need_identity(identity, "submitting jobs")
        try:
            new = [
                jobspec.for_submitter(job, identity.production, self.config.user_max_priority)
                for job in jobspec.parse_submission(
                    jobs_field, self.config.max_jobs_per_request, frozenset(self.config.queues)
                )
            ]
        except jobspec.NotAllowed as exc:
            raise HttpError(403, f"{identity.dn}: {exc}") from exc
        except jobspec.SpecError as exc:
            raise HttpError(400, str(exc)) from exc
        ids = jobs.submit(self.db.get(), new, identity.dn or "")
        return [[pid, job.job_definition_id or None, job.job_name] for pid, job in zip(ids, new)]

    def submit(self, request: Request, identity: Identity) -> dict[str, Any]:
        return envelope(self._submit(request.json().get("jobs"), identity))

    def legacy_submit(self, request: Request, identity: Identity) -> dict[str, Any]:
        return {"StatusCode": 0, "jobs": self._submit(request.form().get("jobs"), identity)}

    def get_description(self, request: Request, identity: Identity) -> dict[str, Any]:
        ids = self.id_list(request.json().get("job_ids"), "job_ids")
        conn = self.db.get()
        marks = ", ".join(["%s"] * len(ids))
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM jobs WHERE panda_id IN ({marks})", ids)
            found = {row["panda_id"]: jobspec.describe(row) for row in cur.fetchall()}
        conn.rollback()
        return envelope([found.get(i) for i in ids])

    def legacy_get_status(self, request: Request, identity: Identity) -> dict[str, Any]:
        ids = self.id_list(request.form().get("ids", ""), "ids")
        return {"StatusCode": 0, "status": self._statuses(ids)}

    def get_status(self, request: Request, identity: Identity) -> dict[str, Any]:
        return envelope(self._statuses(self.id_list(request.json().get("job_ids"), "job_ids")))

    def get_status_by_get(self, request: Request, identity: Identity) -> dict[str, Any]:
        """Upstream's form: GET ?job_ids=1&job_ids=2 with a certificate; per id, in
        order, {"status", "command"}: "tobekilled" for a cancelled job, and an unknown
        one is "unknown"."""
        self.need_identity(identity)
        statuses = self._statuses(self.id_list(request.query("job_ids"), "job_ids"))
        return envelope([_status_answer(s) for s in statuses])

    def kill(self, request: Request, identity: Identity) -> dict[str, Any]:
        self.need_identity(identity)
        ids = self.id_list(request.json().get("job_ids"), "job_ids")
        return envelope(jobs.kill(self.db.get(), ids, identity.dn or "", identity.production))

    # -- the pilot factory and the pilots' queue data ---------------------------------
    def activated(self, request: Request, identity: Identity) -> dict[str, Any]:
        return envelope(jobs.queue_activated(self.db.get()))

    def factory_report(self, request: Request, identity: Identity) -> dict[str, Any]:
        """A pilot factory's counts per queue for one cycle (the monitor's pilot page)."""
        self.need_production(identity)
        fields = request.json()
        host = text(fields, "submit_host", limit=255)
        queues = fields.get("queues")
        if not host or not isinstance(queues, list) or len(queues) > 1000:
            raise HttpError(400, "submit_host and a list of at most 1000 queues are required")
        stats = []
        for entry in queues:
            if not isinstance(entry, dict):
                raise HttpError(400, "each queue is an object")
            counts = {k: integer(entry, k, 0) for k in ("idle", "running", "held")}
            total = integer(entry, "submitted_total", 0)
            if min(*counts.values(), total) < 0:
                raise HttpError(400, "counts cannot be negative")
            error = text(entry, "last_error", "", limit=500) or None
            stats.append(
                jobs.PilotStats(self.queue(text(entry, "queue", limit=128), "queue"),
                                submitted_total=total, last_error=error, **counts)
            )  # fmt: skip
        jobs.record_pilot_stats(self.db.get(), host, stats)
        return envelope({"recorded": len(stats)})

    def schedconfig(
        self, request: Request, start_response: StartResponse, headers: list[tuple[str, str]]
    ) -> list[bytes]:
        name = request.path.removeprefix("/cache/schedconfig/").removesuffix(".all.json")
        queue = self.config.queues.get(name)
        if queue is None or not request.path.endswith(".all.json"):
            return respond_json(start_response, {"error": f"no queue {name[:128]}"}, 404, headers)
        # What pilot3 needs to start (nickname, state ACTIVE, atlas_site, which it puts
        # in its environment unchecked) and what it reads in practice; the inventory's
        # queue entry overrides each.
        data = {
            "nickname": name,
            "panda_resource": name,
            "atlas_site": name,
            "state": "ACTIVE",
            "status": "online",
            "maxwdir": 14336,
            "timefloor": 0,
            "corecount": 1,
            "catchall": "",
            "resource_type": "grid",
            # Storage by activity, as CRIC describes it: none here (a queue that saves
            # its pilots' logs names its copytools, e.g. {"mv": {}}); pilot3 reads these
            # as mappings and fails its stage-out on a missing one.
            "copytools": {},
            "astorages": {},
            "aprotocols": {},
            **queue,
        }
        return respond_json(start_response, data, headers=headers)


def _status_answer(status: str | None) -> dict[str, Any]:
    """A job's status as upstream's get_status answers it: a cancelled or unknown
    job's pilot is told to kill the payload."""
    if status is None:
        return UNKNOWN_JOB
    return {"status": status, "command": "tobekilled" if status == "cancelled" else None}


# The mod_wsgi entry point: one Server per process, built on the first request.
application = lazy_application("PANDA_SERVER_CONFIG", lambda path: Server(ServerConfig.load(path)))
