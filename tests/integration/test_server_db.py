"""The PanDA server's WSGI application, called in-process, over a real MariaDB: probes,
identity and its trust rules, pilot dispatch in both protocols, updates, kill, and bad
input refused with a 4xx and nothing stored."""

from __future__ import annotations

import datetime
import gzip
import io
import json
import time
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults

import pytest

from pandafacility import jobs
from pandafacility.db import DbSettings
from pandafacility.identity import canonical_dns
from pandafacility.server import Server, ServerConfig

PILOT = "/DC=ch/DC=cern/OU=Robots/CN=atlas pilot"
USER = "/DC=ch/DC=cern/OU=Users/CN=someone"
LB = "/CN=lb1.lab.panda.test"
FACILITY_CA = "/CN=PanDA facility CA"
PROD_ROLE = "/atlas/Role=production"
GROUP_ROLE = "/atlas/usatlas/Role=production"
LB_ISSUER = "HTTP_X_SSL_CLIENT_I_DN"
LB_FQANS, LB_INHERITS = "HTTP_X_GRID_VOMS_FQANS", "HTTP_X_GRID_PROXY_INHERITS"
INHERITS = {"GRID_PROXY_INHERITS": "1"}  # Apache: a proxy with all its owner's rights
GRID_CA = "/DC=ch/DC=cern/CN=CERN Grid Certification Authority"


@pytest.fixture(scope="module")
def server(testdb_settings):
    settings = DbSettings.from_dict(testdb_settings)
    config = ServerConfig(
        database=settings,
        instance="srv-test",
        production_dns=canonical_dns([PILOT]),
        production_roles=frozenset(["/atlas/Role=production"]),
        trusted_proxy_dns=frozenset([LB]),
        queues={"SITE_A": {"corecount": 8}},
        max_body=4096,
    )
    return Server(config)


@pytest.fixture
def conn(clean_db):
    return clean_db


def call(server, method, path, body=b"", dn=None, via_lb=None, headers=None, ctype=None):
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(
        REQUEST_METHOD=method,
        PATH_INFO=path,
        CONTENT_LENGTH=str(len(body)),
        REMOTE_ADDR="172.28.10.99",
        SSL_SERVER_I_DN=FACILITY_CA,
    )
    environ["wsgi.input"] = io.BytesIO(body)
    if ctype:
        environ["CONTENT_TYPE"] = ctype
    if dn:
        environ.update(SSL_CLIENT_VERIFY="SUCCESS", SSL_CLIENT_S_DN=dn, SSL_CLIENT_I_DN=GRID_CA)
    if via_lb is not None:
        # The connection's own certificate (subject, issuer; None: no certificate), and the
        # header the client wrote or the load balancer set.
        (conn_dn, conn_issuer), header_dn = via_lb
        if conn_dn:
            environ.update(
                SSL_CLIENT_VERIFY="SUCCESS", SSL_CLIENT_S_DN=conn_dn, SSL_CLIENT_I_DN=conn_issuer
            )
        environ.update(HTTP_X_SSL_CLIENT_S_DN=header_dn, HTTP_X_SSL_CLIENT_VERIFY="SUCCESS")
    environ.update(headers or {})
    seen = {}

    def start_response(status, hdrs):
        seen["status"] = int(status.split()[0])
        seen["headers"] = dict(hdrs)

    out = b"".join(server(environ, start_response))
    return seen["status"], seen["headers"], out


def post_json(server, path, data, **kw):
    status, _, out = call(server, "POST", path, json.dumps(data).encode(), **kw)
    return status, json.loads(out)


def post_form(server, path, data, **kw):
    status, _, out = call(server, "POST", path, urlencode(data).encode(), **kw)
    return status, json.loads(out)


def count_jobs(conn) -> int:
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM jobs")
        return cur.fetchone()["n"]


def test_probes_name_the_instance(server):
    status, headers, out = call(server, "GET", "/server/panda/isAlive")
    assert (status, out, headers["X-Served-By"]) == (200, b"alive=yes", "srv-test")
    status, _, out = call(server, "GET", "/api/v1/system/is_alive")
    assert json.loads(out) == {"success": True, "message": "", "data": None}


def test_schedconfig_for_known_queues_only(server):
    status, _, out = call(server, "GET", "/cache/schedconfig/SITE_A.all.json")
    data = json.loads(out)
    assert status == 200 and data["nickname"] == "SITE_A" and data["corecount"] == 8
    assert data["state"] == "ACTIVE"
    # What pilot3 cannot start without (it puts atlas_site in its environment).
    assert data["atlas_site"] and data["status"] == "online" and data["panda_resource"]
    assert call(server, "GET", "/cache/schedconfig/NOPE.all.json")[0] == 404


