"""The job store against a real MariaDB (tests/lib/testdb.py: Debian's mariadb-server in a
container): migrations, dispatch order, atomic dispatch under concurrent pilots, state
rules, the reaper and kill permissions."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from pandafacility import jobs, migrate
from pandafacility.db import DbSettings, connect

PROD = "/DC=ch/DC=cern/OU=Robots/CN=atlas pilot"
USER = "/DC=ch/DC=cern/OU=Users/CN=someone"


@pytest.fixture(scope="module")
def settings(testdb_settings):
    return DbSettings.from_dict(testdb_settings)


@pytest.fixture
def conn(clean_db):
    return clean_db


def new(site: str = "SITE_A", priority: int = 1000, name: str = "job") -> jobs.NewJob:
    return jobs.NewJob(job_name=name, computing_site=site, current_priority=priority)


def test_migrations_apply_once_and_refuse_an_edited_one(conn):
    assert migrate.migrate(conn) == []  # the fixture applied them
    edited = [
        migrate.Migration(m.version, m.name, m.sql + "\n-- edited\n") for m in migrate.available()
    ]
    with pytest.raises(migrate.MigrationError, match="changed after it was applied"):
        migrate.migrate(conn, edited)


def test_pending_lists_what_a_server_would_miss(conn):
    assert migrate.pending(conn) == []
    later = migrate.Migration(9999, "later", "SELECT 1;\n")
    assert migrate.pending(conn, [*migrate.available(), later]) == [9999]


def test_statements_split_at_line_ends():
    m = migrate.Migration(1, "x", "-- c;\nCREATE TABLE a (b TEXT DEFAULT ';');\nSELECT 1;\n")
    assert m.statements() == ["CREATE TABLE a (b TEXT DEFAULT ';')", "SELECT 1"]


def test_dispatch_by_priority_then_age_per_queue(conn):
    low, high, other, high2 = jobs.submit(
        conn,
        [new(priority=10), new(priority=500), new(site="SITE_B", priority=999), new(priority=500)],
        PROD,
    )
    got = jobs.acquire(conn, "SITE_A", 3, pilot_id="p1", node="wn1")
    assert [j["panda_id"] for j in got] == [high, high2, low]
    assert {j["job_status"] for j in got} == {"sent"}
    assert jobs.acquire(conn, "SITE_A", 1) == []
    assert jobs.queue_activated(conn) == {"SITE_B": 1}
    assert other


def test_concurrent_pilots_never_share_a_job(conn, settings):
    ids = jobs.submit(conn, [new(name=f"j{i}") for i in range(100)], PROD)
    taken: list[int] = []
    lock = threading.Lock()

    def pilot() -> None:
        c = connect(settings)
        try:
            for _ in range(200):  # bounded: at most 200 asks per pilot
                got = jobs.acquire(c, "SITE_A", 1)
                if not got:
                    return
                with lock:
                    taken.extend(j["panda_id"] for j in got)
        finally:
            c.close()

    threads = [threading.Thread(target=pilot) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(taken) == sorted(ids)
    assert Counter(taken).most_common(1)[0][1] == 1


@pytest.mark.parametrize(
    "old,new,ok",
    [
        ("activated", "sent", True),
        ("sent", "running", True),
        ("running", "running", True),
        ("running", "finished", True),
        ("finished", "running", False),
        ("failed", "activated", False),
        ("activated", "running", True),
        ("running", "starting", False),
        ("activated", "activated", False),
        ("running", "bogus", False),
    ],
)
def test_state_rules(old, new, ok):
    assert jobs.can_move(old, new) is ok


def test_update_refuses_bad_moves_and_unknown_jobs(conn):
    (pid,) = jobs.submit(conn, [new()], PROD)
    jobs.acquire(conn, "SITE_A", 1)
    job = jobs.update(conn, pid, "running", {"node": "wn7", "job_status": "finished"})
    assert job["job_status"] == "running" and job["node"] == "wn7"
    jobs.update(conn, pid, "finished", {"trans_exit_code": 0})
    again = jobs.update(conn, pid, "finished", {"trans_exit_code": 9})  # its answer was lost
    assert (again["job_status"], again["trans_exit_code"]) == ("finished", 0)
    with pytest.raises(jobs.JobError, match="cannot become failed"):
        jobs.update(conn, pid, "failed")
    with pytest.raises(jobs.JobError, match="cannot become running"):
        jobs.update(conn, pid, "running")
    with pytest.raises(jobs.JobError, match="unknown job"):
        jobs.update(conn, 987654321, "running")
    with conn.cursor() as cur:
        cur.execute("SELECT job_status FROM job_states WHERE panda_id = %s ORDER BY id", (pid,))
        assert [r["job_status"] for r in cur.fetchall()] == [
            "activated",
            "sent",
            "running",
            "finished",
        ]


def factory_reports(conn) -> None:
    """A factory's cycle now: the facility hears its clients."""
    jobs.record_pilot_stats(conn, "submit1", [jobs.PilotStats("SITE_A", 1, 0, 0, 1, "")])


