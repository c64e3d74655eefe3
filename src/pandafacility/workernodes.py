"""What pilots report of the machines they run on and of their own start and end
(pilot3's /api/v1/pilot/update_worker_node and update_worker_status), checked field by
field and kept as the latest report per worker node and per pilot."""

from __future__ import annotations

from typing import Any

from pandafacility.reports import BIG, INT
from pandafacility.web import HttpError

# field: (kind, limit) - text (limit: its length), int (the column's bound) or float.
NODE_REQUIRED = ("site", "host_name", "cpu_model")
NODE_FIELDS: dict[str, tuple[str, int]] = {
    "site": ("text", 128),
    "host_name": ("text", 255),
    "cpu_model": ("text", 128),
    "panda_queue": ("text", 128),
    "n_logical_cpus": ("int", INT),
    "n_sockets": ("int", INT),
    "cores_per_socket": ("int", INT),
    "threads_per_core": ("int", INT),
    "cpu_architecture": ("text", 20),
    "cpu_architecture_level": ("text", 20),
    "clock_speed": ("float", BIG),
    "total_memory": ("int", BIG),
    "total_local_disk": ("int", BIG),
}
WORKER_STATES = ("started", "finished")


def node_values(fields: dict[str, Any]) -> dict[str, Any]:
    """The worker_nodes columns of a report; a missing required field or a value of the
    wrong kind is a 400 naming it. A whole number sent as a float (pilot3's memory)
    counts as an integer."""
    values: dict[str, Any] = {}
    for name, (kind, limit) in NODE_FIELDS.items():
        value = fields.get(name)
        if value is None or value == "":
            if name in NODE_REQUIRED:
                raise HttpError(400, f"{name} is required")
            continue
        values[name] = _checked(name, value, kind, limit)
    return values


def _checked(name: str, value: Any, kind: str, limit: int) -> Any:
    if kind == "text":
        if not isinstance(value, str) or len(value) > limit:
            raise HttpError(400, f"{name} must be a string of at most {limit} characters")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HttpError(400, f"{name} must be a number")
    if not -limit < value < limit or value != value:  # NaN is not equal to itself
        raise HttpError(400, f"{name} is out of range")
    if kind == "int":
        if value != int(value):
            raise HttpError(400, f"{name} must be a whole number")
        return int(value)
    return float(value)


def record_node(conn: Any, values: dict[str, Any], reporter: str) -> bool:
    """Insert or refresh a node's row; whether it was new."""
    columns = [*values, "reported_by", "last_seen"]
    marks = ", ".join(["%s"] * len(values) + ["%s", "UTC_TIMESTAMP(6)"])
    updates = ", ".join(f"{c} = VALUES({c})" for c in columns if c not in NODE_REQUIRED)
    with conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO worker_nodes ({', '.join(columns)}) VALUES ({marks})"
            f" ON DUPLICATE KEY UPDATE {updates}",
            [*values.values(), reporter],
        )
        new = cur.rowcount == 1  # MariaDB: 1 inserted, 2 updated, 0 unchanged
    conn.commit()
    return new


def record_worker(
    conn: Any, harvester_id: str, worker_id: int, status: str, node_id: str | None, reporter: str
) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO pilot_workers VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6))"
            " ON DUPLICATE KEY UPDATE status = VALUES(status), node_id = VALUES(node_id),"
            " reported_by = VALUES(reported_by), updated_at = VALUES(updated_at)",
            (harvester_id, worker_id, status, node_id, reporter),
        )
    conn.commit()