def test_legacy_pilot_gets_updates_and_finishes_a_job(server, conn):
    (pid,) = jobs.submit(conn, [jobs.NewJob("j", "SITE_A", transformation="run.sh")], USER)
    status, job = post_form(
        server, "/server/panda/getJob", {"siteName": "SITE_A", "node": "wn1"}, dn=PILOT
    )
    assert status == 200 and job["StatusCode"] == 0 and job["PandaID"] == pid
    assert job["transformation"] == "run.sh"
    for state in ("starting", "running", "running", "finished"):
        status, answer = post_form(
            server,
            "/server/panda/updateJob",
            {"jobId": pid, "state": state, "attemptNr": 1},
            dn=PILOT,
        )
        assert (status, answer) == (200, {"StatusCode": 0, "command": "NULL"}), state
    status, answer = post_form(server, "/server/panda/getJob", {"siteName": "SITE_A"}, dn=PILOT)
    assert answer == {"StatusCode": 20}
    status, answer = post_form(server, "/server/panda/getStatus", {"ids": f"{pid},999999"})
    assert answer == {"StatusCode": 0, "status": ["finished", None]}


def post_gzip_json(server, path, data, **kw):
    """Pilot3 3.8 to 3.11's legacy calls (pilot/util/https.py request2): the fields as
    JSON, gzip-compressed, Content-Type application/json and no Content-Encoding."""
    body = gzip.compress(json.dumps(data).encode())
    status, _, out = call(server, "POST", path, body, ctype="application/json", **kw)
    return status, json.loads(out)


def test_pilot3_legacy_gzip_json_gets_updates_and_finishes_a_job(server, conn):
    (pid,) = jobs.submit(conn, [jobs.NewJob("j", "SITE_A", transformation="run.sh")], USER)
    status, job = post_gzip_json(
        server, "/server/panda/getJob",
        {"siteName": "SITE_A", "node": "wn1", "getProxyKey": False, "mem": 2000}, dn=PILOT,
    )  # fmt: skip
    assert status == 200 and job["StatusCode"] == 0 and job["PandaID"] == pid, job
    for state in ("running", "finished"):
        status, answer = post_gzip_json(
            server, "/server/panda/updateJob",
            {"jobId": pid, "state": state, "attemptNr": 1, "coreCount": 1}, dn=PILOT,
        )  # fmt: skip
        assert (status, answer) == (200, {"StatusCode": 0, "command": "NULL"}), (state, answer)
    assert job_row(conn, pid) == ("finished", 1)


def test_a_proxy_acts_as_its_owner(server, conn):
    """A job submitted with one proxy belongs to the end-entity DN: killed with the
    next proxy of the same user, not by anyone else's."""
    jobs_text = json.dumps([positional(**GOOD)])
    proxy_of = {"SSL_CLIENT_I_DN": USER, **INHERITS}  # a proxy is issued by its owner
    status, answer = post_json(server, "/api/v1/job/submit", {"jobs": jobs_text},
                               dn=USER + "/CN=123456", headers=proxy_of)  # fmt: skip
    assert status == 200 and answer["success"], answer
    ((pid, _, _),) = answer["data"]
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT owner_dn FROM jobs WHERE panda_id = %s", (pid,))
        assert cur.fetchone()["owner_dn"] == USER
    eve = {"SSL_CLIENT_I_DN": "/DC=test/CN=Eve", **INHERITS}
    other = post_json(server, "/api/v1/job/kill", {"job_ids": [pid]}, dn="/DC=test/CN=Eve/CN=1",
                      headers=eve)  # fmt: skip
    assert other[1]["data"] == [False]
    # A CA's certificate whose DN ends in digits is its own, not USER's (its issuer is
    # the CA, not USER).
    lookalike = post_json(server, "/api/v1/job/kill", {"job_ids": [pid]}, dn=USER + "/CN=7")
    assert lookalike[1]["data"] == [False]
    mine = post_json(server, "/api/v1/job/kill", {"job_ids": [pid]}, dn=USER + "/CN=654321",
                     headers=proxy_of)  # fmt: skip
    assert mine[1]["data"] == [True]


def job_columns(conn, pid: int) -> dict:
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM jobs WHERE panda_id = %s", (pid,))
        return cur.fetchone()


def test_pilot3s_final_update_is_stored(server, conn):
    """The fields pilot3 sends with finished (pilot/control/job.py get_data_structure),
    in the legacy gzip JSON form: stored in the job's columns, the pilot's own times
    over the server's, texts cut to their columns."""
    (pid,) = jobs.submit(conn, [jobs.NewJob("j", "SITE_A")], USER)
    assert post_gzip_json(server, "/server/panda/getJob", {"siteName": "SITE_A"}, dn=PILOT)[1][
        "PandaID"] == pid  # fmt: skip
    final = {
        "jobId": pid, "state": "finished", "attemptNr": 1, "node": "wn7",
        "transExitCode": 0, "exeErrorCode": 0, "exeErrorDiag": "", "pilotErrorCode": 0,
        "coreCount": 8, "cpuConsumptionTime": 3600, "cpuConsumptionUnit": "s+AMD EPYC",
        "nEvents": 500, "maxRSS": 2048000, "batchID": "12345.0", "schedulerID": "f1",
        "jobMetrics": "coreCount=8 nEvents=500", "pilotLog": "x" * 2000,
        "startTime": 1796200000.5, "endTime": 1796203600.25, "timestamp": "ignored",
    }  # fmt: skip
    status, answer = post_gzip_json(server, "/server/panda/updateJob", final, dn=PILOT)
    assert (status, answer) == (200, {"StatusCode": 0, "command": "NULL"}), answer
    row = job_columns(conn, pid)
    assert row["job_status"] == "finished" and row["node"] == "wn7"
    assert (row["actual_core_count"], row["cpu_consumption_time"], row["n_events"]) == (
        8,
        3600,
        500,
    )
    assert (row["max_rss"], row["batch_id"]) == (2048000, "12345.0")
    assert row["job_metrics"] == "coreCount=8 nEvents=500" and len(row["pilot_log"]) == 1024
    utc = datetime.UTC
    start, end = (datetime.datetime.fromtimestamp(t, utc).replace(tzinfo=None)
                  for t in (final["startTime"], final["endTime"]))  # fmt: skip
    assert (row["start_time"], row["end_time"]) == (start, end)
    assert row["core_count"] is None  # what was asked for stays apart from what was used
    # The rest of the report, kept as sent, read back by panda-client's names.
    status, answer = post_json(server, "/api/v1/job/get_description", {"job_ids": [pid]}, dn=USER)
    described = answer["data"][0]
    assert (described["cpuConsumptionUnit"], described["schedulerID"]) == ("s+AMD EPYC", "f1")


