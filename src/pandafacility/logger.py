"""The PanDA logger: servers and pilots send it log records over HTTP; the monitor reads
them back by job. It is the facility's one stateful web service, on one host, keeping
records in SQLite (WAL) on local disk with a bounded retention by age and count.

Senders (panda-common's HTTP log handler) wait 1 s at most and ignore the answer, so
a record is stored and answered at once; pruning runs at most once a minute.

Who may do what is by verified client certificate (a proxy counts as its owner):
records come only from the facility's own identities (the pilots' production DN and
any listed writer), and each source (certificate DN at a network address) stores at
most ``source_limit`` records per ``source_window`` seconds, beyond which it is answered
429 (a single batch larger than the bound, 413). Records are read only by the monitors
(which show a job's records to its owner and their readers) and by the listed readers
(operators), never by a writer: pilots carry their certificate where payloads run, so
a payload's output is nobody else's to read.

    GET  /logger/logger/query?name=...&levelname=...&message=...&PandaID=...
    POST /logger/logger/query   [{"headers": {...}, "body": "<record as JSON>"}, ...]
    GET  /logger/records?panda_id=N[&limit=M]     (the monitor)
    GET  /logger/isAlive
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from pandafacility import safejson
from pandafacility.identity import canonical_dns, client_dn, member
from pandafacility.web import (
    MAX_BODY,
    HttpError,
    Request,
    StartResponse,
    lazy_application,
    respond,
    respond_json,
)

MESSAGE_LIMIT = 4000  # the sender cuts there too
FIELD_LIMIT = 255
MAX_RECORDS_PER_POST = 1000
PRUNE_EVERY = 60.0  # seconds

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    received REAL NOT NULL,
    created REAL,
    panda_id INTEGER NOT NULL DEFAULT -1,
    name TEXT, levelname TEXT, message TEXT, source TEXT, type TEXT, user TEXT, host TEXT
);
CREATE INDEX IF NOT EXISTS records_by_job ON records (panda_id, id);
CREATE INDEX IF NOT EXISTS records_by_age ON records (received);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY, window_start REAL NOT NULL, stored INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class LoggerConfig:
    database: Path
    retention_days: float = 30.0
    max_records: int = 5_000_000
    instance: str = field(default_factory=socket.gethostname)
    max_body: int = MAX_BODY
    # Canonical DNs (identity.canonical_dns): who may store records, who may read them.
    writer_dns: frozenset[str] = frozenset()
    reader_dns: frozenset[str] = frozenset()
    source_limit: int = 1000
    source_window: float = 60.0

    @classmethod
    def load(cls, path: Path) -> LoggerConfig:
        data = json.loads(path.read_text())
        return cls(
            database=Path(data["database"]),
            retention_days=float(data.get("retention_days", 30)),
            max_records=int(data.get("max_records", 5_000_000)),
            instance=data.get("instance") or socket.gethostname(),
            writer_dns=canonical_dns(data.get("writer_dns", [])),
            reader_dns=canonical_dns(data.get("reader_dns", [])),
            source_limit=int(data.get("source_limit", 1000)),
            source_window=float(data.get("source_window", 60)),
        )


def _text(value: Any, limit: int = FIELD_LIMIT) -> str | None:
    return None if value is None else str(value)[:limit]


def _number(value: Any, kind: type = float) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def normalise(fields: dict[str, Any], host: str | None = None) -> tuple:
    """A record from a LogRecord's fields, bounded; unknown fields are dropped."""
    panda_id = _number(fields.get("PandaID"), int)
    message = fields.get("message", fields.get("msg"))
    return (
        time.time(),
        _number(fields.get("created")),
        panda_id if panda_id is not None else -1,
        _text(fields.get("name")),
        _text(fields.get("levelname"), 16),
        _text(message, MESSAGE_LIMIT),
        _text(fields.get("ID") or fields.get("filename")),
        _text(fields.get("Type")),
        _text(fields.get("User")),
        _text(host),
    )


