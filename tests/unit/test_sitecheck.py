"""Reading a site.yml run from ansible-runner's events: the recap, the failures and which
of them are the lab transport's known fault, the module executions per host, the rerun
rule. The last tests run real playbooks on the controller (local connection)."""

from __future__ import annotations

import sys
from pathlib import Path

import sitecheck
from sitecheck import Failure

# Results as the failed events carry them (event_data.res) for the transport's fault...
TEMPDIR = {"msg": "Task failed: failed to resolve remote temporary directory from x"}
LOST = {"msg": "Module result deserialization failed: No start of json char found",
        "module_stdout": "", "module_stderr": "", "rc": 0}  # fmt: skip
HIDDEN = {"censored": "the output has been hidden due to the fact that 'no_log: true'"}
NO_RESULT = "[ERROR]: Task failed: Action failed: No start of json char found\nfatal: [db1]"
# ... and for failures of a role.
REFUSED = {"msg": "the primary refused", "rc": 1}


def failure(result: dict, printed: str = "fatal: [db1]: FAILED!") -> Failure:
    return Failure("db1", "mariadb : Start", result, printed)


def test_a_run_failed_only_by_the_transport_is_transient():
    assert sitecheck.only_transient([failure(TEMPDIR), failure(LOST)])
    assert sitecheck.only_transient([failure(HIDDEN, NO_RESULT)])


def test_any_other_failure_is_not():
    assert not sitecheck.only_transient([failure(TEMPDIR), failure(REFUSED)])
    assert not sitecheck.only_transient([failure(REFUSED)])
    assert not sitecheck.only_transient([])
    assert not sitecheck.only_transient([failure({**LOST, "rc": 1})])
    assert not sitecheck.only_transient([failure({**LOST, "module_stderr": "x"})])
    # A hidden failure needs the callback's own word that the result was lost.
    assert not sitecheck.only_transient([failure(HIDDEN, "[ERROR]: non-zero return code")])


def test_a_loop_is_transient_only_if_each_failed_item_is():
    loop = {"failed": True, "results": [{"failed": False}, {**LOST, "failed": True}]}
    assert sitecheck.only_transient([failure(loop)])
    loop["results"].append({**REFUSED, "failed": True})
    assert not sitecheck.only_transient([failure(loop)])


def test_a_run_failed_by_the_transport_runs_again_once(monkeypatch, tmp_path, capsys):
    """`make deploy` and the lab test: a second run after a transport-only failure, its
    output streamed when asked, and the log keeps both runs."""
    first = sitecheck.SiteRun(1, 2, "first", {"x": {}}, [failure(TEMPDIR)])
    second = sitecheck.SiteRun(1, 0, "second", {"x": {"changed": 0, "failed": 0}})
    runs = iter([first, second])
    seen = []

    def playbook(playbook, inventory, extra, echo, mitogen):
        seen.append((extra, echo))
        return next(runs)

    monkeypatch.setattr(sitecheck, "_playbook", playbook)
    log = tmp_path / "site.log"
    run = sitecheck.run_site(tmp_path, "--check", "--diff", echo=True, log=log)
    assert run is second and seen == [(["--check", "--diff"], True)] * 2
    assert "running again" in capsys.readouterr().out
    assert log.read_text().startswith("first\n=== run again")


PLAY = """
- name: Local
  hosts: all
  gather_facts: false
  tasks:
    - name: Run a command
      ansible.builtin.command: "true"
      changed_when: false
    - name: Loop over two items
      ansible.builtin.command: "echo {{ item }}"
      loop: [a, b]
      changed_when: item == 'b'
    - name: Only on the controller
      ansible.builtin.set_fact:
        x: 1
    - name: Fail here
      ansible.builtin.command: "false"
"""


def test_a_real_run_is_read_from_its_events(tmp_path, capsys):
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "hosts").write_text(
        f"here ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    run = sitecheck.run_site(
        tmp_path / "hosts", playbook=tmp_path / "play.yml", echo=True, mitogen=False
    )
    assert run.returncode == 2
    assert run.recap == {"here": {"ok": 3, "changed": 1, "unreachable": 0, "failed": 1}}
    assert run.executions == {"here": 4}  # the command, two items and the failing one
    assert run.tasks == 4 and "Fail here" in run.task_seconds
    assert [f.task for f in run.failed] == ["Fail here"] and not sitecheck.only_transient(
        run.failed
    )
    assert "TASK [Fail here]" in capsys.readouterr().out
    assert Path(sitecheck.ROOT, "tools", "sitecheck.py").is_file()