# Every key upstream's dispatcher puts in a job for a pilot (jobdispatcher Protocol.py).
UPSTREAM_KEYS = (
    "StatusCode",
    "PandaID",
    "prodSourceLabel",
    "swRelease",
    "homepackage",
    "transformation",
    "jobName",
    "jobDefinitionID",
    "cloud",
    "inFiles",
    "dispatchDblock",
    "dispatchDBlockToken",
    "dispatchDBlockTokenForOut",
    "outFiles",
    "destinationDblock",
    "destinationDBlockToken",
    "prodDBlocks",
    "prodDBlockToken",
    "realDatasets",
    "realDatasetsIn",
    "fileDestinationSE",
    "logFile",
    "logGUID",
    "jobPars",
    "attemptNr",
    "GUID",
    "checksum",
    "fsize",
    "scopeIn",
    "scopeOut",
    "scopeLog",
    "ddmEndPointIn",
    "ddmEndPointOut",
    "destinationSE",
    "prodUserID",
    "maxCpuCount",
    "minRamCount",
    "maxDiskCount",
    "cmtConfig",
    "processingType",
    "transferType",
    "sourceSite",
    "currentPriority",
    "taskID",
    "coreCount",
    "jobsetID",
    "reqID",
    "nucleus",
    "maxWalltime",
    "resource_type",
    "ioIntensity",
    "ioIntensityUnit",
    "nSent",
)


def a_file(kind: str, lfn: str, **more) -> list:
    from pandafacility.jobspec import FILE_ATTRIBUTES

    values = {"type": kind, "lfn": lfn, **more}
    return [values.get(name, "NULL") for name in FILE_ATTRIBUTES]


IN = {"scope": "data", "dataset": "ds.in"}


def test_a_pilot_gets_upstreams_job_description_with_a_log_to_save(server, conn):
    """Every key upstream hands a pilot, per-file values as parallel comma-separated
    lists with the log last among the outputs; a job submitted without a log file gets
    one named after it (a GUID of its own, the same for the same attempt)."""
    job = positional(**GOOD, cmtConfig="x86_64-el9-gcc13-opt", maxCpuCount=7200, taskID=42)
    job[-1] = [
        a_file("input", "in1.root", GUID="G1", fsize=10, checksum="ad:1", **IN),
        a_file("input", "in2.root", GUID="G2", fsize=20, checksum="ad:2", **IN),
        a_file("output", "out.root", scope="user.u", dataset="ds.out", destinationDBlock="o"),
        a_file("log", "mine.log.tgz", GUID="LG", scope="user.u", dataset="ds.log"),
    ]  # fmt: skip
    bare = positional(**{**GOOD, "jobName": "odd name/../x"})
    status, answer = post_json(
        server, "/api/v1/job/submit", {"jobs": json.dumps([job, bare])}, dn=USER
    )
    assert status == 200 and answer["success"], answer
    (pid, _, _), (bare_pid, _, _) = answer["data"]
    status, got = post_json(
        server, "/api/v1/pilot/acquire_jobs", {"site_name": "SITE_A", "n_jobs": 2}, dn=PILOT
    )
    first, second = sorted(got["data"]["jobs"], key=lambda j: j["PandaID"])
    assert set(UPSTREAM_KEYS) <= set(first) and first["PandaID"] == pid
    assert (first["inFiles"], first["GUID"], first["fsize"], first["scopeIn"]) == (
        "in1.root,in2.root", "G1,G2", "10,20", "data,data")  # fmt: skip
    assert (first["outFiles"], first["realDatasets"], first["scopeOut"]) == (
        "out.root,mine.log.tgz", "ds.out,ds.log", "user.u")  # fmt: skip
    assert (first["logFile"], first["logGUID"], first["scopeLog"]) == (
        "mine.log.tgz",
        "LG",
        "user.u",
    )
    assert (first["cmtConfig"], first["maxCpuCount"], first["taskID"]) == (
        "x86_64-el9-gcc13-opt",
        7200,
        42,
    )
    assert first["prodUserID"] == USER and first["coreCount"] == 1
    log = second["logFile"]
    assert log == f"odd_name_.._x.{bare_pid}.1.log.tgz" and second["outFiles"] == log
    assert second["logGUID"] and second["realDatasets"] == f"panda.{bare_pid}.log"
    assert second["scopeOut"] == "" and second["inFiles"] == ""


