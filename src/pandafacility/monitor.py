"""The PanDA monitor: server-rendered pages over a read replica, each with a JSON twin
(the same path with ?format=json), each naming in its footer the backend that served
it - the papers' label for finding which instance behind the VIP answered.

Pages: / (jobs by state and queue), /jobs (list, filtered by jobfilter's parameters),
/jobs/<PandaID> (detail and its log records from the logger), /errors (the commonest
error codes per queue over a window, each linked to its jobs), /servers (each server's
isAlive), /pilots (what the pilot factories report per queue), /plots/states (jobs
entering each state over a day, week or month, of one queue or all).

A job's log records carry its payload's output: they are shown to the job's owner and
to the readers (operators), identified by the client certificate (through the
load balancer's header, which identity.client_dn believes only from a load balancer's
own certificate). The monitor reads them from the logger with a certificate of its own.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
import urllib.request
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from pandafacility.db import DbSettings
from pandafacility.identity import canonical_dns, identify, member
from pandafacility.jobfilter import ERROR_CODES, FilterError, JobFilter
from pandafacility.jobs import STATES
from pandafacility.plot import line_plot
from pandafacility.server import Connections
from pandafacility.web import (
    HttpError,
    Request,
    StartResponse,
    lazy_application,
    respond,
    respond_json,
)

TEMPLATES = Path(__file__).resolve().parent / "templates" / "monitor"
PROBE_TIMEOUT = 2.0
RECORDS_HIDDEN = "log records are shown to the job's owner and the operators"
# The state plot's windows: days shown and hours per point.
WINDOWS = {"day": (1, 1), "week": (7, 1), "month": (30, 6)}
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


@dataclass(frozen=True)
class MonitorConfig:
    database: DbSettings
    instance: str = field(default_factory=socket.gethostname)
    logger_url: str = ""
    servers: dict[str, str] = field(default_factory=dict)  # name -> base URL
    ca_file: str = ""
    page_size: int = 200
    # The monitor's own certificate and key, presented to the logger.
    client_cert: str = ""
    client_key: str = ""
    # Load balancers' certificate DNs; canonical DNs of who reads every job's records.
    trusted_proxy_dns: frozenset[str] = frozenset()
    reader_dns: frozenset[str] = frozenset()

    @classmethod
    def load(cls, path: Path) -> MonitorConfig:
        data = json.loads(path.read_text())
        return cls(
            database=DbSettings.from_dict(data["database"]),
            instance=data.get("instance") or socket.gethostname(),
            logger_url=data.get("logger_url", ""),
            servers=dict(data.get("servers", {})),
            ca_file=data.get("ca_file", ""),
            page_size=int(data.get("page_size", 200)),
            client_cert=data.get("client_cert", ""),
            client_key=data.get("client_key", ""),
            trusted_proxy_dns=frozenset(data.get("trusted_proxy_dns", [])),
            reader_dns=canonical_dns(data.get("reader_dns", [])),
        )


class Monitor:
    def __init__(self, config: MonitorConfig) -> None:
        import jinja2

        self.config = config
        self.db = Connections(config.database)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True
        )

    # -- WSGI -------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        request = Request(environ)
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        as_json = (query.get("format") or [""])[-1] == "json"
        headers = [("X-Served-By", self.config.instance)]
        try:
            template, data = self.route(request, query)
        except HttpError as exc:
            if as_json:
                return respond_json(start_response, {"error": exc.message}, exc.status, headers)
            page = self.render("error.html", {"message": exc.message}, request.path)
            return respond(start_response, exc.status, page, "text/html; charset=utf-8", headers)
        except Exception:
            self.db.discard()
            raise
        if as_json:
            return respond_json(
                start_response, {**data, "served_by": self.config.instance}, headers=headers
            )
        page = self.render(template, data, request.path)
        return respond(start_response, 200, page, "text/html; charset=utf-8", headers)

    def route(self, request: Request, query: dict[str, list[str]]) -> tuple[str, dict]:
        if request.method != "GET":
            raise HttpError(405, "the monitor only reads")
        path = request.path.rstrip("/") or "/"
        if path.startswith("/jobs/"):
            viewer = identify(request.environ, self.config.trusted_proxy_dns, frozenset()).dn
            return self.job_detail(path.removeprefix("/jobs/"), viewer)
        handlers = {
            "/": self.summary,
            "/jobs": lambda: self.job_list(query),
            "/errors": lambda: self.errors(query),
            "/servers": self.servers,
            "/pilots": self.pilots,
            "/plots/states": lambda: self.state_plot(query),
            "/plots/pilots": lambda: self.pilot_plot(query),
        }
        handler = handlers.get(path)
        if handler is None:
            raise HttpError(404, f"no page {path[:200]}")
        return handler()

    def render(self, template: str, data: dict, path: str) -> bytes:
        page = self.env.get_template(template).render(
            **data, served_by=self.config.instance, path=path, json_link=f"{path}?format=json"
        )
        return page.encode()

    def query(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        conn = self.db.get()
        with conn.cursor() as cur:
            cur.execute(sql, args)
            rows = list(cur.fetchall())
        conn.rollback()  # a fresh snapshot for the next page
        return rows

    # -- pages ------------------------------------------------------------------------
    def summary(self) -> tuple[str, dict]:
        rows = self.query(
            "SELECT computing_site, job_status, COUNT(*) AS n FROM jobs"
            " GROUP BY computing_site, job_status ORDER BY computing_site"
        )
        table: dict[str, dict[str, int]] = {}
        for row in rows:
            table.setdefault(row["computing_site"], {})[row["job_status"]] = int(row["n"])
        totals = {s: sum(q.get(s, 0) for q in table.values()) for s in STATES}
        return "summary.html", {"states": list(STATES), "queues": table, "totals": totals}

    def job_list(self, query: dict[str, list[str]]) -> tuple[str, dict]:
        filt = _filter(query)
        where, args = filt.where()
        rows = self.query(
            "SELECT panda_id, job_name, computing_site, job_status, current_priority,"
            " attempt_nr, modification_time, owner_dn, pilot_error_code, exe_error_code,"
            f" trans_exit_code FROM jobs {where} ORDER BY panda_id DESC LIMIT %s",
            (*args, self.config.page_size),
        )
        for row in rows:
            row["user"] = _user_name(str(row.pop("owner_dn")))
        return "jobs.html", {
            "jobs": rows, "state": filt.state, "site": filt.queue, "user": filt.user,
            "hours": filt.hours, "codes": dict(filt.codes),
        }  # fmt: skip

    def errors(self, query: dict[str, list[str]]) -> tuple[str, dict]:
        """Failed jobs' commonest error codes per queue over the window (24 h unless
        hours= or days= says), pilot and payload apart; each count links to its jobs."""
        filt = replace(_filter(query, 24), state="failed")
        where, args = filt.where()
        kinds = {}
        for name, column in ERROR_CODES.items():
            sample = "MAX(pilot_error_diag)" if name == "pilot_error" else "NULL"
            rows = self.query(
                f"SELECT computing_site AS queue, {column} AS code, COUNT(*) AS n,"
                f" {sample} AS sample FROM jobs {where} AND {column} IS NOT NULL"
                f" AND {column} <> 0 GROUP BY computing_site, {column}"
                " ORDER BY n DESC, queue, code LIMIT 100",
                tuple(args),
            )
            for row in rows:
                row["n"] = int(row["n"])
                row["link"] = filt.link(queue=row["queue"], **{name: row["code"]})
            kinds[name] = rows
        return "errors.html", {"hours": filt.hours, "queue": filt.queue, "errors": kinds}

    def may_read_records(self, viewer: str | None, owner: str) -> bool:
        """The job's owner (``viewer`` is a proxy's owner already) and the readers."""
        return viewer is not None and (viewer == owner or member(viewer, self.config.reader_dns))

    def job_detail(self, raw_id: str, viewer: str | None = None) -> tuple[str, dict]:
        if not raw_id.isdigit():
            raise HttpError(400, "a PandaID is a number")
        rows = self.query("SELECT * FROM jobs WHERE panda_id = %s", (int(raw_id),))
        if not rows:
            raise HttpError(404, f"no job {raw_id}")
        # The tail of the pilot's log, like the log records, is the owner's to read.
        private = ("spec", "pilot_log")
        job = {k: v for k, v in rows[0].items() if k not in private}
        history = self.query(
            "SELECT job_status, changed_at FROM job_states WHERE panda_id = %s ORDER BY id",
            (int(raw_id),),
        )
        if self.may_read_records(viewer, str(job["owner_dn"])):
            job["pilot_log"] = rows[0].get("pilot_log")
            records, log_error = self.log_records(int(raw_id))
        else:
            records, log_error = [], RECORDS_HIDDEN
        return "job.html", {
            "job": job,
            "history": history,
            "records": records,
            "log_error": log_error,
        }

    def log_records(self, panda_id: int) -> tuple[list[dict], str]:
        if not self.config.logger_url:
            return [], "no logger configured"
        url = f"{self.config.logger_url}/logger/records?{urlencode({'panda_id': panda_id})}"
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT, context=self.tls()) as answer:
                return json.load(answer).get("data", []), ""
        except (OSError, ValueError) as exc:
            return [], f"logger unreachable: {exc}"

    def tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.config.ca_file or None)
        if self.config.client_cert:
            context.load_cert_chain(self.config.client_cert, self.config.client_key or None)
        return context

    def servers(self) -> tuple[str, dict]:
        results = []
        for name, base in sorted(self.config.servers.items()):
            start = time.monotonic()
            try:
                url = f"{base}/server/panda/isAlive"
                with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT, context=self.tls()) as r:
                    body = r.read(100).decode(errors="replace")
                    served = r.headers.get("X-Served-By", "")
                ok = body.strip() == "alive=yes"
                detail = body.strip() if not ok else f"served by {served}"
            except OSError as exc:
                ok, detail = False, str(exc)
            elapsed = round((time.monotonic() - start) * 1000, 1)
            results.append(
                {"name": name, "url": base, "alive": ok, "ms": elapsed, "detail": detail}
            )
        return "servers.html", {"servers": results}

    def pilots(self) -> tuple[str, dict]:
        rows = self.query(
            "SELECT queue, submit_host, idle, running, held, submitted_total, last_error, cycle_at"
            " FROM pilot_stats ORDER BY queue, submit_host"
        )
        return "pilots.html", {"queues": rows}

    def state_plot(self, query: dict[str, list[str]]) -> tuple[str, dict]:
        """Jobs entering each state per step over a window (?window=day|week|month,
        default week), of one queue (?queue=) or all: the papers' weekly plot of a site."""
        window = query.get("window", ["week"])[0]
        if window not in WINDOWS:
            raise HttpError(400, f"window is one of {', '.join(WINDOWS)}")
        days, step_hours = WINDOWS[window]
        queue = query.get("queue", [""])[0]
        if queue and not QUEUE_NAME.match(queue):
            raise HttpError(400, "queue is not a queue name")
        step = step_hours * 3600
        since = datetime.now(timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
        since -= timedelta(days=days) - timedelta(hours=1)
        sql = (
            "SELECT TIMESTAMPDIFF(SECOND, %s, s.changed_at) DIV %s AS bucket, s.job_status,"
            " COUNT(*) AS n FROM job_states s"
        )
        args: tuple = (since, step)
        if queue:
            sql += " JOIN jobs j ON j.panda_id = s.panda_id AND j.computing_site = %s"
            args += (queue,)
        rows = self.query(sql + " WHERE s.changed_at >= %s GROUP BY bucket, s.job_status",
                          (*args, since))  # fmt: skip
        points = days * 24 // step_hours
        times = [since + timedelta(seconds=i * step) for i in range(points)]
        series = {s: [0] * points for s in {r["job_status"] for r in rows}}
        for row in rows:
            if 0 <= int(row["bucket"]) < points:
                series[row["job_status"]][int(row["bucket"])] = int(row["n"])
        per = "hour" if step_hours == 1 else f"{step_hours} h"
        title = f"{queue or 'All queues'}: jobs entering each state per {per}, past {window}"
        sites = self.query("SELECT DISTINCT computing_site FROM jobs ORDER BY computing_site")
        queues = [r["computing_site"] for r in sites]
        svg = line_plot(series, times, title, f"jobs per {per}")
        return "plot.html", {
            "svg": svg, "title": title, "series": series, "window": window, "queue": queue,
            "times": [t.strftime("%Y-%m-%d %H:%M") for t in times],
            "choices": {"window": list(WINDOWS), "queue": queues},
        }  # fmt: skip

    def pilot_plot(self, query: dict[str, list[str]]) -> tuple[str, dict]:
        """A queue's idle, running and held pilots over the past hours (the factories'
        reports, averaged per step and summed over the submit hosts serving it)."""
        queue = query.get("queue", [""])[0]
        if not queue or len(queue) > 128:
            raise HttpError(400, "give ?queue=<name>")
        try:
            hours = min(max(int(query.get("hours", ["24"])[0]), 1), 24 * 14)
        except ValueError as exc:
            raise HttpError(400, "hours must be a number") from exc
        step = max(60, hours * 3600 // 144)  # about 144 points whatever the span
        now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
        since = now - timedelta(hours=hours)
        rows = self.query(
            "SELECT bucket, SUM(i) AS idle, SUM(r) AS running, SUM(h) AS held FROM"
            " (SELECT TIMESTAMPDIFF(SECOND, %s, at) DIV %s AS bucket, submit_host,"
            "  AVG(idle) AS i, AVG(running) AS r, AVG(held) AS h FROM pilot_stats_history"
            "  WHERE queue = %s AND at >= %s GROUP BY bucket, submit_host) AS per_host"
            " GROUP BY bucket",
            (since, step, queue, since),
        )
        points = hours * 3600 // step + 1
        labels = [
            (since + timedelta(seconds=i * step)).strftime("%Y-%m-%d %H:%M") for i in range(points)
        ]
        series = {k: [0] * points for k in ("idle", "running", "held")}
        for row in rows:
            if 0 <= int(row["bucket"]) < points:
                for k in series:
                    series[k][int(row["bucket"])] = round(float(row[k]))
        title = f"Pilots of {queue} at its site, past {hours} h"
        times = [since + timedelta(seconds=i * step) for i in range(points)]
        svg = line_plot(series, times, title, "pilots")
        return "plot.html", {"svg": svg, "queue": queue, "times": labels, "series": series,
                             "title": title}  # fmt: skip


def _filter(query: dict[str, list[str]], default_hours: int = 0) -> JobFilter:
    try:
        return JobFilter.parse(query, default_hours)
    except FilterError as exc:
        raise HttpError(400, str(exc)) from exc


def _user_name(dn: str) -> str:
    """The first common name of a DN (the person), as job lists show users."""
    names = [part[3:] for part in dn.split("/") if part.startswith("CN=")]
    return names[0] if names else dn


# The mod_wsgi entry point: one Monitor per process, built on the first request.
application = lazy_application("PANDA_MONITOR_CONFIG", lambda p: Monitor(MonitorConfig.load(p)))
