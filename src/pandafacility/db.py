"""How the PanDA services reach MariaDB: settings read from the file the roles
template, and one function that opens a connection with them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DbSettings:
    host: str = "127.0.0.1"
    port: int = 3306
    name: str = "panda"
    user: str = "panda_rw"
    password: str = ""
    ssl_ca: str = ""  # verify the server's certificate and name against this CA
    # The TCP connect, then the server's greeting, TLS and login: a server that takes
    # longer is away.
    connect_timeout: float = 5.0
    # The round trip that checks a kept connection before a request uses it.
    check_timeout: float = 2.0
    # Seconds any one read or write on the connection may take (None: no bound). A
    # paused or unreachable server then fails a request within seconds, not minutes.
    read_timeout: float | None = None
    write_timeout: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DbSettings:
        """The settings; ``password_file`` names a file holding the password (the
        settings themselves then hold no secret)."""
        data = dict(data)
        if "password_file" in data:
            path = Path(str(data.pop("password_file")))
            data["password"] = path.read_text().rstrip("\n")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown database settings: {', '.join(sorted(unknown))}")
        return cls(**data)


def connect(settings: DbSettings, autocommit: bool = False) -> Any:
    """A PyMySQL connection (the OS package on the hosts, imported here so that modules
    without a database need no driver)."""
    import pymysql

    ssl = {"ca": settings.ssl_ca, "check_hostname": True} if settings.ssl_ca else None
    # PyMySQL reads the greeting and the login under its read timeout: connect_timeout
    # bounds them (a frozen server would otherwise hold a request for read_timeout),
    # then the settings' own timeouts bound every later read and write.
    conn = pymysql.connect(
        host=settings.host,
        port=settings.port,
        user=settings.user,
        password=settings.password,
        database=settings.name,
        ssl=ssl,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.connect_timeout,
        write_timeout=settings.connect_timeout,
        autocommit=autocommit,
        charset="utf8mb4",
        cursorclass=pymysql.cursors.DictCursor,
    )
    conn._read_timeout, conn._write_timeout = settings.read_timeout, settings.write_timeout
    return conn


def ping(conn: Any, timeout: float) -> None:
    """One round trip on a kept connection, within ``timeout`` seconds; raises when the
    server does not answer."""
    saved = conn._read_timeout, conn._write_timeout
    conn._read_timeout = conn._write_timeout = timeout
    try:
        conn.ping(reconnect=False)
    finally:
        conn._read_timeout, conn._write_timeout = saved


# Server error numbers of a database that is away, busy or no longer the primary.
TRANSIENT_ERRORS = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1152, 1153, 1158, 1159, 1160, 1161,  # network read/write errors, packets too large
        1184,  # aborted new connection
        1205,  # lock wait timeout
        1213,  # deadlock
        1290,  # read-only (a replica, or a primary being fenced)
        1317,  # query interrupted (the slow-query guard)
        1927,  # connection killed
        1969,  # statement timeout
        2002, 2003, 2005, 2006, 2013, 2055,  # client: cannot connect, gone away, lost
    }
)  # fmt: skip


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` is a fault of the database or of the way to it (refused, lost or
    timed-out connection, server shutting down, read-only after a promotion, lock
    timeout, deadlock), which a client may retry later, rather than a fault of the
    request or of the code (a bad statement, a broken constraint, a refused login)."""
    import pymysql

    if isinstance(exc, pymysql.err.InterfaceError):
        return True  # the connection is closed
    if isinstance(exc, (pymysql.err.OperationalError, pymysql.err.InternalError)):
        return bool(exc.args) and exc.args[0] in TRANSIENT_ERRORS
    return False
