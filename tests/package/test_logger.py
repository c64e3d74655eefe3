"""The PanDA logger's WSGI application, in-process, on a SQLite file of the test's own:
both wire forms of panda-common's HTTP handler, reading back by job, bounds, pruning,
and who may write and read (by the client certificate mod_ssl verified)."""

from __future__ import annotations

import io
import json
import threading
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults

import pytest

from pandafacility.identity import canonical_dns
from pandafacility.logger import MESSAGE_LIMIT, Logger, LoggerConfig

PILOT = "/DC=test/OU=Robots/CN=pilot"
MONITOR = "/OU=panda monitor/CN=mon1.test"
OPERATOR = "/DC=test/CN=Operator"
USER = "/DC=test/CN=Some User"


@pytest.fixture
def logger(tmp_path):
    return Logger(
        LoggerConfig(
            database=tmp_path / "log.sqlite",
            instance="log-test",
            max_records=50,
            writer_dns=canonical_dns([PILOT]),
            reader_dns=canonical_dns([MONITOR, OPERATOR]),
        )
    )


def call(app, method, path, query="", body=b"", dn=None, addr="192.0.2.7"):
    """A request as mod_ssl hands it over; ``dn`` is the verified client certificate's
    (by default the pilots' when writing, the monitor's when reading)."""
    if dn is None:
        dn = MONITOR if path == "/logger/records" else PILOT
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(
        REQUEST_METHOD=method, PATH_INFO=path, QUERY_STRING=query, CONTENT_LENGTH=str(len(body))
    )
    environ["REMOTE_ADDR"] = addr
    if dn:
        environ.update(SSL_CLIENT_VERIFY="SUCCESS", SSL_CLIENT_S_DN=dn)
    environ["wsgi.input"] = io.BytesIO(body)
    seen = {}

    def start_response(status, headers):
        seen["status"] = int(status.split()[0])
        seen["headers"] = dict(headers)

    out = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], out


def records(app, panda_id):
    status, _, out = call(app, "GET", "/logger/records", f"panda_id={panda_id}")
    assert status == 200
    return json.loads(out)["data"]


def test_get_query_form_is_stored_and_read_by_job(logger):
    fields = {"name": "panda.pilot", "levelname": "INFO", "message": "job started", "PandaID": 42}
    status, headers, _ = call(logger, "GET", "/logger/logger/query", urlencode(fields))
    assert status == 200 and headers["X-Served-By"] == "log-test"
    call(logger, "GET", "/logger/logger/query", urlencode({**fields, "PandaID": 7}))
    (record,) = records(logger, 42)
    assert record["message"] == "job started" and record["levelname"] == "INFO"


def test_json_post_form_is_stored(logger):
    body = [
        {"headers": {"timestamp": 1, "host": "wn1"}, "body": json.dumps({"msg": m, "PandaID": 9})}
        for m in ("one", "two")
    ]
    status, _, _ = call(logger, "POST", "/logger/logger/query", body=json.dumps(body).encode())
    assert status == 200
    assert [(r["message"], r["host"]) for r in records(logger, 9)] == [
        ("one", "wn1"),
        ("two", "wn1"),
    ]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"{}", b"[]", b'[{"body": 5}]', b'[{"body": "[1]"}]', b'[{"body": "nope"}]',
     b"[" * 100_000 + b"]" * 100_000, b'[{"body": "' + b"[" * 100_000 + b'"}]'],
)  # fmt: skip
def test_bad_posts_are_refused_and_nothing_stored(logger, body):
    status, _, out = call(logger, "POST", "/logger/logger/query", body=body)
    assert status == 400 and json.loads(out)["success"] is False
    assert records(logger, -1) == []


def test_long_messages_are_cut(logger):
    call(logger, "GET", "/logger/logger/query", urlencode({"message": "x" * 9000, "PandaID": 1}))
    assert len(records(logger, 1)[0]["message"]) == MESSAGE_LIMIT


def test_pruning_keeps_the_newest(logger):
    body = [{"body": json.dumps({"msg": str(i), "PandaID": 3})} for i in range(80)]
    call(logger, "POST", "/logger/logger/query", body=json.dumps(body).encode())
    assert logger.maybe_prune(now=10**10) >= 30  # everything is older than the retention...
    assert records(logger, 3) == []  # ...at that far a time, so all is gone
    call(logger, "POST", "/logger/logger/query", body=json.dumps(body).encode())
    logger._last_prune = 0
    logger.maybe_prune()
    kept = records(logger, 3)
    assert len(kept) == 50 and kept[-1]["message"] == "79"


