"""The PanDA monitor's pages over a real MariaDB, with a real logger and server behind
loopback HTTP (the logger over TLS, as the monitor's own certificate reads it): every
page and its JSON twin, the backend label, log records per job and who sees them."""

from __future__ import annotations

import io
import json
import threading
from urllib.parse import urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import setup_testing_defaults

import pytest

from conftest import MONITOR_DN, PILOT_DN
from pandafacility import jobs, migrate
from pandafacility.db import DbSettings, connect
from pandafacility.identity import canonical_dns
from pandafacility.logger import Logger, LoggerConfig, normalise
from pandafacility.monitor import RECORDS_HIDDEN, Monitor, MonitorConfig
from pandafacility.server import Server, ServerConfig

OWNER = "/DC=test/CN=Owner"
OPERATOR = "/DC=test/CN=Operator"
LB = "/CN=lb1.test"


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve(app) -> tuple[str, WSGIServer]:
    httpd = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}", httpd


@pytest.fixture(scope="module")
def stack(testdb_settings, tmp_path_factory, serve_tls, pki):
    settings = DbSettings.from_dict(testdb_settings)
    conn = connect(settings)
    migrate.migrate(conn)
    with conn.cursor() as cur:
        for table in ("jobs", "job_states", "pilot_stats"):
            cur.execute(f"DELETE FROM {table}")
    conn.commit()
    logger = Logger(
        LoggerConfig(
            database=tmp_path_factory.mktemp("log") / "log.sqlite",
            writer_dns=canonical_dns([PILOT_DN]),
            reader_dns=canonical_dns([MONITOR_DN]),
        )
    )
    logger_url = serve_tls(logger)
    server_url, server_httpd = serve(Server(ServerConfig(database=settings, instance="srv-a")))
    monitor = Monitor(
        MonitorConfig(
            database=settings,
            instance="mon-test",
            logger_url=logger_url,
            servers={"srv-a": server_url, "srv-gone": "http://127.0.0.1:9"},
            ca_file=str(pki["ca"]),
            client_cert=str(pki["monitor"]),
            trusted_proxy_dns=frozenset([LB]),
            reader_dns=canonical_dns([OPERATOR]),
        )
    )
    yield {"conn": conn, "monitor": monitor, "logger": logger}
    server_httpd.shutdown()
    conn.close()


def get(monitor, path, query="", ssl_env=None):
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD="GET", PATH_INFO=path, QUERY_STRING=query)
    environ.update(ssl_env or {})
    environ["wsgi.input"] = io.BytesIO(b"")
    seen = {}

    def start_response(status, headers):
        seen["status"] = int(status.split()[0])
        seen["headers"] = dict(headers)

    body = b"".join(monitor(environ, start_response)).decode()
    return seen["status"], seen["headers"], body


def by_cert(dn):
    """The environ of a browser that showed this certificate to the monitor directly."""
    return {"SSL_CLIENT_VERIFY": "SUCCESS", "SSL_CLIENT_S_DN": dn}


def through_lb(dn, issuer="/DC=test/CN=Grid CA"):
    """The environ of a client the load balancer identified (its own certificate)."""
    return {
        **by_cert(LB),
        "SSL_CLIENT_I_DN": "/CN=Facility CA",
        "SSL_SERVER_I_DN": "/CN=Facility CA",
        "HTTP_X_SSL_CLIENT_S_DN": dn,
        "HTTP_X_SSL_CLIENT_I_DN": issuer,
        "HTTP_X_SSL_CLIENT_VERIFY": "SUCCESS",
        "HTTP_X_GRID_PROXY_INHERITS": "1",  # a proxy of its owner's rights, as Apache saw
    }


def twin(monitor, path, query="", ssl_env=None):
    status, _, body = get(monitor, path, "&".join(filter(None, [query, "format=json"])), ssl_env)
    assert status == 200
    return json.loads(body)