@pytest.mark.parametrize("path", ["/server/panda/updateJob", "/api/v1/pilot/update_job"])
def test_holding_and_transferring_are_the_pilots_states(server, conn, path):
    (pid,) = jobs.submit(conn, [jobs.NewJob("j", "SITE_A")], USER)
    post_json(server, "/api/v1/pilot/acquire_jobs", {"site_name": "SITE_A"}, dn=PILOT)
    for state in ("running", "holding", "transferring", "finished"):
        if path.startswith("/server"):
            fields = {"jobId": pid, "state": state, "attemptNr": 1}
            status, answer = post_form(server, path, fields, dn=PILOT)
        else:
            fields = {"job_id": pid, "job_status": state, "attempt_nr": 1}
            status, answer = post_json(server, path, fields, dn=PILOT)
        assert status == 200, (state, answer)
    assert job_row(conn, pid) == ("finished", 1)


def test_the_json_apis_update_fields_and_malformed_ones(server, conn):
    (pid,) = jobs.submit(conn, [jobs.NewJob("j", "SITE_A")], USER)
    post_json(server, "/api/v1/pilot/acquire_jobs", {"site_name": "SITE_A"}, dn=PILOT)
    # A malformed metric is dropped, never the report: the state must not be lost.
    body = {"job_id": pid, "job_status": "running", "attempt_nr": 1, "n_events": "nope",
            "max_rss": "1e400", "start_time": "1900-01-01 00:00:00"}  # fmt: skip
    status, answer = post_json(server, "/api/v1/pilot/update_job", body, dn=PILOT)
    assert status == 200 and answer["success"], answer
    row = job_columns(conn, pid)
    assert row["job_status"] == "running" and row["n_events"] is None and row["max_rss"] is None
    assert row["start_time"].year >= 2026  # the server's own time, not 1900
    body = {**body, "n_events": 10, "start_time": "2026-12-02 10:00:00", "end_time": "soon",
            "exe_error_code": 3, "exe_error_diag": "payload said no",
            "pilot_log": "tail"}  # fmt: skip
    status, answer = post_json(server, "/api/v1/pilot/update_job", body, dn=PILOT)
    assert status == 200 and answer["success"], answer
    row = job_columns(conn, pid)
    assert (row["n_events"], row["exe_error_code"], row["exe_error_diag"]) == (
        10, 3, "payload said no")  # fmt: skip
    assert row["start_time"].isoformat() == "2026-12-02T10:00:00" and row["end_time"] is None
    described = post_json(server, "/api/v1/job/get_description", {"job_ids": [pid]}, dn=USER)
    assert described[1]["data"][0]["nEvents"] == 10
    assert "pilot_log" not in described[1]["data"][0] and "pilotLog" not in described[1]["data"][0]


def test_status_by_get_as_upstream_answers(server, conn):
    (pid,) = jobs.submit(conn, [jobs.NewJob("j", "SITE_A")], USER)
    query = f"job_ids={pid}&job_ids=999999999"
    status, _, out = call(server, "GET", "/api/v1/job/get_status", dn=USER,
                          headers={"QUERY_STRING": query})  # fmt: skip
    answer = json.loads(out)
    assert status == 200 and answer["success"], answer
    assert answer["data"] == [
        {"status": "activated", "command": None},
        {"status": "unknown", "command": "tobekilled"},
    ]
    headers = {"QUERY_STRING": query}
    assert call(server, "GET", "/api/v1/job/get_status", headers=headers)[0] == 403
    jobs.kill(conn, [pid], USER, False)
    status, _, out = call(server, "GET", "/api/v1/job/get_status", dn=USER, headers=headers)
    assert json.loads(out)["data"][0] == {"status": "cancelled", "command": "tobekilled"}
    bad = {"QUERY_STRING": "job_ids=[1,2]"}
    assert call(server, "GET", "/api/v1/job/get_status", dn=USER, headers=bad)[0] == 400


def test_json_pilot_acquires_several_and_sees_a_kill(server, conn):
    ids = jobs.submit(conn, [jobs.NewJob(f"j{i}", "SITE_A") for i in range(3)], USER)
    status, answer = post_json(
        server, "/api/v1/pilot/acquire_jobs", {"site_name": "SITE_A", "n_jobs": 2}, dn=PILOT
    )
    got = [j["PandaID"] for j in answer["data"]["jobs"]]
    assert status == 200 and answer["success"] and got == ids[:2]
    assert post_json(server, "/api/v1/job/kill", {"job_ids": [got[0]]}, dn=USER)[1]["data"] == [
        True
    ]
    status, answer = post_json(
        server, "/api/v1/pilot/update_job",
        {"job_id": got[0], "job_status": "running", "attempt_nr": 1}, dn=PILOT,
    )  # fmt: skip
    # Cancelled is final: the heartbeat changes nothing and tells the pilot to kill.
    assert status == 200 and answer["success"] and answer["command"] == "tobekilled"
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT job_status FROM jobs WHERE panda_id = %s", (got[0],))
        assert cur.fetchone()["job_status"] == "cancelled"
    status, answer = post_json(
        server, "/api/v1/pilot/update_job",
        {"job_id": got[1], "job_status": "running", "attempt_nr": 1}, dn=PILOT,
    )  # fmt: skip
    assert answer["success"] and answer["command"] == "NULL"
    status, answer = post_json(
        server, "/api/v1/pilot/acquire_jobs", {"site_name": "SITE_B"}, dn=PILOT
    )
    assert answer == {"success": False, "message": "No jobs in PanDA", "data": None}


