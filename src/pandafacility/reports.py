"""What a pilot reports besides a job's id, state and attempt, in either protocol: the legacy form's
camelCase names (pilot3's final updateJob) or the JSON API's snake_case ones, turned
into the job table's columns. Texts are cut to their column (as upstream caps them);
a number that is not one, and a time that is neither epoch seconds nor
"YYYY-MM-DD hh:mm:ss" within sane bounds, is dropped (as upstream drops such times),
never the report: a pilot's final state must not be lost to a bad metric."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any

# The largest magnitude each integer column holds (INT, BIGINT): a number beyond it is
# malformed, dropped like any other, never a database error.
INT = 2**31
BIG = 2**62
# (legacy name, JSON API name, column, kind, limit: a text's length, a number's bound)
FIELDS = (
    ("node", "node", "node", "text", 255),
    ("transExitCode", "trans_exit_code", "trans_exit_code", "int", INT),
    ("pilotErrorCode", "pilot_error_code", "pilot_error_code", "int", INT),
    ("pilotErrorDiag", "pilot_error_diag", "pilot_error_diag", "text", 500),
    ("exeErrorCode", "exe_error_code", "exe_error_code", "int", INT),
    ("exeErrorDiag", "exe_error_diag", "exe_error_diag", "text", 500),
    ("coreCount", "core_count", "actual_core_count", "int", INT),
    ("cpuConsumptionTime", "cpu_consumption_time", "cpu_consumption_time", "int", BIG),
    ("nEvents", "n_events", "n_events", "int", BIG),
    ("maxRSS", "max_rss", "max_rss", "int", BIG),
    ("batchID", "batch_id", "batch_id", "text", 80),
    ("jobMetrics", "job_metrics", "job_metrics", "text", 500),
    ("pilotLog", "pilot_log", "pilot_log", "text", 1024),
    ("startTime", "start_time", "start_time", "time", 0),
    ("endTime", "end_time", "end_time", "time", 0),
)
COLUMNS = tuple(f[2] for f in FIELDS)
_EPOCH_MIN = 946684800  # 2000-01-01: anything earlier is not a job's time
_LATE = 86400  # a clock a day ahead is wrong, not early


def pilot_values(fields: dict[str, Any], legacy: bool) -> dict[str, Any]:
    """The columns this report sets; absent, empty, "NULL" and malformed fields set
    nothing."""
    values: dict[str, Any] = {}
    for legacy_name, api_name, column, kind, limit in FIELDS:
        name = legacy_name if legacy else api_name
        raw = fields.get(name)
        if raw is None or raw == "" or raw == "NULL":
            continue
        if kind == "text":
            values[column] = str(raw)[:limit]
        elif kind == "int":
            number = _number(raw, limit)
            if number is not None:
                values[column] = number
        else:
            moment = _time(raw)
            if moment is not None:
                values[column] = moment
    return values


def _number(raw: Any, bound: int) -> int | None:
    try:
        value = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value) or abs(value) >= bound:
        return None
    return int(value)


def _time(raw: Any) -> datetime | None:
    """Epoch seconds (what pilot3 sends) or upstream's text form, as naive UTC."""
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        try:
            moment = datetime.strptime(str(raw), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
        seconds = moment.replace(tzinfo=timezone.utc).timestamp()
    if not _EPOCH_MIN <= seconds <= time.time() + _LATE:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)