def test_summary_counts_jobs_by_state_and_queue(stack):
    conn, monitor = stack["conn"], stack["monitor"]
    jobs.submit(conn, [jobs.NewJob(f"a{i}", "SITE_A") for i in range(3)], "/CN=u")
    jobs.submit(conn, [jobs.NewJob("b", "SITE_B")], "/CN=u")
    jobs.acquire(conn, "SITE_A", 1)
    status, headers, page = get(monitor, "/")
    assert status == 200 and headers["X-Served-By"] == "mon-test"
    assert '<span id="served-by">mon-test</span>' in page and "SITE_B" in page
    data = twin(monitor, "/")
    assert data["queues"] == {"SITE_A": {"activated": 2, "sent": 1}, "SITE_B": {"activated": 1}}
    assert data["served_by"] == "mon-test"


def test_job_list_filters_and_refuses_unknown_states(stack):
    monitor = stack["monitor"]
    data = twin(monitor, "/jobs", "state=activated&site=SITE_A")
    assert {j["computing_site"] for j in data["jobs"]} == {"SITE_A"} and len(data["jobs"]) == 2
    assert get(monitor, "/jobs", "state=bogus")[0] == 400


def test_job_detail_shows_its_log_records(stack):
    conn, monitor = stack["conn"], stack["monitor"]
    (pid,) = jobs.submit(conn, [jobs.NewJob("logged", "SITE_A")], OWNER)
    record = {"message": "payload started", "PandaID": pid, "levelname": "INFO"}
    stack["logger"].store([normalise(record, "wn3")])
    status, _, page = get(monitor, f"/jobs/{pid}", ssl_env=by_cert(OWNER))
    assert status == 200 and "payload started" in page and "wn3" in page
    data = twin(monitor, f"/jobs/{pid}", ssl_env=through_lb(OWNER + "/CN=4711", OWNER))
    assert (
        data["job"]["job_name"] == "logged" and data["records"][0]["message"] == "payload started"
    )
    assert [h["job_status"] for h in data["history"]] == ["activated"]
    assert get(monitor, "/jobs/999999999")[0] == 404
    assert get(monitor, "/jobs/1%20OR%201=1")[0] == 400


@pytest.mark.parametrize(
    ("viewer", "shown"),
    [(None, False), (by_cert("/DC=test/CN=Someone Else"), False), (by_cert(LB), False),
     # The pilots' certificate travels to the worker nodes: a payload could use it.
     (by_cert(PILOT_DN), False), (through_lb(OPERATOR), True), (by_cert(OPERATOR), True),
     # A certificate named like the owner's proxy but issued by a CA is not the owner.
     (through_lb(OWNER + "/CN=12"), False),
     # A header the load balancer did not set (no load balancer's certificate) names nobody.
     ({"HTTP_X_SSL_CLIENT_S_DN": OWNER, "HTTP_X_SSL_CLIENT_VERIFY": "SUCCESS"}, False)],
)  # fmt: skip
def test_log_records_are_the_owners_and_the_operators(stack, viewer, shown):
    conn, monitor = stack["conn"], stack["monitor"]
    (pid,) = jobs.submit(conn, [jobs.NewJob("private", "SITE_A")], OWNER)
    stack["logger"].store([normalise({"message": "secret output", "PandaID": pid}, "wn3")])
    with conn.cursor() as cur:
        cur.execute("UPDATE jobs SET pilot_log = 'secret tail' WHERE panda_id = %s", (pid,))
    conn.commit()
    data = twin(monitor, f"/jobs/{pid}", ssl_env=viewer)
    assert data["job"]["job_name"] == "private"  # the job itself is public
    if shown:
        assert [r["message"] for r in data["records"]] == ["secret output"], data
        assert data["job"]["pilot_log"] == "secret tail"
    else:
        assert data["records"] == [] and data["log_error"] == RECORDS_HIDDEN
        assert "pilot_log" not in data["job"]
        page = get(monitor, f"/jobs/{pid}", ssl_env=viewer)[2]
        assert "secret output" not in page and "secret tail" not in page


def test_the_logger_refuses_a_monitor_without_its_certificate(stack, pki):
    monitor = Monitor(
        MonitorConfig(
            database=stack["monitor"].config.database,
            logger_url=stack["monitor"].config.logger_url,
            ca_file=str(pki["ca"]),
        )
    )
    (pid,) = jobs.submit(stack["conn"], [jobs.NewJob("nocert", "SITE_A")], OWNER)
    data = twin(monitor, f"/jobs/{pid}", ssl_env=by_cert(OWNER))
    assert data["records"] == [] and "403" in data["log_error"], data