def job_row(conn, pid: int) -> tuple[str, int]:
    conn.commit()  # a fresh snapshot
    with conn.cursor() as cur:
        cur.execute("SELECT job_status, attempt_nr FROM jobs WHERE panda_id = %s", (pid,))
        row = cur.fetchone()
    return row["job_status"], row["attempt_nr"]


def update(server, pid: int, state: str, attempt: int | None) -> tuple[int, dict]:
    body = {"job_id": pid, "job_status": state}
    if attempt is not None:
        body["attempt_nr"] = attempt
    return post_json(server, "/api/v1/pilot/update_job", body, dn=PILOT)


def test_updates_are_bound_to_the_dispatch_of_their_attempt(server, conn):
    (pid,) = jobs.submit(conn, [jobs.NewJob("bound", "SITE_A")], USER)
    # Never handed out: a bare report moves nothing, and the sender is told to stop.
    status, answer = update(server, pid, "finished", 1)
    assert (status, answer["command"]) == (200, "tobekilled") and "attempt 1" in answer["message"]
    assert job_row(conn, pid) == ("activated", 1)
    # No attempt, no report; and no pilot puts a job back in the queue.
    assert update(server, pid, "running", None)[0] == 400
    post_json(server, "/api/v1/pilot/acquire_jobs", {"site_name": "SITE_A"}, dn=PILOT)
    assert update(server, pid, "activated", 1)[0] == 409
    assert update(server, pid, "running", 1)[1]["command"] == "NULL"
    assert job_row(conn, pid) == ("running", 1)
    # The reaper gave it to another pilot (attempt 2): the first pilot learns it lost it.
    assert jobs.reap(conn, silent_seconds=0)["activated"] == [pid]
    status, answer = update(server, pid, "finished", 1)
    assert (status, answer["command"]) == (200, "tobekilled")
    assert job_row(conn, pid) == ("activated", 2)


@pytest.mark.parametrize(
    "kw,allowed",
    [
        ({"dn": PILOT}, True),
        ({"via_lb": ((LB, FACILITY_CA), PILOT)}, True),  # the load balancer's certificate
        ({"via_lb": ((None, None), PILOT)}, False),  # the header alone, from any address
        ({"via_lb": ((USER, GRID_CA), PILOT)}, False),  # a user's certificate and the header
        ({"via_lb": ((LB, GRID_CA), PILOT)}, False),  # the LB's name from another CA
        ({"via_lb": (("/CN=srv1.lab.panda.test", FACILITY_CA), PILOT)}, False),  # other host
        ({"via_lb": ((LB, FACILITY_CA), "")}, False),  # the LB is nobody by itself
        ({"dn": USER}, False),  # authenticated, not production
        ({}, False),
        ({"dn": PILOT + "/CN=123456789"}, True),  # a proxy of the production DN
        # VOMS: a role mod_gridsite verified (GRST_VOMS_FQANS), or the load balancer's
        # header on its own connection; nothing else a client wrote.
        ({"dn": USER, "headers": {"GRST_VOMS_FQANS": PROD_ROLE + "/Capability=NULL"}}, True),
        ({"dn": USER, "headers": {"GRST_VOMS_FQANS": "/atlas/Role=NULL;" + GROUP_ROLE}}, False),
        ({"dn": USER, "headers": {"GRST_VOMS_FQANS": "/cms/Role=production"}}, False),
        ({"dn": USER, "headers": {"GRST_VOMS_FQANS": PROD_ROLE + "2"}}, False),
        ({"dn": USER, "headers": {LB_FQANS: PROD_ROLE}}, False),
        ({"via_lb": ((LB, FACILITY_CA), USER), "headers": {LB_FQANS: PROD_ROLE}}, True),
        ({"via_lb": ((LB, FACILITY_CA), USER), "headers": {"GRST_VOMS_FQANS": PROD_ROLE}}, False),
        ({"via_lb": ((USER, GRID_CA), USER), "headers": {LB_FQANS: PROD_ROLE}}, False),
        # Limited proxies are nobody: RFC 3820's (marked by Apache), Globus' legacy ones.
        ({"dn": PILOT + "/CN=123", "headers": {"SSL_CLIENT_I_DN": PILOT}}, False),
        ({"dn": PILOT + "/CN=123", "headers": {"SSL_CLIENT_I_DN": PILOT, **INHERITS}}, True),
        ({"dn": PILOT + "/CN=limited proxy", "headers": {**INHERITS}}, False),
        ({"via_lb": ((LB, FACILITY_CA), PILOT + "/CN=1"), "headers": {LB_ISSUER: PILOT}}, False),
        ({"via_lb": ((LB, FACILITY_CA), PILOT + "/CN=1"),
          "headers": {LB_ISSUER: PILOT, LB_INHERITS: "1"}}, True),
        ({"via_lb": ((LB, FACILITY_CA), PILOT + "/CN=1"),
          "headers": {LB_ISSUER: PILOT, **INHERITS}}, False),  # the LB's env is not the client's
    ],
)  # fmt: skip
def test_pilot_endpoints_need_a_production_identity(server, conn, kw, allowed):
    jobs.submit(conn, [jobs.NewJob("j", "SITE_A")], USER)
    status, answer = post_json(server, "/api/v1/pilot/acquire_jobs", {"site_name": "SITE_A"}, **kw)
    assert (status == 200) is allowed, answer
    if not allowed:
        assert status == 403 and not answer["success"]


