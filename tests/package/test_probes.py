"""The Nagios plugins: the plugin API (one line, perfdata, exit codes), and each probe's
judgement on real inputs (a TLS server, certificates, files, HAProxy's CSV, Squid's and
condor_q's output, a replica's status)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from pandafacility.probes import __main__ as probes
from pandafacility.probes import cert, cleanup, factory, guard, haproxy, memory, replica, squid, vip
from pandafacility.probes.plugin import CRITICAL, OK, UNKNOWN, WARNING, Perf, Result, run, worst


def probe(name: str, *args: str, capsys) -> tuple[int, str]:
    code = probes.main([name, *args])
    return code, capsys.readouterr().out.strip()


def test_plugin_line_and_perfdata():
    perf = [Perf("time", 0.25, "s", 2, 10, 0), Perf("it's", 3)]
    assert Result(WARNING, "slow", perf).line("ALIVE") == (
        "ALIVE WARNING: slow | 'time'=0.25s;2;10;0 'it_s'=3"
    )
    assert Result(OK, "fine").line("X") == "X OK: fine"


def test_worst_ranks_critical_above_unknown_above_warning():
    assert worst([OK, WARNING, UNKNOWN]) == UNKNOWN
    assert worst([UNKNOWN, CRITICAL, OK]) == CRITICAL
    assert worst([]) == OK


def test_a_probe_that_fails_is_unknown_and_bad_options_too(capsys):
    def broken(_args):
        raise KeyError("MemAvailable")

    assert run("MEMORY", memory.parser(), broken, []) == UNKNOWN
    assert "MEMORY UNKNOWN: probe failed: KeyError" in capsys.readouterr().out
    assert probe("disk", "--nonsense", capsys=capsys)[0] == UNKNOWN
    assert probe("nosuchprobe", capsys=capsys)[0] == UNKNOWN


def test_alive_through_tls_by_address_and_by_name(serve_tls, pki, capsys):
    base = serve_tls(lambda env, start: (start("200 OK", []), [b"alive=yes"])[1])
    url = base.replace("127.0.0.1", "localhost") + "/server/panda/isAlive"
    code, out = probe("alive", "--url", url, "--address", "127.0.0.1", "--ca", str(pki["ca"]),
                      capsys=capsys)  # fmt: skip
    assert code == OK and out.startswith("ALIVE OK:") and "'time'=" in out
    code, out = probe("alive", "--url", url, "--expect", "alive=no", "--ca", str(pki["ca"]),
                      capsys=capsys)  # fmt: skip
    assert code == CRITICAL and "does not match" in out


def test_alive_refused_connection_and_wrong_name_are_critical(serve_tls, pki, capsys):
    base = serve_tls(lambda env, start: (start("200 OK", []), [b"alive=yes"])[1])
    code, out = probe("alive", "--url", "https://localhost:9/", "--ca", str(pki["ca"]),
                      capsys=capsys)  # fmt: skip
    assert code == CRITICAL
    other = base.replace("127.0.0.1", "pandaserver.example") + "/"
    code, out = probe("alive", "--url", other, "--address", "127.0.0.1", "--ca", str(pki["ca"]),
                      capsys=capsys)  # fmt: skip
    assert code == CRITICAL and "CERTIFICATE_VERIFY_FAILED" in out


@pytest.mark.parametrize(("hours", "status"), [(24 * 90, OK), (24 * 10, WARNING), (2, CRITICAL)])
def test_cert_days_left(tmp_path, capsys, hours, status):
    testpki = pytest.importorskip("testpki")
    path = tmp_path / "host.pem"
    path.write_bytes(testpki.pem(testpki.issue("/CN=host", hours=hours)[0]))
    code, out = probe("cert", "--file", str(path), capsys=capsys)
    assert code == status, out
    assert "_days_left'=" in out


@pytest.mark.parametrize(("hours", "status"), [(24 * 30, OK), (24 * 3, WARNING), (2, CRITICAL)])
def test_crls_of_a_ca_directory(tmp_path, capsys, hours, status):
    testpki = pytest.importorskip("testpki")
    ca = testpki.issue("/CN=CA", ca=True, hours=24 * 400)
    (tmp_path / "0a1b2c3d.r0").write_bytes(testpki.crl(ca, [7], hours=hours))
    (tmp_path / "0a1b2c3d.0").write_bytes(testpki.pem(ca[0]))  # not a CRL: not read
    code, out = probe("cert", "--crl-dir", str(tmp_path), capsys=capsys)
    assert code == status and "0a1b2c3d.r0" in out and ".0:" not in out, out


def test_cert_expired_and_missing(tmp_path, capsys, monkeypatch):
    testpki = pytest.importorskip("testpki")
    path = tmp_path / "host.pem"
    path.write_bytes(testpki.pem(testpki.issue("/CN=host", hours=1)[0]))
    expires = cert.not_after(str(path))
    monkeypatch.setattr(cert, "time", type("T", (), {"time": staticmethod(lambda: expires + 60),
                                                     "strftime": time.strftime,
                                                     "gmtime": time.gmtime}))  # fmt: skip
    code, out = probe("cert", "--file", str(path), capsys=capsys)
    assert code == CRITICAL and "expired" in out
    monkeypatch.undo()
    assert probe("cert", "--file", str(tmp_path / "none.pem"), capsys=capsys)[0] == CRITICAL


def test_memory_from_meminfo(tmp_path, capsys):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       1000000 kB\nMemFree: 10 kB\nMemAvailable:     80000 kB\n")
    code, out = probe("memory", "--meminfo", str(info), capsys=capsys)
    assert code == WARNING and "8.0% of 976 MiB available" in out
    assert memory.meminfo(info.read_text())["MemTotal"] == 1000000


def test_disk_thresholds_and_missing_path(tmp_path, capsys):
    assert probe("disk", "--path", str(tmp_path), "--warn", "101", "--crit", "102",
                 capsys=capsys)[0] == OK  # fmt: skip
    assert probe("disk", "--path", str(tmp_path), "--warn", "0", "--crit", "101",
                 capsys=capsys)[0] == WARNING  # fmt: skip
    code, out = probe("disk", "--path", str(tmp_path / "gone"), capsys=capsys)
    assert code == CRITICAL and "gone" in out


def test_cleanup_judges_the_oldest_file(tmp_path, capsys):
    logs = tmp_path / "logs"
    (logs / "q").mkdir(parents=True)
    old = logs / "q" / "1.out"
    old.write_text("x")
    (logs / "new.out").write_text("x")
    assert probe("cleanup", "--dir", f"{logs}:7", capsys=capsys)[0] == OK
    nine_days = time.time() - 9 * 86400
    os.utime(old, (nine_days, nine_days))
    code, out = probe("cleanup", "--dir", f"{logs}:7", capsys=capsys)
    assert code == WARNING and "oldest 9.0 d" in out
    assert probe("cleanup", "--dir", f"{logs}:5", capsys=capsys)[0] == CRITICAL
    assert cleanup.oldest(str(tmp_path / "logs" / "q")) == pytest.approx(9, abs=0.01)
    assert probe("cleanup", "--dir", f"{tmp_path}/none:7", capsys=capsys)[0] == CRITICAL
    assert [cleanup.age_days(a) for a in ("30d", "12h", "2w", "3")] == [30, 0.5, 14, 3]


def write_status(path, age: float, **queue) -> None:
    q = {"queue": "SITE_A", "idle": 3, "running": 5, "held": 0, "last_error": "", **queue}
    path.write_text(json.dumps({"instance": "s1", "cycle_at": time.time() - age, "queues": [q]}))


def test_factory_status(tmp_path, capsys):
    status = tmp_path / "status.json"
    write_status(status, 10)
    code, out = probe("factory", "--status", str(status), capsys=capsys)
    assert code == OK and "'SITE_A_idle'=3" in out and "1 queue" in out
    write_status(status, 10, last_error="condor: schedd down")
    assert probe("factory", "--status", str(status), capsys=capsys)[0] == WARNING
    write_status(status, 10, held=12)
    assert probe("factory", "--status", str(status), capsys=capsys)[0] == WARNING
    write_status(status, 1000)
    assert probe("factory", "--status", str(status), capsys=capsys)[0] == CRITICAL
    assert probe("factory", "--status", str(tmp_path / "none"), capsys=capsys)[0] == CRITICAL
    assert factory.parser().parse_args([]).status.endswith("status.json")


STAT = """# pxname,svname,qcur,status,check_status
pandaserver,FRONTEND,0,OPEN,
pandaserver,srv1,0,UP,L7OK
pandaserver,srv2,0,DOWN,L7STS
pandaserver,BACKEND,0,UP,
pandamon,mon1,0,MAINT,
pandamon,BACKEND,0,DOWN,
stats,FRONTEND,0,OPEN,
"""


def test_haproxy_backends(monkeypatch, capsys):
    backends = haproxy.servers(STAT)
    assert backends["pandaserver"] == {"srv1": "UP", "srv2": "DOWN"}
    assert backends["pandamon"] == {"mon1": "MAINT"} and "stats" not in backends
    monkeypatch.setattr(haproxy, "show_stat", lambda _path: STAT)
    code, out = probe("haproxy", "--backend", "pandaserver", capsys=capsys)
    assert code == WARNING and "pandaserver 1/2 up (srv2 not)" in out
    code, out = probe("haproxy", capsys=capsys)
    assert code == CRITICAL and "pandamon 0/1 up" in out
    assert probe("haproxy", "--backend", "nope", capsys=capsys)[0] == CRITICAL


FIVE_MIN = """sample_start_time = 1795391552.0 (Mon, 23 Nov 2026 00:00:00 GMT)
client_http.requests = %f/sec
client_http.hits = %f/sec
client_http.errors = 0.000000/sec
"""


def test_squid_rates_over_five_minutes():
    assert squid.parse(FIVE_MIN % (2.0, 1.5)) == (600.0, 450.0)
    with pytest.raises(ValueError):
        squid.parse("Squid Object Cache")
    assert squid.parser().parse_args([]).url == "http://127.0.0.1/squid-internal-mgr/5min"


@pytest.mark.parametrize(
    ("per_sec", "hit_per_sec", "status"),
    [(2.0, 1.95, OK), (2.0, 1.2, WARNING), (2.0, 0.2, CRITICAL), (0.01, 0.0, OK)],
)
def test_squid_judgement(monkeypatch, capsys, per_sec, hit_per_sec, status):
    class Answer:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return (FIVE_MIN % (per_sec, hit_per_sec)).encode()

    monkeypatch.setattr(squid.urllib.request, "urlopen", lambda url, timeout: Answer())
    assert probe("squid", capsys=capsys)[0] == status


def test_schedd_idle_pilots_per_queue(monkeypatch, capsys):
    from pandafacility.probes import schedd

    # SITE_A: one idle; SITE_B: one running; SITE_C: held only; SITE_D: nothing queued.
    out = "SITE_A 1 10 0\nSITE_A 2 10 1\nSITE_B 2 11 0\nSITE_C 5 12 0\n"
    monkeypatch.setattr(schedd, "condor_q", lambda timeout: out)
    asked = []

    def history(since, timeout):
        asked.append(since)
        return Counter({"SITE_D": 3})

    monkeypatch.setattr(schedd, "finished_since", history)
    code, text = probe("schedd", "--queue", "SITE_A", "--queue", "SITE_B", capsys=capsys)
    assert code == OK and "SITE_A 1 idle/1 running/0 held" in text
    assert not asked  # the history is read only for a queue without idle or running pilots
    code, text = probe("schedd", "--queue", "SITE_C", "--fed-within", "600", capsys=capsys)
    assert code == WARNING and "SITE_C 0 idle/0 running/1 held (none finished in 600 s" in text
    assert time.time() - 610 < asked[-1] <= time.time() - 600
    code, text = probe("schedd", "--queue", "SITE_D", capsys=capsys)
    assert code == OK and "SITE_D 0 idle/0 running/0 held (3 finished in 900 s)" in text

    def down(timeout):
        raise RuntimeError("Failed to fetch ads from schedd")

    monkeypatch.setattr(schedd, "condor_q", down)
    assert probe("schedd", capsys=capsys)[0] == CRITICAL


def test_schedd_history_read_back_to_the_window(monkeypatch):
    from pandafacility.probes import schedd

    seen = []

    def run(cmd, **kwargs):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "SITE_D\nSITE_D\nSITE_E\n", "")

    monkeypatch.setattr(schedd.subprocess, "run", run)
    assert schedd.finished_since(1000, 5) == Counter({"SITE_D": 2, "SITE_E": 1})
    cmd = seen[0]
    assert cmd[0] == "condor_history"
    assert cmd[cmd.index("-since") + 1] == "EnteredCurrentStatus < 1000"
    assert "JobStatus == 4" in cmd[cmd.index("-constraint") + 1]


GOOD = {"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 3,
        "Last_SQL_Error": "", "Last_IO_Error": ""}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "read_only", "expected", "words"),
    [
        (GOOD, True, OK, "3 s behind"),
        ({**GOOD, "Seconds_Behind_Master": 120}, True, WARNING, "120 s behind"),
        (
            {
                **GOOD,
                "Slave_SQL_Running": "No",
                "Seconds_Behind_Master": None,
                "Last_SQL_Error": "Duplicate entry",
            },
            True,
            CRITICAL,
            "SQL thread No",
        ),
        (GOOD, False, CRITICAL, "read_only is OFF"),
        (None, True, CRITICAL, "not a replica"),
    ],
)
def test_replica_judgement(status, read_only, expected, words):
    result = replica.judge(status, read_only, 60, 300)
    assert result.status == expected and words in result.text


def test_guard_counts_recent_catches():
    now = datetime.now(timezone.utc)
    old = (now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"{old} KILLED id=1", f"{new} KILLED id=2", f"{new} FOUND id=3", "garbage"]
    assert guard.recent(lines, now - timedelta(hours=1)) == 2


def test_vip_held_or_absent(monkeypatch):
    ip = json.dumps([{"ifname": "eth0", "addr_info": [{"local": "172.28.10.11"},
                                                      {"local": "172.28.10.100"}]}])  # fmt: skip
    assert vip.addresses(ip) == {"172.28.10.11", "172.28.10.100"}

    class Done:
        stdout = ip

    monkeypatch.setattr(vip.subprocess, "run", lambda *a, **k: Done())
    master = vip.parser().parse_args(["--held", "172.28.10.100", "--absent", "172.28.10.102"])
    assert vip.check(master).status == OK
    backup = vip.parser().parse_args(["--absent", "172.28.10.100"])
    result = vip.check(backup)
    assert result.status == CRITICAL and "held as backup: 172.28.10.100" in result.text
    lost = vip.parser().parse_args(["--held", "172.28.10.101"])
    assert "missing: 172.28.10.101" in vip.check(lost).text
