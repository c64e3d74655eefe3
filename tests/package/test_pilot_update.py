"""The pilot sends a state update again after a dropped connection or a busy server, a
bounded number of times; a refusal is not repeated, and taking a job never is."""

from __future__ import annotations

import http.client
import io
import urllib.error

import pytest

from pandafacility import pilot


def busy(code: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("https://s/api", code, "busy", {}, io.BytesIO(b""))


@pytest.fixture
def calls(monkeypatch):
    """The answers (or errors) the server gives, in turn; the paths the pilot asked."""
    answers, asked, slept = [], [], []

    def call(self, path, body):
        asked.append(path)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(pilot.Pilot, "call", call)
    monkeypatch.setattr(pilot.time, "sleep", slept.append)
    return answers, asked, slept


def make() -> pilot.Pilot:
    return pilot.Pilot(pilot.PilotConfig(server="https://s", queue="Q", update_pauses=(2, 10)))


def test_an_update_is_sent_again_after_a_drop_and_a_busy_server(calls, capsys):
    answers, asked, slept = calls
    answers += [http.client.RemoteDisconnected("closed"), busy(503), {"success": True}]
    assert make().report(7, "finished", trans_exit_code=0) == "NULL"
    assert asked == ["/api/v1/pilot/update_job"] * 3 and slept == [2, 10]
    assert "job 7 update again in 2 s: closed" in capsys.readouterr().err


def test_an_update_gives_up_after_its_pauses(calls):
    answers, asked, slept = calls
    answers += [ConnectionResetError("reset")] * 3
    with pytest.raises(ConnectionResetError):
        make().report(7, "running")
    assert len(asked) == 3 and slept == [2, 10]


def test_a_refused_update_is_not_sent_again(calls):
    answers, asked, slept = calls
    answers += [busy(403)]
    with pytest.raises(urllib.error.HTTPError):
        make().report(7, "running")
    assert len(asked) == 1 and not slept


def test_taking_a_job_is_not_repeated(calls):
    answers, asked, _ = calls
    answers += [http.client.RemoteDisconnected("closed")]
    with pytest.raises(http.client.RemoteDisconnected):
        make().acquire()
    assert asked == ["/api/v1/pilot/acquire_jobs"]
