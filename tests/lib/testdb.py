#!/usr/bin/env python3
"""A throwaway MariaDB for the package's tests: the lab's node image (Debian's
mariadb-server) in one systemd container on a docker network of its own, a database
and a user with a fresh password. Tests talk to it over that network; nothing else.

    python tests/lib/testdb.py up     # prints the connection settings as JSON
    python tests/lib/testdb.py down
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import lab

CONTAINER = "panda-testdb"
NETWORK, SUBNET, ADDRESS = "panda-testdb", "172.28.50.0/24", "172.28.50.10"
DATABASE, USER = "panda_test", "panda_test"
SERVER_CNF = "[mariadbd]\nbind-address = 0.0.0.0\ninnodb_buffer_pool_size = 64M\n"


def sh(*cmd: str, stdin: str | None = None) -> str:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"testdb: {' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc.stdout


def in_db(*cmd: str, stdin: str | None = None) -> str:
    return sh("docker", "exec", "-i", CONTAINER, *cmd, stdin=stdin)


def up() -> dict[str, object]:
    """Start (or restart) the container and return fresh connection settings."""
    lab.ensure_docker()
    lab.ensure_images()
    down()
    sh("docker", "network", "create", "--subnet", SUBNET, NETWORK)
    sh(
        "docker", "run", "-d", "--name", CONTAINER, "--hostname", CONTAINER,
        "--network", NETWORK, "--ip", ADDRESS, *lab.SYSTEMD_RUN_FLAGS,
        f"{lab.NODE_IMAGE}:latest", "/lib/systemd/systemd",
    )  # fmt: skip
    lab.wait_booted([CONTAINER])
    in_db("tee", "/etc/mysql/mariadb.conf.d/99-testdb.cnf", stdin=SERVER_CNF)
    in_db("systemctl", "start", "mariadb")
    password = secrets.token_urlsafe(18)
    sql = (
        f"CREATE DATABASE {DATABASE};"
        f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{password}';"
        f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'%';"
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            in_db("mariadb", "-e", sql)
            break
        except SystemExit:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    return {"host": ADDRESS, "port": 3306, "name": DATABASE, "user": USER, "password": password}


def down() -> None:
    if not lab.docker_ready():
        return
    subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True)
    subprocess.run(["docker", "network", "rm", NETWORK], capture_output=True)


def main(argv: list[str]) -> int:
    if argv == ["up"]:
        print(json.dumps(up()))
    elif argv == ["down"]:
        down()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
