"""The job format of the PanDA clients: a job travels as the positional list of its
attribute values (in the order below, unset values as the string "NULL") followed by
a list of its files, each the positional list of a file's values. This module turns
such a submission into jobs.NewJob and a stored job back into the attribute dict that
panda-client rebuilds its JobSpec from. Only names and order are shared with the
clients; the code is ours.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from typing import Any

from pandafacility import safejson
from pandafacility.jobs import NewJob

# The wire order of a job's attributes (panda-client 2.2.0).
JOB_ATTRIBUTES = [
    "PandaID",
    "jobDefinitionID",
    "schedulerID",
    "pilotID",
    "creationTime",
    "creationHost",
    "modificationTime",
    "modificationHost",
    "AtlasRelease",
    "transformation",
    "homepackage",
    "prodSeriesLabel",
    "prodSourceLabel",
    "prodUserID",
    "assignedPriority",
    "currentPriority",
    "attemptNr",
    "maxAttempt",
    "jobStatus",
    "jobName",
    "maxCpuCount",
    "maxCpuUnit",
    "maxDiskCount",
    "maxDiskUnit",
    "ipConnectivity",
    "minRamCount",
    "minRamUnit",
    "startTime",
    "endTime",
    "cpuConsumptionTime",
    "cpuConsumptionUnit",
    "commandToPilot",
    "transExitCode",
    "pilotErrorCode",
    "pilotErrorDiag",
    "exeErrorCode",
    "exeErrorDiag",
    "supErrorCode",
    "supErrorDiag",
    "ddmErrorCode",
    "ddmErrorDiag",
    "brokerageErrorCode",
    "brokerageErrorDiag",
    "jobDispatcherErrorCode",
    "jobDispatcherErrorDiag",
    "taskBufferErrorCode",
    "taskBufferErrorDiag",
    "computingSite",
    "computingElement",
    "jobParameters",
    "metadata",
    "prodDBlock",
    "dispatchDBlock",
    "destinationDBlock",
    "destinationSE",
    "nEvents",
    "grid",
    "cloud",
    "cpuConversion",
    "sourceSite",
    "destinationSite",
    "transferType",
    "taskID",
    "cmtConfig",
    "stateChangeTime",
    "prodDBUpdateTime",
    "lockedby",
    "relocationFlag",
    "jobExecutionID",
    "VO",
    "pilotTiming",
    "workingGroup",
    "processingType",
    "prodUserName",
    "nInputFiles",
    "countryGroup",
    "batchID",
    "parentID",
    "specialHandling",
    "jobsetID",
    "coreCount",
    "nInputDataFiles",
    "inputFileType",
    "inputFileProject",
    "inputFileBytes",
    "nOutputDataFiles",
    "outputFileBytes",
    "jobMetrics",
    "workQueue_ID",
    "jediTaskID",
    "jobSubStatus",
    "actualCoreCount",
    "reqID",
    "maxRSS",
    "maxVMEM",
    "maxSWAP",
    "maxPSS",
    "avgRSS",
    "avgVMEM",
    "avgSWAP",
    "avgPSS",
    "maxWalltime",
    "nucleus",
    "eventService",
    "failedAttempt",
    "hs06sec",
    "gshare",
    "hs06",
    "totRCHAR",
    "totWCHAR",
    "totRBYTES",
    "totWBYTES",
    "rateRCHAR",
    "rateWCHAR",
    "rateRBYTES",
    "rateWBYTES",
    "resource_type",
    "diskIO",
    "memory_leak",
    "memory_leak_x2",
    "container_name",
    "job_label",
    "gco2_regional",
    "gco2_global",
    "cpu_architecture_level",
    "outputFileType",
]
FILE_ATTRIBUTES = [
    "rowID",
    "PandaID",
    "GUID",
    "lfn",
    "type",
    "dataset",
    "status",
    "prodDBlock",
    "prodDBlockToken",
    "dispatchDBlock",
    "dispatchDBlockToken",
    "destinationDBlock",
    "destinationDBlockToken",
    "destinationSE",
    "fsize",
    "md5sum",
    "checksum",
    "scope",
]
NULL = "NULL"
_QUEUE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


class SpecError(ValueError):
    """A submission that does not follow the format; nothing of it is stored."""


def _value(value: Any) -> Any:
    """The client's "NULL" is no value; its datetime objects become the envelope's form."""
    if value == NULL:
        return None
    if isinstance(value, dict) and set(value) == {"_datetime_object"}:
        return {"__datetime__": str(value["_datetime_object"]).replace(" ", "T")}
    return value


def _int(attrs: dict[str, Any], key: str, default: int | None) -> int | None:
    value = attrs.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SpecError(f"{key} must be an integer")
    try:
        return int(value)
    except ValueError as exc:
        raise SpecError(f"{key} must be an integer, not {str(value)[:40]!r}") from exc


def _str(attrs: dict[str, Any], key: str, default: str | None, limit: int) -> str:
    value = attrs.get(key)
    if value is None:
        value = default
    if value is None:
        raise SpecError(f"{key} is required")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise SpecError(f"{key} must be a string")
    value = str(value)
    if len(value) > limit:
        raise SpecError(f"{key} is longer than {limit} characters")
    return value


def parse_job(values: Any, known_queues: frozenset[str] = frozenset()) -> NewJob:
    """One positional job. Unknown queues are refused when the server knows its queues."""
    if not isinstance(values, list) or len(values) != len(JOB_ATTRIBUTES) + 1:
        raise SpecError(f"a job must be a list of {len(JOB_ATTRIBUTES)} values and its files")
    files = values[-1]
    if not isinstance(files, list) or any(
        not isinstance(f, list) or len(f) not in (len(FILE_ATTRIBUTES), len(FILE_ATTRIBUTES) + 1)
        for f in files
    ):
        raise SpecError(f"files must be lists of {len(FILE_ATTRIBUTES)} values")
    attrs = {name: _value(v) for name, v in zip(JOB_ATTRIBUTES, values[:-1])}
    site = _str(attrs, "computingSite", None, 128)
    if not _QUEUE.match(site) or (known_queues and site not in known_queues):
        raise SpecError(f"computingSite {site[:128]!r} is not a queue of this facility")
    spec = {k: v for k, v in attrs.items() if v is not None}
    spec["Files"] = [
        {n: _value(v) for n, v in zip(FILE_ATTRIBUTES, f) if _value(v) is not None} for f in files
    ]
    max_attempt = _int(attrs, "maxAttempt", 3)
    priority = _int(attrs, "currentPriority", None)
    return NewJob(
        job_name=_str(attrs, "jobName", None, 255),
        computing_site=site,
        transformation=_str(attrs, "transformation", "", 255),
        job_parameters=_str(attrs, "jobParameters", "", 65536),
        # Left out: the submitter's kind decides (for_submitter).
        prod_source_label=_str(attrs, "prodSourceLabel", "", 32),
        current_priority=priority if priority is not None else 1000,
        job_definition_id=_int(attrs, "jobDefinitionID", 0) or 0,
        vo=_str(attrs, "VO", "atlas", 32),
        max_attempt=max(1, max_attempt or 3),
        core_count=_int(attrs, "coreCount", None),
        max_walltime=_int(attrs, "maxWalltime", None),
        spec=spec,
    )


def parse_submission(text: Any, limit: int, known_queues: frozenset[str]) -> list[NewJob]:
    """The ``jobs`` field: a JSON string holding the list of positional jobs."""
    if not isinstance(text, str):
        raise SpecError("jobs must be a JSON string holding a list of jobs")
    try:
        values = safejson.loads(text)
    except ValueError as exc:
        raise SpecError(f"jobs is not valid JSON: {exc}") from exc
    if not isinstance(values, list) or not values:
        raise SpecError("jobs must be a non-empty list")
    if len(values) > limit:
        raise SpecError(f"at most {limit} jobs per submission")
    return [parse_job(v, known_queues) for v in values]


_COLUMNS = {
    "PandaID": "panda_id",
    "jobDefinitionID": "job_definition_id",
    "jobName": "job_name",
    "prodSourceLabel": "prod_source_label",
    "transformation": "transformation",
    "jobParameters": "job_parameters",
    "computingSite": "computing_site",
    "currentPriority": "current_priority",
    "jobStatus": "job_status",
    "VO": "vo",
    "attemptNr": "attempt_nr",
    "maxAttempt": "max_attempt",
    "coreCount": "core_count",
    "maxWalltime": "max_walltime",
    "pilotID": "pilot_id",
    "transExitCode": "trans_exit_code",
    "pilotErrorCode": "pilot_error_code",
    "pilotErrorDiag": "pilot_error_diag",
    "exeErrorCode": "exe_error_code",
    "exeErrorDiag": "exe_error_diag",
    "prodUserID": "owner_dn",
    # What the pilot reported at the end (not its log's tail: that is the owner's).
    "actualCoreCount": "actual_core_count",
    "cpuConsumptionTime": "cpu_consumption_time",
    "nEvents": "n_events",
    "maxRSS": "max_rss",
    "batchID": "batch_id",
    "jobMetrics": "job_metrics",
}
_TIMES = {
    "creationTime": "creation_time",
    "modificationTime": "modification_time",
    "stateChangeTime": "state_changed_time",
    "startTime": "start_time",
    "endTime": "end_time",
}


def describe(row: dict[str, Any]) -> dict[str, Any]:
    """A stored job as the attribute dict panda-client reads: what was submitted, with
    the server's own columns (state, times, errors) over it."""
    spec = _json(row.get("spec"))
    described = {k: v for k, v in spec.items() if k in JOB_ATTRIBUTES or k == "Files"}
    report = _json(row.get("pilot_report"))
    described.update({k: v for k, v in report.items() if k in JOB_ATTRIBUTES})
    for name, column in _COLUMNS.items():
        if row.get(column) is not None:
            described[name] = row[column]
    for name, column in _TIMES.items():
        if row.get(column) is not None:
            described[name] = {"__datetime__": row[column].isoformat()}
    described.setdefault("Files", [])
    return described


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _whole(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _text(value: Any) -> str:
    return "" if value is None else str(value)


_LFN_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_LOG_GUIDS = uuid.UUID("5b7e0d2a-8c1f-4f7e-9a55-0a0d00000000")  # the generated logs' namespace


def job_log(row: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The job's log file: the submitted one, else one named after the job, its PanDA
    ID and attempt (with a GUID derived from those), so that every pilot saves a log."""
    for f in spec.get("Files") or []:
        if isinstance(f, dict) and f.get("type") == "log" and f.get("lfn"):
            return {**f, "GUID": f.get("GUID") or _log_guid(row)}
    name = _LFN_UNSAFE.sub("_", str(row["job_name"]))[:80]
    dataset = f"panda.{row['panda_id']}.log"
    return {
        "lfn": f"{name}.{row['panda_id']}.{row['attempt_nr']}.log.tgz",
        "GUID": _log_guid(row),
        "type": "log",
        "scope": row.get("vo") or "panda",
        "dataset": dataset,
        "destinationDBlock": dataset,
    }


def _log_guid(row: dict[str, Any]) -> str:
    return str(uuid.uuid5(_LOG_GUIDS, f"{row['panda_id']}.{row['attempt_nr']}"))


def pilot_description(row: dict[str, Any]) -> dict[str, Any]:
    """A dispatched job as a pilot reads it: upstream's job description (the same keys,
    per-file values as comma-separated lists, the log last among the outputs), from the
    stored submission and the server's columns."""
    spec = _json(row.get("spec"))
    files = [f for f in spec.get("Files") or [] if isinstance(f, dict)]
    ins = [f for f in files if f.get("type") == "input"]
    outs = [f for f in files if f.get("type") == "output"]
    log = job_log(row, spec)

    def per(items: list[dict[str, Any]], key: str) -> str:
        return ",".join(_text(f.get(key)) for f in items)

    def text(key: str) -> str:
        return _text(spec.get(key))

    def whole(key: str, default: int = 0) -> int:
        return _whole(spec.get(key), default)

    return {
        "StatusCode": 0,
        "PandaID": row["panda_id"],
        "prodSourceLabel": row["prod_source_label"],
        "swRelease": text("AtlasRelease"),
        "homepackage": text("homepackage"),
        "transformation": row["transformation"],
        "jobName": row["job_name"],
        "jobDefinitionID": row["job_definition_id"],
        "cloud": text("cloud"),
        "inFiles": per(ins, "lfn"),
        "dispatchDblock": per(ins, "dispatchDBlock"),
        "dispatchDBlockToken": per(ins, "dispatchDBlockToken"),
        "dispatchDBlockTokenForOut": per([*outs, log], "dispatchDBlockToken"),
        "outFiles": per([*outs, log], "lfn"),
        "destinationDblock": per([*outs, log], "destinationDBlock"),
        "destinationDBlockToken": per([*outs, log], "destinationDBlockToken"),
        "prodDBlocks": per(ins, "prodDBlock"),
        "prodDBlockToken": per(ins, "prodDBlockToken"),
        "realDatasets": per([*outs, log], "dataset"),
        "realDatasetsIn": per(ins, "dataset"),
        "fileDestinationSE": per([*outs, log], "destinationSE"),
        "logFile": log["lfn"],
        "logGUID": log["GUID"],
        "jobPars": row["job_parameters"] or "",
        "attemptNr": row["attempt_nr"],
        "GUID": per(ins, "GUID"),
        "checksum": per(ins, "checksum"),
        "fsize": per(ins, "fsize"),
        "scopeIn": per(ins, "scope"),
        "scopeOut": per(outs, "scope"),
        "scopeLog": _text(log.get("scope")),
        "ddmEndPointIn": per(ins, "ddmEndPoint"),
        "ddmEndPointOut": per([*outs, log], "ddmEndPoint"),
        "destinationSE": text("destinationSE"),
        "prodUserID": row["owner_dn"],
        "maxCpuCount": whole("maxCpuCount"),
        "minRamCount": whole("minRamCount"),
        "maxDiskCount": whole("maxDiskCount"),
        "cmtConfig": text("cmtConfig"),
        "processingType": text("processingType"),
        "transferType": text("transferType"),
        "sourceSite": text("sourceSite"),
        "currentPriority": row["current_priority"],
        "taskID": whole("jediTaskID", whole("taskID")),
        "coreCount": row["core_count"] or 1,
        "jobsetID": whole("jobsetID"),
        "reqID": whole("reqID"),
        "nucleus": text("nucleus"),
        "maxWalltime": row["max_walltime"] or 0,
        "resource_type": text("resource_type"),
        "ioIntensity": None,
        "ioIntensityUnit": None,
        "nSent": 0,
        # Not upstream's: the facility's own pilot reads its queue here.
        "computingSite": row["computing_site"],
    }


# Upstream's production sources: only a production identity submits these.
PRODUCTION_LABELS = frozenset({"managed", "prod_test"})


class NotAllowed(SpecError):
    """The submitter may not ask for this."""


def for_submitter(job: NewJob, production: bool, user_max_priority: int) -> NewJob:
    """A job as its submitter may have it: a production identity's job is ``managed``
    unless it says otherwise; anyone else's is ``user``, may not carry a production
    label, and runs at most at ``user_max_priority`` (a user cannot jump the queue)."""
    label = job.prod_source_label or ("managed" if production else "user")
    if production:
        return dataclasses.replace(job, prod_source_label=label)
    if label in PRODUCTION_LABELS:
        raise NotAllowed(f"prodSourceLabel={label} needs a production identity")
    priority = min(job.current_priority, user_max_priority)
    return dataclasses.replace(job, prod_source_label=label, current_priority=priority)
