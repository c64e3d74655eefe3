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
