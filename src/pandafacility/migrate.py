"""Apply the schema migrations in pandafacility/schema to the PanDA database, once.

Several servers may start at the same time: a named lock (GET_LOCK) lets one apply
what is missing while the others wait and then find nothing to do. Each applied
migration is recorded with a checksum of its text; a released migration that was
edited afterwards stops the run rather than leaving two databases that claim the same
version with different schemas.

The schema belongs to the database: the mariadb role applies it on the primary, over
the local socket as the OS user root (the application's account may not change
tables). A server checks, with its own settings, that nothing is missing:

    python3 -m pandafacility.migrate --socket /run/mysqld/mysqld.sock --database panda
    python3 -m pandafacility.migrate --config /etc/panda-facility/server.json --check

Prints {"applied": [versions]} as JSON (empty when the schema was current), or with
--check {"pending": [versions]} and exits 3 when some are.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pandafacility.db import DbSettings, connect

LOCK = "pandafacility.migrate"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The database and the migrations in the package disagree."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """Statements end with a semicolon at the end of a line; comments are dropped."""
        lines = [line for line in self.sql.splitlines() if not line.lstrip().startswith("--")]
        parts = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
        return [part.strip() for part in parts if part.strip()]


def available() -> list[Migration]:
    found = []
    for entry in resources.files("pandafacility.schema").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"two migrations share a version: {sorted(versions)}")
    return sorted(found, key=lambda m: m.version)


def migrate(conn: Any, migrations: list[Migration] | None = None, wait: int = 60) -> list[int]:
    """Apply what is missing; return the versions applied now."""
    migrations = available() if migrations is None else migrations
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, %s) AS got", (LOCK, wait))
        if cur.fetchone()["got"] != 1:
            raise MigrationError(f"another migration held the lock for {wait} s")
        try:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INT NOT NULL PRIMARY KEY, name VARCHAR(200) NOT NULL,"
                " checksum CHAR(64) NOT NULL, applied_at DATETIME(6) NOT NULL)"
            )
            cur.execute("SELECT version, checksum FROM schema_migrations")
            done = {row["version"]: row["checksum"] for row in cur.fetchall()}
            applied = []
            for migration in migrations:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name} changed after "
                            "it was applied: add a new migration instead of editing it"
                        )
                    continue
                # DDL commits by itself in MariaDB: each statement is written to be
                # re-runnable (IF NOT EXISTS), so a migration cut short can run again.
                for statement in migration.statements():
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, %s, UTC_TIMESTAMP(6))",
                    (migration.version, migration.name, migration.checksum),
                )
                conn.commit()
                applied.append(migration.version)
            return applied
        finally:
            cur.execute("SELECT RELEASE_LOCK(%s)", (LOCK,))


def pending(conn: Any, migrations: list[Migration] | None = None) -> list[int]:
    """The versions not applied yet (all of them where nothing was)."""
    migrations = available() if migrations is None else migrations
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) AS n FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'"
        )
        done: set[int] = set()
        if cur.fetchone()["n"]:
            cur.execute("SELECT version FROM schema_migrations")
            done = {row["version"] for row in cur.fetchall()}
    return [m.version for m in migrations if m.version not in done]


def _connect(args: argparse.Namespace) -> Any:
    if args.socket:
        import pymysql

        # The OS user's own account (unix_socket authentication).
        return pymysql.connect(
            unix_socket=args.socket,
            database=args.database,
            charset="utf8mb4",
            cursorclass=pymysql.cursors.DictCursor,
        )
    return connect(DbSettings.from_dict(json.loads(args.config.read_text())["database"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="a service's JSON settings")
    where.add_argument("--socket", help="the server's local socket (as the OS user)")
    parser.add_argument("--database", default="panda", help="with --socket")
    parser.add_argument("--check", action="store_true", help="only list what is missing")
    args = parser.parse_args(argv)
    conn = _connect(args)
    try:
        if args.check:
            missing = pending(conn)
            print(json.dumps({"pending": missing}))
            if missing:
                names = ", ".join(f"{v:04d}" for v in missing)
                print(
                    f"migrate: the database lacks migration(s) {names}: apply them on the"
                    " primary first (site.yml's database play, --tags database)",
                    file=sys.stderr,
                )
                return 3
            return 0
        applied = migrate(conn)
    except MigrationError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    print(json.dumps({"applied": applied}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
