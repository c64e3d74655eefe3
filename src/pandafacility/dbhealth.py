"""Whether a server should stay behind the load balancer, as far as the database goes.

A server whose own path to the database is broken (no database host answers it at all,
its TLS trust or its account is refused) should leave the pool: the others can serve.
A database that is away for every server (restarting, paused, its host down while the
other database hosts answer) is no reason to take a server out: all of them would go,
and clients would get the load balancer's bare 503 instead of the servers' 503 with
Retry-After. The load balancer's health check asks this on every server
(GET /api/v1/system/health), so the check must answer within its interval: every step
here is bounded by a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pandafacility.db import DbSettings, connect, unavailable

# The server refuses this account from this address (or its database): only this
# server's settings or the database's accounts can fix that.
REFUSED_LOGIN = frozenset({1044, 1045, 1130, 1698})


@dataclass(frozen=True)
class Verdict:
    in_service: bool
    database: str  # ok | unavailable to every server | unreachable from this server | ...
    detail: str = ""


def check(settings: DbSettings, witnesses: Sequence[str], timeout: float = 0.3) -> Verdict:
    """One short connection and ``SELECT 1``; when that fails, whether any database host
    (the primary or a ``witnesses`` address) accepts a TCP connection from here."""
    quick = dataclasses.replace(
        settings, connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout
    )
    try:
        conn = connect(quick, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            conn.close()
        return Verdict(True, "ok")
    except Exception as exc:
        code = exc.args[0] if exc.args else None
        if code in REFUSED_LOGIN:
            return Verdict(False, "refuses this server's account", str(exc))
        if isinstance(getattr(exc, "original_exception", None), ssl.SSLError):
            return Verdict(False, "TLS with the database fails from this server", str(exc))
        if not unavailable(exc):
            raise
        if reachable([settings.host, *witnesses], settings.port, timeout):
            return Verdict(True, "unavailable to every server", str(exc))
        return Verdict(False, "unreachable from this server", str(exc))


def reachable(hosts: Sequence[str], port: int, timeout: float) -> bool:
    """Whether any of ``hosts`` accepts a TCP connection on ``port`` (tried at once)."""
    hosts = list(dict.fromkeys(hosts))
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        return any(pool.map(lambda host: _connects(host, port, timeout), hosts))


def _connects(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout):
            return True
    except OSError:
        return False