@pytest.mark.parametrize(
    "path,body,status",
    [
        ("/api/v1/pilot/acquire_jobs", b"{not json", 400),
        ("/api/v1/pilot/acquire_jobs", b"[1, 2]", 400),
        ("/api/v1/pilot/acquire_jobs", b"[" * 2000 + b"]" * 2000, 400),  # under 4 KB
        ("/api/v1/pilot/acquire_jobs", b'{"a":' * 200 + b"1" + b"}" * 200, 400),
        ("/api/v1/pilot/acquire_jobs", b'{"site_name": 7}', 400),
        ("/api/v1/pilot/acquire_jobs", b'{"site_name": "X\' OR 1=1 --"}', 400),
        ("/api/v1/pilot/acquire_jobs", b'{"site_name": "SITE_A", "n_jobs": "lots"}', 400),
        (
            "/api/v1/pilot/update_job",
            b'{"job_id": "1; DROP TABLE jobs", "job_status": "running"}',
            400,
        ),
        ("/api/v1/pilot/update_job", b'{"job_id": 123456789, "job_status": "running"}', 400),
        ("/api/v1/pilot/update_job", b'{"job_id": 1, "job_status": "bogus"}', 400),
        ("/api/v1/job/get_status", b'{"job_ids": []}', 400),
        ("/api/v1/job/get_status", b'{"job_ids": ["x"]}', 400),
        ("/api/v1/pilot/acquire_jobs", b"x" * 5000, 413),
        ("/api/v1/nothing/here", b"{}", 404),
    ],
)
def test_bad_input_is_refused_and_nothing_stored(server, conn, path, body, status):
    before = count_jobs(conn)
    got, _, out = call(server, "POST", path, body, dn=PILOT)
    answer = json.loads(out)
    assert got == status and answer["success"] is False and answer["message"], answer
    assert count_jobs(conn) == before
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES LIKE 'jobs'")
        assert cur.fetchall()


def test_gzip_bodies_are_read_and_bombs_refused(server, conn):
    jobs.submit(conn, [jobs.NewJob(f"j{i}", "SITE_A") for i in range(2)], USER)
    body = gzip.compress(json.dumps({"site_name": "SITE_A"}).encode())
    status, _, out = call(
        server, "POST", "/api/v1/pilot/acquire_jobs", body, dn=PILOT,
        headers={"HTTP_CONTENT_ENCODING": "gzip"},
    )  # fmt: skip
    assert status == 200 and json.loads(out)["success"]
    # Pilots 3.8 to 3.11: gzip-compressed JSON, application/json, no Content-Encoding.
    status, _, out = call(server, "POST", "/api/v1/pilot/acquire_jobs", body, dn=PILOT,
                          ctype="application/json")  # fmt: skip
    assert status == 200 and json.loads(out)["success"], out
    bomb = gzip.compress(b" " * 100_000)
    assert call(server, "POST", "/api/v1/pilot/acquire_jobs", bomb, dn=PILOT)[0] == 413
    status, _, _ = call(
        server, "POST", "/api/v1/pilot/acquire_jobs", bomb, dn=PILOT,
        headers={"HTTP_CONTENT_ENCODING": "gzip"},
    )  # fmt: skip
    assert status == 413


def positional(**attrs) -> list:
    """A job in panda-client's wire form: every attribute, "NULL" when unset, then files."""
    from pandafacility.jobspec import JOB_ATTRIBUTES

    return [attrs.get(name, "NULL") for name in JOB_ATTRIBUTES] + [[]]


GOOD = {"jobName": "j1", "computingSite": "SITE_A", "transformation": "/bin/true"}


def test_submit_and_describe_in_the_clients_format(server, conn):
    jobs_text = json.dumps([positional(**GOOD, currentPriority=5, jobDefinitionID=7)])
    status, answer = post_json(server, "/api/v1/job/submit", {"jobs": jobs_text}, dn=USER)
    assert status == 200 and answer["success"], answer
    ((pid, defid, name),) = answer["data"]
    assert (defid, name) == (7, "j1")
    status, answer = post_json(
        server, "/api/v1/job/get_description", {"job_ids": [pid, 4242]}, dn=USER
    )
    described, missing = answer["data"]
    assert missing is None
    assert described["PandaID"] == pid and described["jobStatus"] == "activated"
    assert described["currentPriority"] == 5 and described["prodUserID"] == USER
    assert described["creationTime"]["__datetime__"].startswith("20")
    assert described["Files"] == []


