"""How the PanDA services reach MariaDB: settings read from the file the roles
template, and one function that opens a connection with them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DbSettings:
    host: str = "127.0.0.1"
    port: int = 3306
    name: str = "panda"
    user: str = "panda_rw"
    password: str = ""
    ssl_ca: str = ""  # verify the server's certificate and name against this CA
    connect_timeout: float = 5.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DbSettings:
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
    return pymysql.connect(
        host=settings.host,
        port=settings.port,
        user=settings.user,
        password=settings.password,
        database=settings.name,
        ssl=ssl,
        connect_timeout=settings.connect_timeout,
        autocommit=autocommit,
        charset="utf8mb4",
        cursorclass=pymysql.cursors.DictCursor,
    )