def test_concurrent_writers(logger):
    def send(n):
        for i in range(20):
            call(
                logger,
                "GET",
                "/logger/logger/query",
                urlencode({"message": f"{n}-{i}", "PandaID": 5}),
            )

    threads = [threading.Thread(target=send, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(records(logger, 5)) == 40


def test_probe_and_bad_reads(logger):
    assert call(logger, "GET", "/logger/isAlive")[2] == b"alive=yes"
    assert call(logger, "GET", "/logger/records", "panda_id=abc")[0] == 400
    assert call(logger, "GET", "/logger/nothing")[0] == 404


def test_lazy_application_builds_once_from_the_environ(tmp_path):
    from pandafacility.logger import application

    config = tmp_path / "logger.json"
    config.write_text(json.dumps({"database": str(tmp_path / "l.sqlite"), "instance": "lazy"}))
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(PATH_INFO="/logger/isAlive", PANDA_LOGGER_CONFIG=str(config))
    seen = []
    for _ in range(2):
        out = application(dict(environ), lambda status, headers: seen.append(dict(headers)))
        assert b"".join(out) == b"alive=yes"
    assert [h["X-Served-By"] for h in seen] == ["lazy", "lazy"]


@pytest.mark.parametrize("dn", ["", USER, MONITOR])
def test_only_facility_identities_write(logger, dn):
    """No certificate (the plain HTTP port of old), a user's (a payload that found one)
    or a reader's: refused, nothing stored."""
    query = urlencode({"message": "forged", "PandaID": 11})
    status, _, out = call(logger, "GET", "/logger/logger/query", query, dn=dn)
    assert status == 403 and json.loads(out)["success"] is False
    body = json.dumps([{"body": json.dumps({"msg": "forged", "PandaID": 11})}]).encode()
    assert call(logger, "POST", "/logger/logger/query", body=body, dn=dn)[0] == 403
    assert records(logger, 11) == []


def test_a_pilots_proxy_writes_as_its_owner(logger):
    query = urlencode({"message": "from a proxy", "PandaID": 12})
    assert call(logger, "GET", "/logger/logger/query", query, dn=PILOT + "/CN=12345")[0] == 200
    assert [r["message"] for r in records(logger, 12)] == ["from a proxy"]


@pytest.mark.parametrize(("dn", "status"), [("", 403), (USER, 403), (OPERATOR, 200),
                                            (PILOT, 403), (MONITOR, 200)])  # fmt: skip
def test_records_are_read_by_monitors_and_operators_never_pilots(logger, dn, status):
    assert call(logger, "GET", "/logger/records", "panda_id=1", dn=dn)[0] == status


def test_each_source_is_bounded(tmp_path):
    app = Logger(
        LoggerConfig(
            database=tmp_path / "log.sqlite",
            writer_dns=canonical_dns([PILOT]),
            reader_dns=canonical_dns([MONITOR]),
            source_limit=30,
            source_window=3600,
        )
    )
    batch = json.dumps([{"body": json.dumps({"msg": str(i), "PandaID": 4})} for i in range(20)])
    assert call(app, "POST", "/logger/logger/query", body=batch.encode())[0] == 200
    status, headers, out = call(app, "POST", "/logger/logger/query", body=batch.encode())
    assert status == 429 and int(headers["Retry-After"]) >= 1, out
    assert len(records(app, 4)) == 20  # the refused batch stored nothing
    # Another source (another worker node) has its own count.
    other = call(app, "POST", "/logger/logger/query", body=batch.encode(), addr="192.0.2.8")
    assert other[0] == 200
    assert len(records(app, 4)) == 40


def test_a_batch_over_the_bound_is_too_large_not_too_early(tmp_path):
    app = Logger(LoggerConfig(database=tmp_path / "l.sqlite", writer_dns=canonical_dns([PILOT]),
                              source_limit=10))  # fmt: skip
    batch = json.dumps([{"body": json.dumps({"msg": str(i), "PandaID": 4})} for i in range(11)])
    status, headers, _ = call(app, "POST", "/logger/logger/query", body=batch.encode())
    assert status == 413 and "Retry-After" not in headers
