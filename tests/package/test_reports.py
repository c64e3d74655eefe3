"""A pilot's report: a number beyond its column's range is dropped like any malformed
value (never a database error that would lose the report)."""

from __future__ import annotations

from pandafacility import reports


def test_numbers_beyond_their_column_are_dropped():
    fields = {"core_count": 2**40, "n_events": 2**40, "exe_error_code": "12", "max_rss": "x"}
    assert reports.pilot_values(fields, legacy=False) == {"n_events": 2**40, "exe_error_code": 12}
    legacy = {"coreCount": "8", "transExitCode": -(2**31), "cpuConsumptionTime": 1e30}
    assert reports.pilot_values(legacy, legacy=True) == {"actual_core_count": 8}
