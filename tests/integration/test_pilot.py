"""The pilot against the real server and logger applications (in-process over TLS on
loopback, tests/integration/conftest.py) and a real MariaDB: it takes jobs until none
waits, runs each payload under its limit, reports the outcome, and leaves its log with
the logger under the job's PandaID."""

from __future__ import annotations

import json
import threading
import time

import pytest

from conftest import PILOT_DN, USER_DN
from pandafacility import jobs, pilot
from pandafacility.identity import canonical_dns
from pandafacility.logger import Logger, LoggerConfig


@pytest.fixture(scope="module")
def logger(serve_tls, tmp_path_factory):
    """The logger takes records from the pilots' DN only (the pilot's certificate)."""
    app = Logger(
        LoggerConfig(
            database=tmp_path_factory.mktemp("logger") / "records.sqlite",
            writer_dns=canonical_dns([PILOT_DN]),
        )
    )
    return app, serve_tls(app)


def submit(conn, *payloads: tuple[str, str], site: str = "SITE_A") -> list[int]:
    new = [
        jobs.NewJob(job_name=f"pilot-{i}", computing_site=site, transformation=t, job_parameters=p)
        for i, (t, p) in enumerate(payloads)
    ]
    return jobs.submit(conn, new, USER_DN)


def status(conn, panda_id: int) -> dict:
    conn.commit()  # a fresh snapshot
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM jobs WHERE panda_id = %s", (panda_id,))
        return cur.fetchone()


def run(https_server, pki, logger_url: str = "", *extra: str, capsys=None) -> int:
    argv = ["--server", https_server, "--queue", "SITE_A", "--ca", str(pki["ca"])]
    argv += ["--cert", str(pki["pilot"]), "--logger", logger_url, *extra]
    return pilot.main(argv)


def test_pilot_runs_jobs_until_none_waits(clean_db, https_server, pki, logger, capsys):
    app, url = logger
    ok, bad = submit(clean_db, ("/bin/sh", "-c 'echo hello from $0'"), ("/bin/sh", "-c 'exit 3'"))
    assert run(https_server, pki, url) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == {"queue": "SITE_A", "jobs": {"finished": 1, "failed": 1}}
    done, failed = status(clean_db, ok), status(clean_db, bad)
    assert (done["job_status"], done["trans_exit_code"]) == ("finished", 0)
    assert (failed["job_status"], failed["trans_exit_code"]) == ("failed", 3)
    assert done["node"] and done["end_time"] is not None
    messages = [r["message"] for r in app.records(ok, 100)]
    assert any("hello from /bin/sh" in m for m in messages), messages
    assert messages[-1] == "payload exited 0"
    assert [r["message"] for r in app.records(bad, 100)][-1] == "payload exited 3"


def test_pilot_takes_at_most_max_jobs(clean_db, https_server, pki):
    ids = submit(clean_db, *[("/bin/true", "")] * 3)
    assert run(https_server, pki, "", "--max-jobs", "2") == 0
    states = sorted(status(clean_db, i)["job_status"] for i in ids)
    assert states == ["activated", "finished", "finished"]


def test_payload_over_its_limit_is_killed_and_failed(clean_db, https_server, pki):
    (slow,) = submit(clean_db, ("/bin/sleep", "30"))
    start = time.monotonic()
    assert run(https_server, pki, "", "--max-walltime", "1") == 0
    assert time.monotonic() - start < 15
    job = status(clean_db, slow)
    assert job["job_status"] == "failed" and "limit" in job["pilot_error_diag"]


def test_killed_job_stops_at_the_next_heartbeat(clean_db, https_server, pki):
    (victim,) = submit(clean_db, ("/bin/sleep", "30"))

    def kill_when_running() -> None:
        for _ in range(100):
            if status(clean_db, victim)["job_status"] == "running":
                jobs.kill(clean_db, [victim], USER_DN, production=False)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    start = time.monotonic()
    assert run(https_server, pki, "", "--heartbeat", "0.5") == 0
    killer.join()
    assert time.monotonic() - start < 15
    assert status(clean_db, victim)["job_status"] == "cancelled"


def test_a_missing_transformation_fails_the_job(clean_db, https_server, pki):
    (broken,) = submit(clean_db, ("/nonexistent/transform", ""))
    assert run(https_server, pki) == 0
    assert status(clean_db, broken)["job_status"] == "failed"


def test_pilot_without_a_production_certificate_stops(clean_db, https_server, pki, capsys):
    argv = ["--server", https_server, "--queue", "SITE_A", "--ca", str(pki["ca"])]
    assert pilot.main([*argv, "--cert", str(pki["user"])]) == 1
    assert "403" in capsys.readouterr().err
    assert PILOT_DN not in USER_DN


@pytest.mark.parametrize("bad", [["--max-jobs", "0"], ["--heartbeat", "-1"]])
def test_bad_arguments_exit_2(bad):
    with pytest.raises(SystemExit) as stopped:
        pilot.main(["--server", "https://x", "--queue", "Q", *bad])
    assert stopped.value.code == 2
