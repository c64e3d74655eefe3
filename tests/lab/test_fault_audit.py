"""The fault audit: a bounded load of submits, acquires and updates through the
pandaserver VIP while the database primary is restarted, paused, killed and replaced
by a promoted replica, one server's mod_wsgi daemons are killed, the VIP holder is
killed and both load balancers are cut for longer than the reaper's silent period
(tests/lib/labfaults.py says how each is done). Afterwards the job tables on the
primary show no job the server acknowledged missing, none dispatched twice in one
attempt, none executed twice, every one finished, and no call failed after the
clients' retries. Runs last: it leaves the lab with db1 dead and db2 the primary.

bench/faults.py runs the same audit with the issue's durations (a 60 s pause, a cut
of several heartbeats) and prints the figures, the VIP's failover gap among them; here
the durations are shorter, and times are asserted only to show that each fault was
felt (no speed is)."""

from __future__ import annotations

import faultaudit
import labfaults
from labhosts import LOGS

PLAN = labfaults.PLAN
# The database's faults, after which no request may have answered 500.
DATABASE = [labfaults.LABELS[f] for f in ("restart", "pause", "promote")]


def test_no_job_is_lost_doubled_or_failed_through_every_fault(converged):
    timing = labfaults.Timing(settle=5, pause=15, cut=15, silent=8, outage_gap=3)
    outcome = labfaults.run(PLAN, timing, LOGS / "fault-audit")
    report = outcome.table(PLAN)
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "fault-audit.txt").write_text(report + "\n")
    audit = outcome.audit
    assert audit.acknowledged > 0, report
    assert audit.missing == [], report
    assert audit.dispatched_twice == [], report
    assert audit.executed_twice == [], report
    assert audit.failures == [], report
    assert audit.not_finished == {}, report
    # No runner was told its job went to another: the reaper took back no job a runner
    # held, also while the load balancers were cut.
    assert audit.lost == 0, report
    for phase in DATABASE:
        assert "500" not in audit.per_phase.get(phase, {}), report
    # Each fault happened: the clients or the probe felt it.
    phases = {fault: audit.per_phase.get(labfaults.LABELS[fault], {}) for fault in PLAN}
    assert phases["pause"]["longest"] >= timing.pause / 2, report
    # Requests were in srv1's daemons when they died: their clients saw an error.
    assert set(phases["kill-wsgi"]) - set(faultaudit.COLUMNS), report
    assert outcome.gaps["kill-lb"] > 0.2, report
    assert outcome.gaps["cut-lb"] >= timing.cut, report
    assert phases["promote"]["longest"] > 5, report
    # The load ran through every fault.
    for fault, counts in phases.items():
        assert counts.get("calls", 0) > counts.get("failed", 0), f"{fault}\n{report}"
