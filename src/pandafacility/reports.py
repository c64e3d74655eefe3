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
# What else a pilot reports (pilot3's final update), kept as sent in one JSON column by
# the job's attribute name (what panda-client reads back): (legacy name, JSON API name,
# attribute, kind, limit). The file report (xml) and the job report (metaData) are
# bounded at 64 KiB each.
EXTRA = (
    ("cpuConsumptionUnit", "cpu_consumption_unit", "cpuConsumptionUnit", "text", 128),
    ("cpuConversionFactor", "cpu_conversion_factor", "cpuConversion", "float", BIG),
    ("meanCoreCount", "mean_core_count", "meanCoreCount", "float", INT),
    ("pilotTiming", "pilot_timing", "pilotTiming", "text", 100),
    ("schedulerID", "scheduler_id", "schedulerID", "text", 128),
    ("cpu_architecture_level", "cpu_architecture_level", "cpu_architecture_level", "text", 20),
    ("xml", "xml", "fileReport", "text", 65536),
    ("metaData", "meta_data", "metadata", "text", 65536),
    *((n, _snake, n, "int", BIG) for n, _snake in (
        ("maxVMEM", "max_vmem"), ("maxSWAP", "max_swap"), ("maxPSS", "max_pss"),
        ("avgRSS", "avg_rss"), ("avgVMEM", "avg_vmem"), ("avgSWAP", "avg_swap"),
        ("avgPSS", "avg_pss"), ("totRCHAR", "tot_rchar"), ("totWCHAR", "tot_wchar"),
        ("totRBYTES", "tot_rbytes"), ("totWBYTES", "tot_wbytes"), ("rateRCHAR", "rate_rchar"),
        ("rateWCHAR", "rate_wchar"), ("rateRBYTES", "rate_rbytes"), ("rateWBYTES", "rate_wbytes"),
    )),
)  # fmt: skip
REPORT_COLUMN = "pilot_report"
_EPOCH_MIN = 946684800  # 2000-01-01: anything earlier is not a job's time
_LATE = 86400  # a clock a day ahead is wrong, not early


def pilot_values(fields: dict[str, Any], legacy: bool) -> dict[str, Any]:
    """The columns this report sets (the rest of what it carries under REPORT_COLUMN);
    absent, empty, "NULL" and malformed fields set nothing."""
    values = _read(fields, legacy, FIELDS)
    extra = _read(fields, legacy, EXTRA)
    if extra:
        values[REPORT_COLUMN] = extra
    return values


def _read(fields: dict[str, Any], legacy: bool, known: tuple) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for legacy_name, api_name, column, kind, limit in known:
        raw = fields.get(legacy_name if legacy else api_name)
        if raw is None or raw == "" or raw == "NULL":
            continue
        if kind == "text":
            values[column] = str(raw)[:limit]
        elif kind in ("int", "float"):
            number = _number(raw, limit, kind == "int")
            if number is not None:
                values[column] = number
        else:
            moment = _time(raw)
            if moment is not None:
                values[column] = moment
    return values


def _number(raw: Any, bound: int, whole: bool = True) -> float | None:
    try:
        value = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value) or abs(value) >= bound:
        return None
    return int(value) if whole else value


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
