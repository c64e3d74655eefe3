"""A pilot factory cycle against the real server application (in-process over TLS) and
a real MariaDB: the activated jobs it reads, the pilots it asks its schedd for, and the
counts it reports, which the monitor's pilot page shows, and the pilot code it reads
from a cache's manifest over TLS. The schedd here is a stand-in that records the
factory's requests; the real one is exercised by molecule."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from conftest import USER_DN
from pandafacility import jobs
from pandafacility.factory import Factory, FactoryConfig, PilotCounts, QueueConfig

GRID = "condor site1@site1 site1.lab.panda.test:9618"
SHA = "ab" * 32


@pytest.fixture(scope="module")
def cache(serve_tls) -> dict:
    """A pilot cache's manifest over TLS; set ``manifest`` to change what it says."""
    state = {"manifest": f"{SHA}  pilot-{SHA}.tar.gz\n"}

    def app(environ, start_response):
        if environ["PATH_INFO"] != "/pilot/pilot.tar.gz.sha256":
            start_response("404 Not Found", [])
            return [b""]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [state["manifest"].encode()]

    state["url"] = serve_tls(app) + "/pilot/pilot.tar.gz"
    return state


class RecordingSchedd:
    def __init__(self, counts: dict[str, PilotCounts]) -> None:
        self._counts = counts
        self.submitted: list[tuple[str, int]] = []
        self.removed: list[str] = []

    def counts(self) -> dict[str, PilotCounts]:
        return self._counts

    def submit(self, queue: QueueConfig, count: int, code) -> int:
        self.submitted.append((queue.name, count))
        self.code = code
        return count

    def remove(self, ids: list[str]) -> None:
        self.removed.extend(ids)


def config(https_server, pki, tmp_path, *queues: QueueConfig, pilot_url="") -> FactoryConfig:
    return FactoryConfig(
        instance="submit1",
        server=https_server,
        pilot_url=pilot_url or "https://127.0.0.1:9/pilot/pilot.tar.gz",
        queues=queues,
        ca_file=str(pki["ca"]),
        cert=str(pki["pilot"]),
        work_dir=str(tmp_path),
    )


def test_cycle_scales_by_waiting_jobs_and_reports(clean_db, https_server, pki, tmp_path, cache):
    jobs.submit(clean_db, [jobs.NewJob(f"w{i}", "SITE_A") for i in range(12)], USER_DN)
    busy = QueueConfig("SITE_A", GRID, min_idle=1, max_idle=10, max_per_cycle=4)
    quiet = QueueConfig("SITE_B", GRID, min_idle=1, max_idle=10)
    schedd = RecordingSchedd(
        {"SITE_B": PilotCounts(idle=3, running=2, idle_ids=["1.0", "1.1", "2.0"])}
    )
    settings = config(https_server, pki, tmp_path, busy, quiet, pilot_url=cache["url"])
    factory = Factory(settings, schedd=schedd)
    stats = factory.cycle()
    assert schedd.submitted == [("SITE_A", 4)]  # 12 waiting, at most 4 per cycle
    # The pilots run the code the manifest named, by its hash, beside the head's URL.
    assert schedd.code.sha256 == SHA
    assert schedd.code.url == cache["url"].replace("pilot.tar.gz", f"pilot-{SHA}.tar.gz")
    assert schedd.removed == ["1.1", "2.0"]  # nothing waits at SITE_B: keep one idle
    assert [s["last_error"] for s in stats] == ["", ""]
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["queues"][0]["activated"] == 12
    clean_db.commit()
    with clean_db.cursor() as cur:
        cur.execute("SELECT queue, idle, running, submitted_total FROM pilot_stats ORDER BY queue")
        rows = cur.fetchall()
    assert [(r["queue"], r["idle"], r["running"], r["submitted_total"]) for r in rows] == [
        ("SITE_A", 0, 0, 4),
        ("SITE_B", 3, 2, 0),
    ]


def test_without_the_pilot_codes_hash_no_pilot_is_sent(
    clean_db, https_server, pki, tmp_path, cache
):
    """A cache that never answered, or a manifest that is not one: nothing submitted,
    and the queue's last_error says why; a cache that stops answering later leaves the
    factory with the hash it read last."""
    jobs.submit(clean_db, [jobs.NewJob("w", "SITE_A")], USER_DN)
    q = QueueConfig("SITE_A", GRID, min_idle=1, max_idle=10)
    schedd = RecordingSchedd({})
    (stats,) = Factory(config(https_server, pki, tmp_path, q), schedd=schedd).cycle()
    assert schedd.submitted == [] and stats["last_error"].startswith("pilot code:")
    cache["manifest"] = "<html>not a manifest</html>"
    try:
        factory = Factory(config(https_server, pki, tmp_path, q, pilot_url=cache["url"]),
                          schedd=schedd)  # fmt: skip
        (stats,) = factory.cycle()
        assert schedd.submitted == [] and "is not '<sha256>" in stats["last_error"]
        cache["manifest"] = f"{SHA}  pilot-{SHA}.tar.gz\n"
        factory.cycle()
        cache["manifest"] = "gone"
        (stats,) = factory.cycle()
        assert stats["last_error"] == "" and schedd.code.sha256 == SHA
    finally:
        cache["manifest"] = f"{SHA}  pilot-{SHA}.tar.gz\n"


def test_without_the_server_the_factory_changes_nothing(pki, tmp_path):
    schedd = RecordingSchedd({})
    q = QueueConfig("SITE_A", GRID)
    factory = Factory(config("https://127.0.0.1:9", pki, tmp_path, q), schedd=schedd)
    (stats,) = factory.cycle()
    assert schedd.submitted == [] and stats["last_error"].startswith("server:")


@pytest.mark.parametrize(
    "body,cert,status",
    [
        ({"submit_host": "s", "queues": [{"queue": "Q", "idle": -1}]}, "pilot", 400),
        ({"submit_host": "s", "queues": [{"queue": "bad queue"}]}, "pilot", 400),
        ({"submit_host": "s", "queues": "no"}, "pilot", 400),
        ({"submit_host": "s", "queues": []}, "user", 403),
    ],
)
def test_factory_report_refuses_bad_input(https_server, pki, clean_db, body, cert, status):
    import ssl

    context = ssl.create_default_context(cafile=str(pki["ca"]))
    context.load_cert_chain(str(pki[cert]))
    request = urllib.request.Request(
        f"{https_server}/api/v1/factory/report",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10, context=context)
    assert refused.value.code == status
    with clean_db.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM pilot_stats")
        assert cur.fetchone()["n"] == 0