class Logger:
    def __init__(self, config: LoggerConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._last_prune = 0.0
        self._prune_lock = threading.Lock()
        with self.db() as db:
            db.executescript(SCHEMA)

    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.config.database, timeout=5.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def store(self, records: list[tuple], source: str = "") -> None:
        """Store a batch, counted against its source's bound (429 when over, nothing
        stored): one count per source and window, kept in the same transaction, so
        that every process of the logger sees the same count."""
        db = self.db()
        db.execute("BEGIN IMMEDIATE")
        try:
            self.count(db, source, len(records))
            db.executemany(
                "INSERT INTO records (received, created, panda_id, name, levelname, message,"
                " source, type, user, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                records,
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.maybe_prune()

    def count(self, db: sqlite3.Connection, source: str, n: int) -> None:
        window = self.config.source_window
        start = time.time() // window * window
        row = db.execute(
            "SELECT window_start, stored FROM sources WHERE source = ?", (source,)
        ).fetchone()
        stored = row["stored"] if row is not None and row["window_start"] == start else 0
        if n > self.config.source_limit:  # no wait would let it in
            raise HttpError(413, f"at most {self.config.source_limit} records per request")
        if stored + n > self.config.source_limit:
            wait = str(max(1, int(start + window - time.time()) + 1))
            raise HttpError(
                429,
                f"over {self.config.source_limit} records in {window:g} s from {source}",
                (("Retry-After", wait),),
            )
        db.execute(
            "INSERT INTO sources (source, window_start, stored) VALUES (?, ?, ?)"
            " ON CONFLICT (source) DO UPDATE SET window_start = excluded.window_start,"
            " stored = excluded.stored",
            (source, start, stored + n),
        )

    def maybe_prune(self, now: float | None = None) -> int:
        """Drop records past the retention age and beyond the count, once a minute."""
        now = time.time() if now is None else now
        if now - self._last_prune < PRUNE_EVERY or not self._prune_lock.acquire(blocking=False):
            return 0
        try:
            self._last_prune = now
            db = self.db()
            cutoff = now - self.config.retention_days * 86400
            dropped = db.execute("DELETE FROM records WHERE received < ?", (cutoff,)).rowcount
            db.execute(
                "DELETE FROM sources WHERE window_start < ?", (now - self.config.source_window,)
            )
            row = db.execute("SELECT MAX(id) AS top FROM records").fetchone()
            if row["top"] is not None:
                floor = row["top"] - self.config.max_records
                dropped += db.execute("DELETE FROM records WHERE id <= ?", (floor,)).rowcount
            return dropped
        finally:
            self._prune_lock.release()

    def records(self, panda_id: int, limit: int) -> list[dict[str, Any]]:
        rows = self.db().execute(
            "SELECT created, received, name, levelname, message, source, type, host"
            " FROM records WHERE panda_id = ? ORDER BY id LIMIT ?",
            (panda_id, limit),
        )
        return [dict(row) for row in rows]

    # -- WSGI -------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        request = Request(environ, self.config.max_body)
        headers = [("X-Served-By", self.config.instance)]
        try:
            if request.path == "/logger/isAlive":
                return respond(start_response, 200, b"alive=yes", "text/plain", headers)
            dn = client_dn(environ, frozenset())
            if request.path == "/logger/logger/query":
                if not member(dn, self.config.writer_dns):
                    raise HttpError(403, "records come only from the facility's identities")
                self.store(self.incoming(request), f"{dn} at {request.remote_addr}")
                return respond_json(start_response, {"success": True}, headers=headers)
            if request.path == "/logger/records" and request.method == "GET":
                if not member(dn, self.config.reader_dns):
                    raise HttpError(
                        403, "records are read through the monitor, or by the operators"
                    )
                query = parse_qs(str(environ.get("QUERY_STRING", "")))
                panda_id = _number((query.get("panda_id") or [""])[-1], int)
                limit = _number((query.get("limit") or ["1000"])[-1], int)
                if panda_id is None or limit is None or not 1 <= limit <= 10000:
                    raise HttpError(400, "panda_id must be an integer, limit 1 to 10000")
                data = self.records(panda_id, limit)
                return respond_json(
                    start_response, {"success": True, "data": data}, headers=headers
                )
            raise HttpError(404, f"no {request.method} {request.path}")
        except HttpError as exc:
            body = {"success": False, "message": exc.message}
            return respond_json(start_response, body, exc.status, [*headers, *exc.headers])

    def incoming(self, request: Request) -> list[tuple]:
        if request.method == "GET":
            query = {
                k: v[-1] for k, v in parse_qs(str(request.environ.get("QUERY_STRING", ""))).items()
            }
            if not query:
                raise HttpError(400, "no record in the query string")
            return [normalise(query, request.remote_addr)]
        if request.method != "POST":
            raise HttpError(405, "GET or POST")
        try:
            batch = safejson.loads(request.body() or b"null")
        except ValueError as exc:
            raise HttpError(400, f"body is not valid JSON: {exc}") from exc
        if not isinstance(batch, list) or not batch:
            raise HttpError(400, "body must be a non-empty JSON array of records")
        if len(batch) > MAX_RECORDS_PER_POST:
            raise HttpError(413, f"at most {MAX_RECORDS_PER_POST} records per request")
        records = []
        for item in batch:
            if not isinstance(item, dict) or not isinstance(item.get("body"), str):
                raise HttpError(400, 'each record must be {"headers": {...}, "body": "<JSON>"}')
            try:
                fields = safejson.loads(item["body"])
            except ValueError as exc:
                raise HttpError(400, f"a record's body is not JSON: {exc}") from exc
            if not isinstance(fields, dict):
                raise HttpError(400, "a record's body must be a JSON object")
            head = item.get("headers") if isinstance(item.get("headers"), dict) else {}
            records.append(normalise(fields, head.get("host") or request.remote_addr))
        return records


# The mod_wsgi entry point: one Logger per process, built on the first request.
application = lazy_application("PANDA_LOGGER_CONFIG", lambda path: Logger(LoggerConfig.load(path)))
