"""The guard's rules, its log line and its mail, on process-list rows."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "src"))
from pandafacility.dbguard import Process, Settings, log_line, mail, offenders

SETTINGS = Settings(threshold=60, ignore_users=("system user", "panda_repl"))


def proc(
    id_: int = 7,
    user: str = "panda_rw",
    command: str = "Query",
    time_: float = 90,
    info: str | None = "SELECT * FROM jobs",
) -> Process:
    return Process(id_, user, "10.0.0.5:4711", "panda", command, time_, info)


def test_long_query_is_an_offender():
    assert offenders([proc()], SETTINGS, own_id=1) == [proc()]


@pytest.mark.parametrize(
    "row",
    [
        proc(time_=59.9),  # under the threshold
        proc(user="panda_repl"),  # ignored user
        proc(user="system user"),  # replication threads
        proc(command="Sleep"),  # idle connection
        proc(command="Binlog Dump"),  # a replica's dump thread
        proc(info=None),  # nothing running
        proc(id_=1),  # the guard's own connection
    ],
)
def test_not_offenders(row):
    assert offenders([row], SETTINGS, own_id=1) == []


def test_match_rules_narrow_the_choice():
    rows = [proc(1, info="SELECT slow"), proc(2, user="other"), proc(3, info="UPDATE x")]
    s = Settings(threshold=60, match_users=("panda_rw",), match_query=r"^select")
    assert [p.id for p in offenders(rows, s, own_id=99)] == [1]


def test_longest_first():
    rows = [proc(1, time_=70), proc(2, time_=700), proc(3, time_=61)]
    assert [p.id for p in offenders(rows, SETTINGS, own_id=99)] == [2, 1, 3]


def test_log_line_holds_what_an_operator_needs():
    line = log_line(
        proc(info="SELECT *\n  FROM jobs"),
        "KILLED",
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    )
    assert line == (
        "2026-01-02T03:04:05Z KILLED id=7 user=panda_rw host=10.0.0.5:4711 "
        "db=panda time=90s query='SELECT * FROM jobs'"
    )


def test_mail_lists_every_line():
    s = Settings(mail_to=("a@x.org", "b@x.org"), mail_from="guard@db1")
    msg = mail(s, ["one", "two"], "db1.x.org")
    assert msg["To"] == "a@x.org, b@x.org" and "2 slow queries on db1.x.org" in msg["Subject"]
    assert "one\ntwo" in msg.get_content()


def test_settings_load_and_refuse_unknown_keys(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"threshold": 5, "commands": ["Query", "Execute"]}))
    assert Settings.load(path).commands == ("Query", "Execute")
    path.write_text(json.dumps({"treshold": 5}))
    with pytest.raises(ValueError, match="treshold"):
        Settings.load(path)
    path.write_text(json.dumps({"threshold": 0}))
    with pytest.raises(ValueError, match="at least 1"):
        Settings.load(path)
