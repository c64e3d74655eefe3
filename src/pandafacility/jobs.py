"""Jobs in the database: submission, atomic dispatch to pilots, state changes, and the
reaper for jobs whose pilot went silent. The web layers (legacy form protocol and the
JSON API) translate requests into these calls; every rule about job states is here.

States: defined -> activated -> sent -> starting -> running [-> holding ->
transferring] -> finished | failed | cancelled (holding: the pilot retries its
stage-out; transferring: its outputs are on their way; both still the pilot's). A
pilot may report a later state directly (sent -> running), repeat the current one (a
heartbeat), or end a job; nothing leaves a final state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pandafacility import reports

STATES = (
    "defined", "activated", "sent", "starting", "running", "holding", "transferring",
    "finished", "failed", "cancelled",
)  # fmt: skip
FINAL = frozenset({"finished", "failed", "cancelled"})
ACTIVE = frozenset({"sent", "starting", "running", "holding", "transferring"})
UNDISPATCHED = frozenset({"defined", "activated"})  # no pilot holds these
_ORDER = {state: index for index, state in enumerate(STATES)}


def can_move(old: str, new: str) -> bool:
    """Whether a job in state ``old`` may be put in state ``new``.

    Forward moves along the chain are allowed, so a pilot that skips "starting" is
    fine; a job being dispatched or run may also go back to "activated" (the reaper
    does that when its pilot is lost) or be cancelled; repeating the current state is
    a heartbeat. Final states are final.
    """
    if old not in _ORDER or new not in _ORDER or old in FINAL:
        return False
    if new == old:
        return old in ACTIVE
    if new == "cancelled":
        return True
    if new == "activated":
        return old in ACTIVE or old == "defined"
    return _ORDER[new] > _ORDER[old] and new != "defined"


class JobError(ValueError):
    """A request about jobs that cannot be honoured (unknown job, bad state...)."""


class NotThisDispatch(JobError):
    """A pilot's report for an attempt that is not (or no longer) the job's dispatch:
    the job was never handed out, or the reaper gave it to another pilot."""


@dataclass(frozen=True)
class NewJob:
    job_name: str
    computing_site: str
    transformation: str = ""
    job_parameters: str = ""
    prod_source_label: str = "managed"
    current_priority: int = 1000
    job_definition_id: int = 0
    vo: str = "atlas"
    max_attempt: int = 3
    core_count: int | None = None
    max_walltime: int | None = None
    spec: dict[str, Any] = field(default_factory=dict)


def _log_states(cur: Any, ids: list[int], state: str) -> None:
    if ids:
        cur.executemany(
            "INSERT INTO job_states (panda_id, job_status, computing_site, changed_at)"
            " SELECT panda_id, job_status, computing_site, UTC_TIMESTAMP(6) FROM jobs"
            " WHERE panda_id = %s AND job_status = %s",
            [(i, state) for i in ids],
        )


def submit(conn: Any, jobs: list[NewJob], owner_dn: str) -> list[int]:
    """Store new jobs, ready for dispatch (nothing here waits for input data), and
    return their PandaIDs in order. All or nothing."""
    ids = []
    with conn.cursor() as cur:
        for job in jobs:
            cur.execute(
                "INSERT INTO jobs (job_definition_id, job_name, prod_source_label,"
                " transformation, job_parameters, computing_site, current_priority,"
                " job_status, owner_dn, vo, max_attempt, core_count, max_walltime,"
                " creation_time, modification_time, state_changed_time, spec)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, 'activated', %s, %s, %s, %s, %s,"
                " UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), %s)",
                (
                    job.job_definition_id,
                    job.job_name,
                    job.prod_source_label,
                    job.transformation,
                    job.job_parameters,
                    job.computing_site,
                    job.current_priority,
                    owner_dn,
                    job.vo,
                    job.max_attempt,
                    job.core_count,
                    job.max_walltime,
                    json.dumps(job.spec),
                ),
            )
            ids.append(cur.lastrowid)
        _log_states(cur, ids, "activated")
    conn.commit()
    return ids


def acquire(conn: Any, site: str, n_jobs: int, pilot_id: str = "", node: str = "") -> list[dict]:
    """Hand up to ``n_jobs`` activated jobs of one queue to a pilot: highest priority
    first, then oldest. Rows locked by another server's concurrent acquire are skipped,
    not waited for, so two pilots never receive the same job and neither blocks."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT panda_id FROM jobs WHERE computing_site = %s AND job_status = 'activated'"
            " ORDER BY current_priority DESC, panda_id ASC LIMIT %s FOR UPDATE SKIP LOCKED",
            (site, max(1, n_jobs)),
        )
        ids = [row["panda_id"] for row in cur.fetchall()]
        if not ids:
            conn.rollback()
            return []
        marks = ", ".join(["%s"] * len(ids))
        cur.execute(
            "UPDATE jobs SET job_status = 'sent', modification_time = UTC_TIMESTAMP(6),"
            " state_changed_time = UTC_TIMESTAMP(6), heartbeat_time = UTC_TIMESTAMP(6),"
            f" pilot_id = %s, node = %s WHERE panda_id IN ({marks})",
            (pilot_id[:255], node[:255], *ids),
        )
        _log_states(cur, ids, "sent")
        cur.execute(
            f"SELECT * FROM jobs WHERE panda_id IN ({marks})"
            " ORDER BY current_priority DESC, panda_id ASC",
            ids,
        )
        jobs = list(cur.fetchall())
    conn.commit()
    return jobs