def fail(conn, pid: int, hours_ago: float = 0, **codes: int) -> None:
    """Put a job in failed with these error codes, its last change ``hours_ago``."""
    sets = ", ".join(f"{k} = %s" for k in codes)
    with conn.cursor() as cur:
        cur.execute(
            f"UPDATE jobs SET job_status = 'failed', {sets}, modification_time ="
            " UTC_TIMESTAMP(6) - INTERVAL %s SECOND WHERE panda_id = %s",
            (*codes.values(), int(hours_ago * 3600), pid),
        )
    conn.commit()


def test_job_list_filters_as_operators_type_them(stack):
    conn, monitor = stack["conn"], stack["monitor"]
    mine = jobs.submit(conn, [jobs.NewJob(f"f{i}", "SITE_F") for i in range(3)],
                       "/DC=test/CN=Filter User_1%")  # fmt: skip
    (theirs,) = jobs.submit(conn, [jobs.NewJob("g", "SITE_F")], "/DC=test/CN=Other")
    fail(conn, mine[0], pilot_error_code=1305)
    fail(conn, mine[1], hours_ago=50, pilot_error_code=1305)

    def ids(query):
        return [j["panda_id"] for j in twin(monitor, "/jobs", query)["jobs"]]

    assert ids("queue=SITE_F") == [theirs, *reversed(mine)]
    assert ids("site=SITE_F&user=Filter") == list(reversed(mine))
    # LIKE's wildcards in a user's text are its characters, not wildcards.
    assert ids("queue=SITE_F&user=User_1%25") == list(reversed(mine))
    assert ids("queue=SITE_F&user=User%1") == []
    assert ids("queue=SITE_F&state=failed&hours=24") == [mine[0]]
    assert ids("queue=SITE_F&state=failed&days=3") == [mine[1], mine[0]]
    assert ids("queue=SITE_F&pilot_error=1305") == [mine[1], mine[0]]
    row = twin(monitor, "/jobs", "queue=SITE_F&pilot_error=1305")["jobs"][0]
    assert row["user"] == "Filter User_1%" and "owner_dn" not in row
    for bad in ("hours=0", "days=99", "hours=x", "state=bogus", "pilot_error=1.5",
                "user=" + "x" * 200):  # fmt: skip
        status, _, body = get(monitor, "/jobs", f"{bad}&format=json")
        assert status == 400 and bad.split("=")[0] in json.loads(body)["error"], (bad, body)


def test_error_summary_counts_codes_per_queue_and_links_to_the_jobs(stack):
    conn, monitor = stack["conn"], stack["monitor"]
    ids = jobs.submit(conn, [jobs.NewJob(f"e{i}", "SITE_E") for i in range(4)], "/CN=u")
    fail(conn, ids[0], pilot_error_code=1201, pilot_error_diag="stage-in failed")
    fail(conn, ids[1], pilot_error_code=1201, pilot_error_diag="stage-in failed")
    fail(conn, ids[2], exe_error_code=65, trans_exit_code=65)
    fail(conn, ids[3], hours_ago=30, pilot_error_code=1201)
    data = twin(monitor, "/errors", "queue=SITE_E")
    assert data["hours"] == 24
    (pilot,) = data["errors"]["pilot_error"]
    assert (pilot["queue"], pilot["code"], pilot["n"], pilot["sample"]) == (
        "SITE_E", 1201, 2, "stage-in failed")  # fmt: skip
    assert [(e["code"], e["n"]) for e in data["errors"]["exe_error"]] == [(65, 1)]
    assert [(e["code"], e["n"]) for e in data["errors"]["trans_exit"]] == [(65, 1)]
    assert twin(monitor, "/errors", "queue=SITE_E&days=2")["errors"]["pilot_error"][0]["n"] == 3
    # Each count links to exactly its jobs.
    link = pilot["link"]
    assert link.startswith("/jobs?") and "pilot_error=1201" in link and "hours=24" in link
    listed = twin(monitor, "/jobs", link.split("?", 1)[1])["jobs"]
    assert sorted(j["panda_id"] for j in listed) == ids[:2]
    status, _, page = get(monitor, "/errors")
    assert status == 200 and "Payload errors" in page and 'href="?days=7"' in page


