"""Metrics shared by the processes of one service: each process's counts in a file of
its own, summed at a scrape; a gone process's counts kept; the text format Prometheus
reads."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from pandafacility import metrics

REQ = "panda_server_requests_total"


def test_processes_are_summed_and_a_gone_one_is_kept(tmp_path):
    one = metrics.Counters(tmp_path, flush_every=0)
    ok = metrics.labels(endpoint="/x", code="200")
    one.inc(REQ, ok)
    one.inc(REQ, ok)
    # A process that has ended (its pid cannot be running: beyond pid_max) ...
    gone = metrics.Counters(tmp_path, flush_every=0, pid=2**31 - 1)
    gone.inc(REQ, ok, 5)
    gone.inc(REQ, metrics.labels(endpoint="/x", code="503"))
    totals = one.totals()
    assert totals[(REQ, ok)] == 7
    assert totals[(REQ, metrics.labels(endpoint="/x", code="503"))] == 1
    # ... is folded into gone.json, and still counted.
    assert not (tmp_path / f"{2**31 - 1}.json").exists()
    assert (tmp_path / metrics.GONE).exists()
    one.inc(REQ, ok)
    assert one.totals()[(REQ, ok)] == 8


def test_a_running_process_keeps_its_own_file(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        other = metrics.Counters(tmp_path, flush_every=0, pid=child.pid)
        other.inc(REQ, (), 3)
        assert metrics.Counters(tmp_path).totals()[(REQ, ())] == 3
        assert (tmp_path / f"{child.pid}.json").exists()
    finally:
        child.kill()
        child.wait()


def test_writes_are_spaced_but_a_scrape_sees_everything(tmp_path):
    counters = metrics.Counters(tmp_path, flush_every=3600)
    counters.inc(REQ)  # the first write happens
    counters.inc(REQ)  # within the hour: kept in memory only
    on_disk = json.loads((tmp_path / f"{counters.pid}.json").read_text())
    assert on_disk == [[REQ, [], 1.0]]
    assert counters.totals()[(REQ, ())] == 2


def test_the_last_counts_are_written_when_the_interval_is_over(tmp_path):
    counters = metrics.Counters(tmp_path, flush_every=0.2)
    counters.inc(REQ)
    counters.inc(REQ)  # then the process goes idle
    time.sleep(0.5)
    on_disk = json.loads((tmp_path / f"{counters.pid}.json").read_text())
    assert on_disk == [[REQ, [], 2.0]]


def test_without_a_directory_the_process_counts_alone():
    counters = metrics.Counters(None)
    counters.inc(REQ)
    assert counters.totals() == {(REQ, ()): 1.0}


def test_histogram_buckets_are_cumulative_and_exposed():
    counters = metrics.Counters(None)
    for seconds in (0.003, 0.2, 30):
        counters.observe("acquire_seconds", seconds)
    samples = [(n, lbls, v) for (n, lbls), v in counters.totals().items()]
    text = metrics.exposition({"acquire_seconds": ("histogram", "Time.")}, samples)
    assert "# TYPE acquire_seconds histogram" in text
    assert 'acquire_seconds_bucket{le="0.005"} 1.0' in text
    assert 'acquire_seconds_bucket{le="0.25"} 2.0' in text
    assert 'acquire_seconds_bucket{le="10.0"} 2.0' in text
    assert 'acquire_seconds_bucket{le="+Inf"} 3.0' in text
    assert "acquire_seconds_count 3.0" in text
    assert "acquire_seconds_sum 30.203" in text


def test_label_values_are_escaped():
    text = metrics.exposition(
        {"panda_jobs": ("gauge", "Jobs.")},
        [("panda_jobs", metrics.labels(queue='A"B\\C\nD', state="running"), 2)],
    )
    assert 'panda_jobs{queue="A\\"B\\\\C\\nD",state="running"} 2.0' in text


def test_a_directory_that_cannot_be_written_fails_no_request(tmp_path, caplog):
    counters = metrics.Counters(tmp_path / "gone-away", flush_every=0)
    counters.inc(REQ)  # the directory is missing: logged, not raised
    counters.inc(REQ)
    assert counters.totals()[(REQ, ())] == 2
    assert sum("cannot write" in r.message for r in caplog.records) == 1


def test_a_damaged_file_counts_nothing_and_fails_no_scrape(tmp_path):
    (tmp_path / metrics.GONE).write_text("")
    (tmp_path / f"{2**31 - 3}.json").write_text('[["a", 5, 1]]')  # an ended process's
    counters = metrics.Counters(tmp_path, flush_every=0)
    counters.inc(REQ)
    assert counters.totals() == {(REQ, ()): 1.0}