# The columns a pilot's report may set (reports.FIELDS); nothing else, not its state.
UPDATABLE = frozenset(reports.COLUMNS) | {reports.REPORT_COLUMN}


def update(
    conn: Any,
    panda_id: int,
    state: str,
    values: dict[str, Any] | None = None,
    attempt: int | None = None,
) -> dict:
    """Record a pilot's report on a job: a heartbeat, a new state, or the end. Returns
    the job afterwards. A report on a cancelled job changes nothing and returns it as
    it is (the server then tells the pilot to kill the payload); so does the same final
    state reported again (the first report's values stand). With ``attempt`` (a pilot's
    report), only the dispatch of that attempt may report: NotThisDispatch when the job
    is not dispatched or is on another attempt. Raises JobError for an unknown job or a
    move can_move refuses."""
    values = {k: v for k, v in (values or {}).items() if k in UPDATABLE}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT job_status, attempt_nr FROM jobs WHERE panda_id = %s FOR UPDATE", (panda_id,)
        )
        row = cur.fetchone()
        if row is None:
            conn.rollback()
            raise JobError(f"unknown job {panda_id}")
        old = row["job_status"]
        if attempt is not None and (row["attempt_nr"] != attempt or old in UNDISPATCHED):
            conn.rollback()
            raise NotThisDispatch(
                f"job {panda_id} is {old} on attempt {row['attempt_nr']}: the report of"
                f" attempt {attempt} is not its dispatch's"
            )
        # A report on a cancelled job, or a pilot's final report sent again because its
        # answer was lost: acknowledged with the job as it is.
        if (old == "cancelled" and state in ACTIVE | FINAL) or (old == state and old in FINAL):
            cur.execute("SELECT * FROM jobs WHERE panda_id = %s", (panda_id,))
            job = cur.fetchone()
            conn.rollback()
            return job
        if not can_move(old, state):
            conn.rollback()
            raise JobError(f"job {panda_id} is {old}: cannot become {state}")
        sets = ["job_status = %s", "modification_time = UTC_TIMESTAMP(6)"]
        args: list[Any] = [state]
        if state in ACTIVE:
            sets.append("heartbeat_time = UTC_TIMESTAMP(6)")
        if state != old:
            sets.append("state_changed_time = UTC_TIMESTAMP(6)")
        # The pilot's own times when it sent them (the payload's), else the report's.
        if state == "running" and "start_time" not in values:
            sets.append("start_time = COALESCE(start_time, UTC_TIMESTAMP(6))")
        if state in FINAL and state != old and "end_time" not in values:
            sets.append("end_time = UTC_TIMESTAMP(6)")
        for key, value in values.items():
            if key == reports.REPORT_COLUMN:  # merged: a later report adds to the earlier
                sets.append(f"{key} = JSON_MERGE_PATCH(COALESCE({key}, '{{}}'), %s)")
                args.append(json.dumps(value))
                continue
            sets.append(f"{key} = %s")
            args.append(value)
        cur.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE panda_id = %s", (*args, panda_id))
        if state != old:
            _log_states(cur, [panda_id], state)
        cur.execute("SELECT * FROM jobs WHERE panda_id = %s", (panda_id,))
        job = cur.fetchone()
    conn.commit()
    return job


