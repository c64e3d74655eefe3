"""Reading a site.yml run: which failures are the lab transport's known fault."""

from __future__ import annotations

import os

import sitecheck

TRANSPORT = (
    "TASK [base : Cleanup] ***\n"
    "fatal: [submit1]: FAILED! => \n"
    "    changed: false\n"
    "    msg: 'Task failed: failed to resolve remote temporary directory from x'\n"
    "ok: [submit2]\n"
)
ROLE = "fatal: [db1]: FAILED! => \n    msg: 'the primary refused'\nok: [db2]\n"


def test_a_run_failed_only_by_the_transport_is_transient():
    assert sitecheck.only_transient(TRANSPORT)


def test_any_other_failure_is_not():
    assert not sitecheck.only_transient(TRANSPORT + ROLE)
    assert not sitecheck.only_transient(ROLE)
    assert not sitecheck.only_transient("PLAY RECAP\nok: [x]\n")


LOOP = (
    "TASK [monitoring : Agent | Give NRPE its own copy] ***\n"
    "ok: [srv1] => (item=host.crt)\n"
    "failed: [log1] (item=host.crt) => \n"
    "    ansible_loop_var: item\n"
    "    msg: MODULE FAILURE\n"
    "ok: [srv2] => (item=host.crt)\n"
)


def test_a_failed_loop_item_is_a_failure_of_its_task():
    summary = sitecheck.failed_tasks(LOOP)
    assert summary.splitlines() == [
        "TASK [monitoring : Agent | Give NRPE its own copy]",
        "failed: [log1] (item=host.crt) => ",
        "    ansible_loop_var: item",
        "    msg: MODULE FAILURE",
    ]
    assert not sitecheck.only_transient(LOOP)


def test_the_summary_names_each_failed_task_and_leaves_out_the_rest():
    summary = sitecheck.failed_tasks(TRANSPORT + "TASK [mariadb : Start] ***\n" + ROLE)
    assert summary.count("TASK [") == 2
    assert "TASK [mariadb : Start]" in summary and "the primary refused" in summary
    assert "ok: [" not in summary
    assert sitecheck.failed_tasks("PLAY RECAP\nok: [x]\n") == ""


# As ansible-core prints them (default callback, YAML results) for a module run whose
# output the transport lost, and for a command that failed; with and without no_log.
NO_RESULT = (
    "[ERROR]: Task failed: Action failed: Module result deserialization failed: "
    "No start of json char found\n\nTask failed: Action failed.\n"
)
LOST = (
    "TASK [base : Empty] ***\n" + NO_RESULT + "failed: [db1] (item=a) => \n"
    "    ansible_loop_var: item\n    module_stderr: ''\n    module_stdout: ''\n"
    "    msg: 'Module result deserialization failed: No start of json char found'\n"
    "    rc: 0\n"
)
HIDDEN = (
    "fatal: [db1]: FAILED! => \n    censored: 'the output has been hidden due to the fact"
    " that ''no_log: true'' was specified\n        for this result'\n    changed: false\n"
)
NONZERO = "[ERROR]: Task failed: Module failed: non-zero return code\n"


def test_a_module_result_lost_on_the_way_is_transient():
    assert sitecheck.only_transient(LOST)
    assert sitecheck.only_transient("TASK [certificates : Key] ***\n" + NO_RESULT + HIDDEN)


def test_a_module_that_printed_or_exited_non_zero_is_not():
    assert not sitecheck.only_transient(LOST.replace("rc: 0", "rc: 1"))
    assert not sitecheck.only_transient(LOST.replace("module_stderr: ''", "module_stderr: x"))
    assert not sitecheck.only_transient("TASK [certificates : Key] ***\n" + NONZERO + HIDDEN)
    # The lost result of another task does not excuse a hidden failure of this one.
    assert not sitecheck.only_transient(LOST + "TASK [mariadb : Key] ***\n" + HIDDEN)


def test_a_run_failed_by_the_transport_runs_again_once(monkeypatch, tmp_path, capsys):
    """`make deploy` and the lab test: a second run after a transport-only failure, its
    output streamed when asked, and the log keeps both runs."""
    runs = iter([(2, TRANSPORT), (0, "PLAY RECAP\nx : ok=1 changed=0 unreachable=0 failed=0\n")])
    seen = []

    def playbook(cmd, env, echo):
        seen.append((cmd[-2:], echo))
        return next(runs)

    monkeypatch.setattr(sitecheck, "_playbook", playbook)
    assert sitecheck.main(["-i", str(tmp_path), "--check", "--diff"]) == 0
    assert seen == [(["--check", "--diff"], True)] * 2
    assert "running again" in capsys.readouterr().out


def test_a_playbook_is_read_line_by_line_and_echoed(capsys):
    cmd = ["python3", "-c", "print('PLAY RECAP'); import sys; sys.exit(3)"]
    assert sitecheck._playbook(cmd, dict(os.environ), echo=True) == (3, "PLAY RECAP\n")
    assert capsys.readouterr().out == "PLAY RECAP\n"