def test_reaper_reactivates_then_fails(conn):
    again, last = jobs.submit(
        conn,
        [new(name="again"), jobs.NewJob(job_name="last", computing_site="SITE_A", max_attempt=1)],
        PROD,
    )
    jobs.acquire(conn, "SITE_A", 2)
    with conn.cursor() as cur:
        cur.execute("UPDATE jobs SET heartbeat_time = UTC_TIMESTAMP(6) - INTERVAL 1 HOUR")
    conn.commit()
    factory_reports(conn)
    assert jobs.reap(conn, 600) == {"activated": [again], "failed": [last]}
    (job,) = jobs.acquire(conn, "SITE_A", 5)
    assert job["panda_id"] == again and job["attempt_nr"] == 2


def test_reaper_tells_an_outage_from_lost_pilots(conn):
    """Nothing heard from anyone for longer than the gap: an outage, nothing reaped.
    Contacts resume: every job gets a whole silent period again."""
    (job,) = jobs.submit(conn, [new(name="through")], PROD)
    jobs.acquire(conn, "SITE_A", 1)
    with conn.cursor() as cur:
        cur.execute("UPDATE jobs SET heartbeat_time = UTC_TIMESTAMP(6) - INTERVAL 1 HOUR")
        # The reaper's previous run heard the facility an hour ago.
        cur.execute("INSERT INTO reaper_pulse VALUES (1, UTC_TIMESTAMP(6) - INTERVAL 1 HOUR, NULL)")
    conn.commit()
    assert jobs.reap(conn, 600, outage_gap=600) == {"activated": [], "failed": []}
    factory_reports(conn)  # the facility hears its clients again
    assert jobs.reap(conn, 600, outage_gap=600) == {"activated": [], "failed": []}
    with conn.cursor() as cur:
        cur.execute("SELECT outage_end IS NOT NULL AS ended FROM reaper_pulse")
        assert cur.fetchone()["ended"] == 1
        # A silent period after the outage's end, the job's pilot is lost indeed.
        cur.execute("UPDATE reaper_pulse SET outage_end = UTC_TIMESTAMP(6) - INTERVAL 11 MINUTE")
    conn.commit()
    assert jobs.reap(conn, 600, outage_gap=600) == {"activated": [job], "failed": []}


def test_kill_own_jobs_unless_production(conn):
    mine, theirs = jobs.submit(conn, [new()], USER) + jobs.submit(conn, [new()], PROD)
    assert jobs.kill(conn, [mine, theirs, 424242], USER, production=False) == [True, False, False]
    assert jobs.kill(conn, [theirs, mine], PROD, production=True) == [True, False]


def test_dispatch_reads_its_index_without_sorting(conn):
    """With a filesort the dispatch query would lock every activated row of the queue,
    and SKIP LOCKED would hand the other pilots nothing."""
    jobs.submit(conn, [new(priority=p) for p in (1, 5, 5, 9)], PROD)
    with conn.cursor() as cur:
        cur.execute(
            "EXPLAIN SELECT panda_id FROM jobs WHERE computing_site = 'SITE_A'"
            " AND job_status = 'activated' ORDER BY current_priority DESC, panda_id ASC"
            " LIMIT 1 FOR UPDATE SKIP LOCKED"
        )
        plan = cur.fetchone()
    conn.rollback()
    assert plan["key"] == "dispatch" and "filesort" not in (plan["Extra"] or ""), plan


def test_reaper_command_reads_the_server_settings(conn, testdb_settings, tmp_path, capsys):
    from pandafacility import reaper

    (gone,) = jobs.submit(conn, [new(name="gone")], PROD)
    jobs.acquire(conn, "SITE_A", 1)
    with conn.cursor() as cur:
        cur.execute("UPDATE jobs SET heartbeat_time = UTC_TIMESTAMP(6) - INTERVAL 2 HOUR")
    conn.commit()
    factory_reports(conn)
    # As the role writes them: the password in a file of its own, named.
    secret = tmp_path / "server-db.password"
    secret.write_text(testdb_settings["password"] + "\n")
    database = {k: v for k, v in testdb_settings.items() if k != "password"}
    config = tmp_path / "server.json"
    config.write_text(json.dumps({"database": {**database, "password_file": str(secret)}}))
    assert reaper.main(["--config", str(config), "--silent", "3600"]) == 0
    assert json.loads(capsys.readouterr().out) == {"activated": [gone], "failed": []}
    with pytest.raises(SystemExit):
        reaper.main(["--config", str(config), "--silent", "5"])
