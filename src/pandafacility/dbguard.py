"""Slow-query guard: find queries that run too long, log them, mail them, kill them.

The papers' operators ran this by cron; here it is a small daemon per database host.
Each cycle reads the process list over the local socket (authenticated as the OS
account it runs as, so it holds no password), picks the queries that break the rules,
writes one line per query to a log an operator reads, sends one mail per cycle, and
kills each query (KILL QUERY: the client's connection survives, its statement fails).

    python3 -m pandafacility.dbguard --config /etc/panda-facility/db-guard.json [--once]

SIGHUP rereads the settings; SIGTERM stops after the current cycle.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

QUERY_SHOWN = 2000  # characters of query text kept in the log and the mail


@dataclass(frozen=True)
class Settings:
    socket: str = "/run/mysqld/mysqld.sock"
    threshold: int = 60
    interval: int = 5
    kill: bool = True
    commands: tuple[str, ...] = ("Query",)
    match_users: tuple[str, ...] = ()
    ignore_users: tuple[str, ...] = ("system user", "event_scheduler")
    match_query: str = ""
    log: str = "/var/log/panda/slow-query-guard.log"
    mail_to: tuple[str, ...] = ()
    mail_from: str = "panda-db-guard@localhost"

    @classmethod
    def load(cls, path: Path) -> Settings:
        raw: dict[str, Any] = json.loads(path.read_text())
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
        for key in ("commands", "match_users", "ignore_users", "mail_to"):
            if key in raw:
                raw[key] = tuple(raw[key])
        settings = cls(**raw)
        if settings.threshold < 1 or settings.interval < 1:
            raise ValueError(f"{path}: threshold and interval must be at least 1 second")
        re.compile(settings.match_query)
        return settings


@dataclass(frozen=True)
class Process:
    """One row of information_schema.PROCESSLIST."""

    id: int
    user: str
    host: str
    db: str | None
    command: str
    time: float
    info: str | None = field(default=None)


def offenders(processes: list[Process], settings: Settings, own_id: int) -> list[Process]:
    """The processes the rules say to report and kill, longest-running first."""
    pattern = re.compile(settings.match_query, re.IGNORECASE | re.DOTALL)
    chosen = [
        p
        for p in processes
        if p.id != own_id
        and p.info
        and p.command in settings.commands
        and p.time >= settings.threshold
        and p.user not in settings.ignore_users
        and (not settings.match_users or p.user in settings.match_users)
        and pattern.search(p.info)
    ]
    return sorted(chosen, key=lambda p: -p.time)


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())[:QUERY_SHOWN]


def log_line(p: Process, action: str, now: datetime) -> str:
    return (
        f"{now.strftime('%Y-%m-%dT%H:%M:%SZ')} {action} id={p.id} user={p.user} "
        f"host={p.host} db={p.db or '-'} time={p.time:.0f}s query={one_line(p.info)!r}"
    )


def mail(settings: Settings, lines: list[str], hostname: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = (
        f"[panda-db-guard] {len(lines)} slow quer{'y' if len(lines) == 1 else 'ies'} on {hostname}"
    )
    msg["From"] = settings.mail_from
    msg["To"] = ", ".join(settings.mail_to)
    msg.set_content(
        f"Queries on {hostname} that ran longer than {settings.threshold} s:\n\n"
        + "\n".join(lines)
        + "\n"
    )
    return msg


def send(msg: EmailMessage) -> None:
    """Hand the mail to the host's MTA, which queues it if the relay is down."""
    subprocess.run(
        ["/usr/sbin/sendmail", "-t", "-oi"], input=msg.as_bytes(), check=True, timeout=30
    )


class Guard:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.settings = Settings.load(config)
        self.reload = False
        self.stop = False

    def connect(self):  # noqa: ANN201 - a pymysql connection
        import pymysql  # the OS package python3-pymysql; imported late for unit tests

        return pymysql.connect(unix_socket=self.settings.socket, autocommit=True)

    def processes(self, conn) -> tuple[list[Process], int]:  # noqa: ANN001
        with conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            own = int(cur.fetchone()[0])
            cur.execute(
                "SELECT ID, USER, HOST, DB, COMMAND, TIME_MS / 1000, INFO "
                "FROM information_schema.PROCESSLIST"
            )
            rows = [Process(int(r[0]), r[1], r[2], r[3], r[4], float(r[5]), r[6]) for r in cur]
        return rows, own

    def cycle(self, conn, hostname: str) -> list[str]:  # noqa: ANN001
        rows, own = self.processes(conn)
        lines = []
        now = datetime.now(timezone.utc)
        for p in offenders(rows, self.settings, own):
            action = "KILLED" if self.settings.kill else "FOUND"
            if self.settings.kill:
                with conn.cursor() as cur:
                    try:
                        cur.execute("KILL QUERY %s", (p.id,))
                    except Exception as exc:  # the query may have ended meanwhile
                        action = f"KILL-FAILED({exc.args[0] if exc.args else exc})"
            lines.append(log_line(p, action, now))
        if lines:
            with open(self.settings.log, "a", encoding="utf-8") as log:
                log.write("\n".join(lines) + "\n")
            if self.settings.mail_to:
                try:
                    send(mail(self.settings, lines, hostname))
                except (OSError, subprocess.SubprocessError) as exc:
                    print(f"dbguard: mail failed: {exc}", file=sys.stderr, flush=True)
        return lines

    def run(self, once: bool = False) -> None:
        import socket

        hostname = socket.getfqdn()
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "reload", True))
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop", True))
        conn = None
        while not self.stop:
            if self.reload:
                self.settings, self.reload = Settings.load(self.config), False
                print("dbguard: settings reloaded", flush=True)
            try:
                conn = conn or self.connect()
                self.cycle(conn, hostname)
            except Exception as exc:  # the server restarting must not end the guard
                print(f"dbguard: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                conn = None
            if once:
                return
            time.sleep(self.settings.interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--once", action="store_true", help="one cycle, then exit")
    args = parser.parse_args(argv)
    Guard(args.config).run(once=args.once)
    return 0


if __name__ == "__main__":
    sys.exit(main())