def reap(conn: Any, silent_seconds: int, outage_gap: int = 600) -> dict[str, list[int]]:
    """Jobs whose pilot has not reported for ``silent_seconds``: back to activated for
    another attempt while attempts remain, else failed. Returns the ids of each.

    A pilot that went silent is lost; a facility that heard nobody is not. The contacts
    are the pilots' heartbeats and the factories' reports. When none arrived for
    ``outage_gap`` seconds, nothing reached any server (the load balancers, the servers
    or the database were away): nothing is reaped. When they resume after such a gap,
    every job gets a whole ``silent_seconds`` from then before it counts as lost, so an
    outage never turns into a mass re-dispatch."""
    outcome: dict[str, list[int]] = {"activated": [], "failed": []}
    with conn.cursor() as cur:
        cur.execute("INSERT IGNORE INTO reaper_pulse (id) VALUES (1)")
        cur.execute(
            "SELECT heard_at, outage_end, UTC_TIMESTAMP(6) AS now FROM reaper_pulse"
            " WHERE id = 1 FOR UPDATE"
        )
        pulse = cur.fetchone()
        cur.execute(
            "SELECT GREATEST("
            " COALESCE((SELECT MAX(heartbeat_time) FROM jobs), CAST('1970-01-01' AS DATETIME(6))),"
            " COALESCE((SELECT MAX(cycle_at) FROM pilot_stats), CAST('1970-01-01' AS DATETIME(6)))"
            ") AS heard"
        )
        heard, now = cur.fetchone()["heard"], pulse["now"]
        if (now - heard).total_seconds() > outage_gap:
            conn.commit()  # the facility hears nobody: an outage, not lost pilots
            return outcome
        outage_end = pulse["outage_end"]
        if (
            pulse["heard_at"] is not None
            and (heard - pulse["heard_at"]).total_seconds() > outage_gap
        ):
            outage_end = now  # contacts resumed after a silence of the whole facility
        cur.execute(
            "UPDATE reaper_pulse SET heard_at = %s, outage_end = %s WHERE id = 1",
            (heard, outage_end),
        )
        if outage_end is not None and (now - outage_end).total_seconds() < silent_seconds:
            conn.commit()  # every job gets a whole silent period after the outage
            return outcome
        cur.execute(
            "SELECT panda_id, attempt_nr, max_attempt FROM jobs"
            " WHERE job_status IN ('sent', 'starting', 'running')"
            " AND heartbeat_time < UTC_TIMESTAMP(6) - INTERVAL %s SECOND"
            " FOR UPDATE SKIP LOCKED",
            (silent_seconds,),
        )
        for row in cur.fetchall():
            if row["attempt_nr"] < row["max_attempt"]:
                cur.execute(
                    "UPDATE jobs SET job_status = 'activated', attempt_nr = attempt_nr + 1,"
                    " pilot_id = NULL, node = NULL, heartbeat_time = NULL,"
                    " modification_time = UTC_TIMESTAMP(6), state_changed_time = UTC_TIMESTAMP(6)"
                    " WHERE panda_id = %s",
                    (row["panda_id"],),
                )
                outcome["activated"].append(row["panda_id"])
            else:
                cur.execute(
                    "UPDATE jobs SET job_status = 'failed', pilot_error_diag = %s,"
                    " end_time = UTC_TIMESTAMP(6), modification_time = UTC_TIMESTAMP(6),"
                    " state_changed_time = UTC_TIMESTAMP(6) WHERE panda_id = %s",
                    (f"no heartbeat for {silent_seconds} s on the last attempt", row["panda_id"]),
                )
                outcome["failed"].append(row["panda_id"])
        _log_states(cur, outcome["activated"], "activated")
        _log_states(cur, outcome["failed"], "failed")
    conn.commit()
    return outcome


