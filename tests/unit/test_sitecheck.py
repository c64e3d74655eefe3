"""Reading a site.yml run: which failures are the lab transport's known fault."""

from __future__ import annotations

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