@pytest.mark.parametrize(
    "jobs_value,message",
    [
        ([positional(**GOOD)], "JSON string"),
        ("[[1, 2, 3]]", "a job must be a list"),
        ("not json", "not valid JSON"),
        ("[]", "non-empty"),
        (json.dumps([positional(**{**GOOD, "computingSite": "ELSEWHERE"})]), "not a queue"),
        (
            json.dumps([positional(**{**GOOD, "computingSite": "A'; DROP TABLE jobs; --"})]),
            "not a queue",
        ),
        (json.dumps([positional(**{**GOOD, "currentPriority": "high"})]), "currentPriority"),
        (json.dumps([positional(**{**GOOD, "jobName": "x" * 300})]), "jobName"),
        (json.dumps([positional(**GOOD), positional(**{**GOOD, "jobName": None})]), "jobName"),
    ],
)
def test_bad_submissions_store_nothing(server, conn, jobs_value, message):
    before = count_jobs(conn)
    status, answer = post_json(server, "/api/v1/job/submit", {"jobs": jobs_value}, dn=USER)
    assert status == 400 and not answer["success"] and message in answer["message"], answer
    assert count_jobs(conn) == before


def test_labels_and_priority_follow_the_submitter(server, conn):
    for label in ("managed", "prod_test"):
        jobs_text = json.dumps([positional(**GOOD), positional(**GOOD, prodSourceLabel=label)])
        status, answer = post_json(server, "/api/v1/job/submit", {"jobs": jobs_text}, dn=USER)
        assert status == 403 and f"prodSourceLabel={label}" in answer["message"], answer
        assert count_jobs(conn) == 0  # the whole submission is refused
    jobs_text = json.dumps(
        [positional(**GOOD, currentPriority=5000), positional(**GOOD, prodSourceLabel="test")]
    )
    status, answer = post_json(server, "/api/v1/job/submit", {"jobs": jobs_text}, dn=USER)
    assert status == 200 and answer["success"], answer
    status, answer = post_json(server, "/api/v1/job/submit", {"jobs": jobs_text}, dn=PILOT)
    assert status == 200 and answer["success"], answer
    conn.commit()  # a fresh snapshot
    with conn.cursor() as cur:
        cur.execute(
            "SELECT owner_dn, prod_source_label, current_priority FROM jobs ORDER BY panda_id"
        )
        got = [tuple(row.values()) for row in cur.fetchall()]
    conn.rollback()
    assert got == [
        (USER, "user", 1000),  # clamped: a user cannot jump the queue
        (USER, "test", 1000),
        (PILOT, "managed", 5000),  # production: its label by default, its priority
        (PILOT, "test", 1000),
    ]


def test_submit_needs_an_identity(server, conn):
    jobs_text = json.dumps([positional(**GOOD)])
    status, _ = post_json(server, "/api/v1/job/submit", {"jobs": jobs_text})
    assert status == 403 and count_jobs(conn) == 0
    limited = {"SSL_CLIENT_I_DN": USER}  # a proxy Apache did not see inherit its owner's rights
    status, answer = post_json(server, "/api/v1/job/submit", {"jobs": jobs_text},
                               dn=USER + "/CN=99", headers=limited)  # fmt: skip
    assert status == 403 and "limited proxy" in answer["message"] and count_jobs(conn) == 0


OPERATOR = "/DC=ch/DC=cern/OU=Users/CN=operator"


def test_metrics_count_requests_and_jobs_for_their_readers_only(testdb_settings, conn, tmp_path):
    config = ServerConfig(
        database=DbSettings.from_dict(testdb_settings),
        production_dns=canonical_dns([PILOT]),
        trusted_proxy_dns=frozenset([LB]),
        queues={"SITE_A": {}},
        metrics_dir=str(tmp_path),
        metrics_dns=canonical_dns([OPERATOR]),
    )
    # Two mod_wsgi processes of one server: a scrape of either sees both's counts.
    one, two = Server(config), Server(config)
    two.counters.pid = 2**31 - 2  # as if another process, ended since
    jobs.submit(conn, [jobs.NewJob("j", "SITE_A", transformation="run.sh")], USER)
    post_form(one, "/server/panda/getJob", {"siteName": "SITE_A"}, dn=PILOT)
    post_form(two, "/server/panda/getJob", {"siteName": "SITE_A"}, dn=PILOT)
    call(two, "GET", "/nowhere")
    time.sleep(1.2)  # the other process writes its last counts within a second

    assert call(one, "GET", "/metrics", dn=USER)[0] == 403
    assert call(one, "GET", "/metrics")[0] == 403
    status, headers, out = call(one, "GET", "/metrics", dn=OPERATOR)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    page = out.decode()
    assert 'panda_server_requests_total{code="200",endpoint="/server/panda/getJob"} 2.0' in page
    assert 'panda_server_requests_total{code="403",endpoint="/metrics"} 2.0' in page
    assert 'panda_server_requests_total{code="404",endpoint="other"} 1.0' in page
    assert 'panda_server_acquire_seconds_bucket{le="+Inf"} 2.0' in page
    assert 'panda_jobs{queue="SITE_A",state="sent"} 1.0' in page
    assert "panda_server_database_up 1.0" in page
    # Through the load balancer, the reader is the header's DN.
    assert call(one, "GET", "/metrics", via_lb=((LB, FACILITY_CA), OPERATOR))[0] == 200


