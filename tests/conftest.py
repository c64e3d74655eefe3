"""Shared by the controller-side tests: paths, loading of the collection's plugins, and
the throwaway MariaDB that the package's database tests use."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "src"))


def load_plugin(kind: str, name: str) -> ModuleType:
    """Import plugins/<kind>/<name>.py the way Ansible would: as a plain module file."""
    path = ROOT / "plugins" / kind / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"facility_{kind}_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def testdb_settings() -> Iterator[dict]:
    """Connection settings of a fresh MariaDB (tools/testdb.py), removed afterwards."""
    import testdb

    params = testdb.up()
    yield params
    testdb.down()


@pytest.fixture
def clean_db(testdb_settings) -> Iterator:
    """A connection to the test database with the schema current and no jobs in it."""
    from pandafacility import migrate
    from pandafacility.db import DbSettings, connect

    conn = connect(DbSettings.from_dict(testdb_settings))
    migrate.migrate(conn)
    with conn.cursor() as cur:
        for table in ("jobs", "job_states", "pilot_stats"):
            cur.execute(f"DELETE FROM {table}")
    conn.commit()
    yield conn
    conn.close()