def test_servers_page_probes_each_server(stack):
    data = twin(stack["monitor"], "/servers")
    state = {s["name"]: (s["alive"], s["detail"]) for s in data["servers"]}
    assert state["srv-a"] == (True, "served by srv-a")
    assert state["srv-gone"][0] is False


def test_pilots_page_shows_factory_reports(stack):
    conn, monitor = stack["conn"], stack["monitor"]
    assert "No pilot factory has reported yet" in get(monitor, "/pilots")[2]
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO pilot_stats VALUES"
            " ('SITE_A', 'submit1', 5, 3, 1, 42, NULL, UTC_TIMESTAMP(6))"
        )
    conn.commit()
    (row,) = twin(monitor, "/pilots")["queues"]
    assert (row["queue"], row["idle"], row["running"], row["held"]) == ("SITE_A", 5, 3, 1)


def test_state_plot_is_an_svg_with_a_json_twin(stack):
    monitor = stack["monitor"]
    status, _, page = get(monitor, "/plots/states")
    assert status == 200 and "<svg" in page and "<polyline" in page
    # Gridlines, time ticks and axis labels; links to the other windows and each queue.
    assert page.count('class="grid"') >= 4 and 'class="xtick"' in page
    assert "time (UTC)" in page and "jobs per hour" in page
    assert 'href="?window=month"' in page and 'href="?window=week&amp;queue=SITE_B"' in page
    data = twin(monitor, "/plots/states")
    assert len(data["times"]) == 7 * 24 and data["window"] == "week"
    assert sum(data["series"]["activated"]) >= 5
    assert {"SITE_A", "SITE_B"} <= set(data["choices"]["queue"])
    assert len(twin(monitor, "/plots/states", "window=day")["times"]) == 24
    month = twin(monitor, "/plots/states", "window=month")
    assert len(month["times"]) == 30 * 4 and "jobs per 6 h" in get(monitor, "/plots/states",
                                                                  "window=month")[2]  # fmt: skip
    # One queue's plot counts that queue's jobs only.
    b = twin(monitor, "/plots/states", "queue=SITE_B")
    assert sum(b["series"]["activated"]) == 1 and "SITE_B" in b["title"]
    assert get(monitor, "/plots/states", "window=year")[0] == 400
    assert get(monitor, "/plots/states", urlencode({"queue": "<x>"}))[0] == 400


def test_pilot_plot_sums_the_factories_of_a_queue_over_time(stack):
    conn, monitor = stack["conn"], stack["monitor"]
    with conn.cursor() as cur:
        cur.execute("DELETE FROM pilot_stats_history")
        cur.executemany(
            "INSERT INTO pilot_stats_history (queue, submit_host, idle, running, held, at)"
            " VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6) - INTERVAL %s MINUTE)",
            [("SITE_A", "submit1", 5, 10, 0, 30), ("SITE_A", "submit2", 2, 4, 1, 30),
             ("SITE_A", "submit1", 1, 0, 0, 60 * 30), ("SITE_B", "submit1", 9, 9, 9, 30)],
        )  # fmt: skip
    conn.commit()
    status, _, page = get(monitor, "/plots/pilots", "queue=SITE_A")
    assert status == 200 and "<polyline" in page and "Pilots of SITE_A" in page
    data = twin(monitor, "/plots/pilots", "queue=SITE_A")
    assert len(data["times"]) == 145
    assert max(data["series"]["idle"]) == 7 and max(data["series"]["running"]) == 14
    assert max(data["series"]["held"]) == 1  # SITE_B's and the day-old report are left out
    week = twin(monitor, "/plots/pilots", "queue=SITE_A&hours=48")
    assert sorted(v for v in week["series"]["idle"] if v) == [1, 7]
    assert get(monitor, "/plots/pilots")[0] == 400
    assert get(monitor, "/plots/pilots", "queue=SITE_A&hours=many")[0] == 400


def test_only_get_and_known_pages(stack):
    monitor = stack["monitor"]
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD="POST", PATH_INFO="/", CONTENT_LENGTH="0")
    environ["wsgi.input"] = io.BytesIO(b"")
    codes = []
    monitor(environ, lambda status, headers: codes.append(status))
    assert codes[0].startswith("405")
    assert get(monitor, "/nothing", urlencode({"x": "<script>"}))[0] == 404