def post_v1(server, method, data, **kw):
    """Pilot3 3.12 and later (and Harvester) on /api/v1/pilot/<method>: JSON, gzip-compressed
    with Content-Encoding: gzip (pilot/util/https.py, for api/v URLs)."""
    body = gzip.compress(json.dumps(data).encode())
    headers = {"HTTP_CONTENT_ENCODING": "gzip", "HTTP_ACCEPT": "application/json"}
    status, _, out = call(server, "POST", f"/api/v1/pilot/{method}", body,
                          ctype="application/json", headers=headers, **kw)  # fmt: skip
    return status, json.loads(out)


def test_bulk_updates_answer_each_job_and_a_bad_entry_fails_alone(server, conn):
    ids = jobs.submit(conn, [jobs.NewJob(f"h{i}", "SITE_A") for i in range(2)], USER)
    got = post_v1(server, "acquire_jobs", {"site_name": "SITE_A", "n_jobs": 2}, dn=PILOT)[1]
    taken = [j["PandaID"] for j in got["data"]["jobs"]]
    assert sorted(taken) == sorted(ids)
    job_list = [
        {"job_id": ids[0], "job_status": "running", "attempt_nr": 1, "core_count": 8,
         "start_time": "2026-12-01 10:00:00", "meta_data": "{}"},
        {"job_id": ids[1], "job_status": "finished", "attempt_nr": 1, "n_events": 100},
        {"job_id": ids[1], "job_status": "running"},  # no attempt: refused alone
        "not a job",
    ]  # fmt: skip
    status, answer = post_v1(server, "update_jobs_bulk", {"job_list": job_list}, dn=PILOT)
    assert status == 200 and answer["success"], answer
    first, second, third, fourth = answer["data"]
    assert first == {"success": True, "message": "", "data": {"StatusCode": 0, "command": "NULL"}}
    assert second["success"] and second["data"]["command"] == "NULL"
    assert not third["success"] and "attempt_nr" in third["message"]
    assert not fourth["success"]
    assert job_row(conn, ids[0]) == ("running", 1) and job_row(conn, ids[1]) == ("finished", 1)
    assert job_columns(conn, ids[0])["actual_core_count"] == 8
    assert post_v1(server, "update_jobs_bulk", {"job_list": []}, dn=PILOT)[0] == 400
    assert post_v1(server, "update_jobs_bulk", {"job_list": job_list}, dn=USER)[0] == 403


def test_pilot_job_status_by_get(server, conn):
    (pid,) = jobs.submit(conn, [jobs.NewJob("s", "SITE_A")], USER)
    path, query = "/api/v1/pilot/get_job_status", {"QUERY_STRING": f"job_ids={pid}&job_ids=999999"}
    status, _, out = call(server, "GET", path, dn=PILOT, headers=query)
    answer = json.loads(out)
    assert status == 200 and answer["data"] == [
        {"job_id": pid, "status": "activated", "attempt_number": 1},
        {"job_id": 999999, "status": "not found", "attempt_number": 0},
    ], answer
    assert call(server, "GET", path, dn=USER, headers=query)[0] == 403


def test_worker_nodes_and_pilot_workers_keep_the_latest_report(server, conn):
    node = {"site": "SITE_A", "host_name": "wn1.example.org", "cpu_model": "AMD EPYC 7302",
            "panda_queue": "SITE_A", "n_logical_cpus": 64, "n_sockets": 2,
            "cores_per_socket": 16, "threads_per_core": 2, "cpu_architecture": "x86_64",
            "cpu_architecture_level": "x86-64-v3", "clock_speed": 3000.5,
            "total_memory": 257000.0, "total_local_disk": 1800}  # fmt: skip
    first = post_v1(server, "update_worker_node", node, dn=PILOT)
    assert first == (200, {"success": True, "message": "Inserted new worker node.", "data": None})
    again = post_v1(server, "update_worker_node", {**node, "total_memory": 256000}, dn=PILOT)
    assert again[1]["message"] == "Updated worker node."
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT total_memory, clock_speed, reported_by FROM worker_nodes")
        assert cur.fetchall() == [
            {"total_memory": 256000, "clock_speed": 3000.5, "reported_by": PILOT}
        ]
    for bad in ({**node, "site": None}, {**node, "n_sockets": "two"}, {**node, "n_sockets": 1.5},
                {**node, "cpu_model": "x" * 200}, {**node, "n_sockets": 2**40}):  # fmt: skip
        assert post_v1(server, "update_worker_node", bad, dn=PILOT)[0] == 400, bad
    assert post_v1(server, "update_worker_node", node, dn=USER)[0] == 403

    worker = {
        "worker_id": 7,
        "harvester_id": "panda-factory",
        "status": "started",
        "node_id": "wn1",
    }
    assert post_v1(server, "update_worker_status", worker, dn=PILOT)[1]["success"]
    assert (
        post_v1(server, "update_worker_status", {**worker, "status": "finished"}, dn=PILOT)[0]
        == 200
    )
    assert post_v1(server, "update_worker_status", {**worker, "status": "lost"}, dn=PILOT)[0] == 400
    assert (
        post_v1(server, "update_worker_status", {**worker, "worker_id": 2**63}, dn=PILOT)[0] == 400
    )
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT status, node_id FROM pilot_workers")
        assert cur.fetchall() == [{"status": "finished", "node_id": "wn1"}]
