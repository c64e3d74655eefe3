"""The pilot factory's arithmetic and what it hands HTCondor, without HTCondor: the
target of idle pilots, what a cycle submits and removes, the parsing of condor_q and
the Condor-G submit description. The real schedd is the molecule scenarios' part."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pandafacility.factory import (
    FactoryConfig,
    PilotCode,
    PilotCounts,
    QueueConfig,
    parse_condor_q,
    parse_manifest,
    plan,
    submit_description,
    target_idle,
)

GRID = "condor site1@site1 site1.lab.panda.test:9618"


def queue(**kw) -> QueueConfig:
    return QueueConfig(**{"name": "SITE_A", "grid_resource": GRID, **kw})


@pytest.mark.parametrize(
    "activated,expected", [(0, 2), (1, 2), (10, 5), (25, 13), (1000, 40), (-3, 2)]
)
def test_target_grows_with_waiting_jobs_within_bounds(activated, expected):
    assert target_idle(queue(min_idle=2, max_idle=40, jobs_per_pilot=2), activated) == expected


def test_plan_submits_what_is_missing_bounded_per_cycle():
    q = queue(min_idle=1, max_idle=500, max_per_cycle=50)
    assert plan(q, 300, PilotCounts(idle=20)) == (50, [])
    assert plan(q, 30, PilotCounts(idle=20)) == (10, [])


def test_plan_removes_only_the_newest_idle_surplus():
    counts = PilotCounts(idle=4, running=7, idle_ids=["3.0", "3.1", "4.0", "5.0"])
    assert plan(queue(min_idle=1), 0, counts) == (0, ["3.1", "4.0", "5.0"])
    assert plan(queue(min_idle=1), 4, counts) == (0, [])


def test_parse_condor_q_counts_by_queue_and_orders_idle_ids():
    out = "A 1 10 1\nA 1 9 0\nA 2 8 0\nB 5 7 0\nB 1 10 0\ngarbage\nA 4 6 0\n"
    counts = parse_condor_q(out)
    assert (counts["A"].idle, counts["A"].running, counts["A"].held) == (2, 1, 0)
    assert counts["A"].idle_ids == ["9.0", "10.1"]
    assert (counts["B"].idle, counts["B"].held) == (1, 1)


def test_submit_description_is_a_nonessential_grid_job(tmp_path):
    config = FactoryConfig(
        instance="submit1",
        server="https://pandaserver.lab.panda.test:25443",
        pilot_url="https://cache1.lab.panda.test/pilot/pilot.tar.gz",
        queues=(queue(),),
        ca_file="/etc/panda-facility/tls/ca.crt",
        cert="/var/lib/panda/autopilot/pilot.pem",
        work_dir=str(tmp_path),
        pilot_args=("--max-jobs", "it's 3"),
    )
    code = PilotCode("https://cache1.lab.panda.test/pilot/pilot-ab12.tar.gz", "ab12")
    text = submit_description(config, queue(), 7, code)
    lines = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    assert lines["universe"] == "grid" and lines["grid_resource"] == GRID
    assert lines["+Nonessential"] == "True" and lines["+PandaQueue"] == '"SITE_A"'
    assert lines["+PandaFactory"] == '"submit1"'
    assert lines["periodic_remove"] == "JobStatus == 5 && time() - EnteredCurrentStatus > 1800"
    # The proxy travels, never the long-lived credential.
    proxy = "/var/lib/panda/autopilot/proxy.pem"
    assert lines["transfer_input_files"].split(", ") == [config.ca_file, proxy]
    args = lines["arguments"]
    assert "--ca ca.crt --cert proxy.pem" in args and "'it''s 3'" in args
    wrapper, pilot = args.strip('"').split(" -- ")
    assert wrapper.split() == ["--pilot-url", code.url, "--pilot-sha256", "ab12", "--ca", "ca.crt"]
    assert pilot.startswith("--server https://pandaserver")
    assert text.rstrip().endswith("queue 7")


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "bad name"},
        {"grid_resource": "batch pbs site"},
        {"min_idle": -1},
        {"min_idle": 5, "max_idle": 2},
        {"max_per_cycle": 0},
        {"jobs_per_pilot": 0},
    ],
)
def test_bad_queue_settings_are_refused(bad):
    with pytest.raises(ValueError):
        queue(**bad)


def test_a_queue_listed_twice_is_refused(tmp_path):
    path = tmp_path / "autopilot.json"
    entry = {"name": "SITE_A", "grid_resource": GRID}
    path.write_text(
        json.dumps({"instance": "s", "server": "https://x", "pilot_url": "https://y",
                    "queues": [entry, entry]})
    )  # fmt: skip
    with pytest.raises(ValueError, match="twice"):
        FactoryConfig.load(path)


def test_one_cycle_without_server_or_schedd_changes_nothing_and_says_why(tmp_path, monkeypatch):
    import signal

    from pandafacility import factory

    monkeypatch.setattr(signal, "signal", lambda *_: None)  # leave pytest's own handlers

    path = tmp_path / "autopilot.json"
    path.write_text(
        json.dumps({"instance": "s", "server": "https://127.0.0.1:9", "pilot_url": "https://y",
                    "work_dir": str(tmp_path), "queues": [{"name": "Q", "grid_resource": GRID}]})
    )  # fmt: skip
    assert factory.main(["--config", str(path), "--once"]) == 0
    (queue,) = json.loads((tmp_path / "status.json").read_text())["queues"]
    assert queue["last_error"].startswith("server:") and queue["submitted_total"] == 0
    assert factory.main(["--config", str(tmp_path / "missing.json")]) == 2


def test_manifest_names_the_code_beside_the_head():
    sha = "0f" * 32
    head = "https://cache1.lab.panda.test/pilot/pilot.tar.gz"
    assert parse_manifest(f"{sha}  pilot-{sha}.tar.gz\n", head) == PilotCode(
        f"https://cache1.lab.panda.test/pilot/pilot-{sha}.tar.gz", sha
    )


@pytest.mark.parametrize(
    "text",
    ["", "0f  pilot.tar.gz", f"{'0f' * 32}  ../../evil.tar.gz", f"{'0f' * 32}  a b.tar.gz",
     f"{'0F' * 32}  pilot.tar.gz", f"{'0f' * 32}  https://elsewhere/pilot.tar.gz"],
)  # fmt: skip
def test_a_manifest_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError):
        parse_manifest(text, "https://cache1/pilot/pilot.tar.gz")


def test_the_pilot_code_comes_over_https_only():
    with pytest.raises(ValueError, match="HTTPS"):
        FactoryConfig(instance="s", server="https://x", queues=(),
                      pilot_url="http://cache1/pilot/pilot.tar.gz")  # fmt: skip


def test_the_pilots_proxy_is_made_renewed_and_never_the_credential(tmp_path):
    """The factory derives an RFC 3820 proxy of the pilots' credential, keeps it until
    less than proxy_renew_hours are left, and submits nothing without one."""
    testpki = pytest.importorskip("testpki")
    from cryptography import x509

    from pandafacility import factory, proxycert

    ca = testpki.issue("/CN=CA", ca=True, hours=48)
    owner = testpki.issue("/DC=test/OU=Robots/CN=pilot", ca, hours=48)
    cred = tmp_path / "pilot.pem"
    cred.write_bytes(testpki.pem(owner[0]) + testpki.pem(owner[1]))
    config = FactoryConfig(instance="s", server="https://s", pilot_url="https://p",
                           queues=(queue(),), cert=str(cred), work_dir=str(tmp_path),
                           proxy_hours=3, proxy_renew_hours=1)  # fmt: skip
    f = factory.Factory(config, schedd=object(), server=object(), code=object())
    f.renew_proxy()
    proxy_file = Path(config.proxy)
    first = proxy_file.read_bytes()
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", first, re.S)
    leaf, *chain = (x509.load_pem_x509_certificate(b) for b in blocks)
    assert leaf.issuer == owner[0].subject and chain == [owner[0]]
    assert leaf.subject.rdns[:-1] == owner[0].subject.rdns
    assert 2.9 < proxycert.hours_left(proxy_file) <= 3.0
    assert proxy_file.stat().st_mode & 0o077 == 0
    assert testpki.pem(owner[1]) not in first  # the proxy's own key, not the credential's
    f.renew_proxy()
    assert proxy_file.read_bytes() == first  # hours left: kept
    config2 = FactoryConfig(**{**config.__dict__, "proxy_renew_hours": 4})
    factory.Factory(config2, schedd=object(), server=object(), code=object()).renew_proxy()
    assert proxy_file.read_bytes() != first  # too few hours left: renewed
    cred.write_text("not a credential")
    proxy_file.unlink()
    with pytest.raises(ValueError):
        f.renew_proxy()