def kill(conn: Any, ids: list[int], requester_dn: str, production: bool) -> list[bool]:
    """Cancel jobs: a production identity may cancel any, a user only their own.
    One boolean per id: whether it is now cancelled by this call."""
    result = []
    with conn.cursor() as cur:
        for panda_id in ids:
            cur.execute(
                "SELECT job_status, owner_dn FROM jobs WHERE panda_id = %s FOR UPDATE",
                (panda_id,),
            )
            row = cur.fetchone()
            allowed = row is not None and (production or row["owner_dn"] == requester_dn)
            if not allowed or not can_move(row["job_status"], "cancelled"):
                result.append(False)
                continue
            cur.execute(
                "UPDATE jobs SET job_status = 'cancelled', end_time = UTC_TIMESTAMP(6),"
                " modification_time = UTC_TIMESTAMP(6), state_changed_time = UTC_TIMESTAMP(6)"
                " WHERE panda_id = %s",
                (panda_id,),
            )
            _log_states(cur, [panda_id], "cancelled")
            result.append(True)
    conn.commit()
    return result


def queue_activated(conn: Any) -> dict[str, int]:
    """Activated jobs per queue: what the pilot factory scales its pilots by."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT computing_site, COUNT(*) AS n FROM jobs WHERE job_status = 'activated'"
            " GROUP BY computing_site"
        )
        rows = cur.fetchall()
    conn.rollback()
    return {row["computing_site"]: int(row["n"]) for row in rows}


def counts_by_queue_and_state(conn: Any) -> list[tuple[str, str, int]]:
    """(queue, state, jobs) for every pair that has jobs (the dispatch index's prefix)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT computing_site, job_status, COUNT(*) AS n FROM jobs"
            " GROUP BY computing_site, job_status"
        )
        rows = cur.fetchall()
    conn.rollback()
    return [(r["computing_site"], r["job_status"], int(r["n"])) for r in rows]


@dataclass(frozen=True)
class PilotStats:
    """What a pilot factory counted for one queue in one cycle."""

    queue: str
    idle: int
    running: int
    held: int
    submitted_total: int
    last_error: str | None = None


def record_pilot_stats(conn: Any, submit_host: str, stats: list[PilotStats]) -> None:
    """A factory's cycle: the current figures per (queue, host), and their history."""
    with conn.cursor() as cur:
        for s in stats:
            cur.execute(
                "INSERT INTO pilot_stats (queue, submit_host, idle, running, held,"
                " submitted_total, last_error, cycle_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6))"
                " ON DUPLICATE KEY UPDATE idle = VALUES(idle), running = VALUES(running),"
                " held = VALUES(held), submitted_total = VALUES(submitted_total),"
                " last_error = VALUES(last_error), cycle_at = VALUES(cycle_at)",
                (s.queue, submit_host, s.idle, s.running, s.held, s.submitted_total,
                 s.last_error),
            )  # fmt: skip
        cur.executemany(
            "INSERT INTO pilot_stats_history (queue, submit_host, idle, running, held, at)"
            " VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6))",
            [(s.queue, submit_host, s.idle, s.running, s.held) for s in stats],
        )
    conn.commit()
