"""The monitor's job filters, from URL parameters as operators type them on BigPanDA:
``state``, ``queue`` (or ``site``), ``user`` (part of the owner's DN), a time window
(``hours`` or ``days`` back from now, on the job's last change) and error codes
(``pilot_error``, ``exe_error``, ``trans_exit``). Bad values are refused with the
parameter's name; the SQL is built from fixed column names and bound arguments only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from pandafacility.jobs import STATES

MAX_HOURS = 24 * 31
# Parameter -> column of the error codes an operator filters by.
ERROR_CODES = {
    "pilot_error": "pilot_error_code",
    "exe_error": "exe_error_code",
    "trans_exit": "trans_exit_code",
}


class FilterError(ValueError):
    """A parameter that is not what it must be (the message names it)."""


@dataclass(frozen=True)
class JobFilter:
    state: str = ""
    queue: str = ""
    user: str = ""
    hours: int = 0  # 0: no time window
    codes: tuple[tuple[str, int], ...] = ()  # (parameter, code)

    @classmethod
    def parse(cls, query: dict[str, list[str]], default_hours: int = 0) -> JobFilter:
        def last(name: str) -> str:
            return (query.get(name) or [""])[-1]

        state = last("state")
        if state and state not in STATES:
            raise FilterError(f"state: unknown state {state[:40]!r}")
        queue = last("queue") or last("site")
        user = last("user")
        if len(queue) > 128 or len(user) > 128:
            raise FilterError("queue and user are at most 128 characters")
        hours = default_hours
        if last("days"):
            hours = 24 * _bounded("days", last("days"), 1, MAX_HOURS // 24)
        if last("hours"):
            hours = _bounded("hours", last("hours"), 1, MAX_HOURS)
        codes = tuple(
            (name, _bounded(name, last(name), -(2**31), 2**31 - 1))
            for name in ERROR_CODES
            if last(name)
        )
        return cls(state, queue, user, hours, codes)

    def since(self, now: datetime | None = None) -> datetime | None:
        if not self.hours:
            return None
        now = now or datetime.now(timezone.utc).replace(tzinfo=None)
        return now - timedelta(hours=self.hours)

    def where(self) -> tuple[str, list[Any]]:
        """``WHERE ...`` (or "") and its arguments."""
        clauses, args = [], []
        if self.state:
            clauses.append("job_status = %s")
            args.append(self.state)
        if self.queue:
            clauses.append("computing_site = %s")
            args.append(self.queue)
        if self.user:
            clauses.append("owner_dn LIKE %s")
            args.append("%" + _like(self.user) + "%")
        since = self.since()
        if since is not None:
            clauses.append("modification_time >= %s")
            args.append(since)
        for name, code in self.codes:
            clauses.append(f"{ERROR_CODES[name]} = %s")
            args.append(code)
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), args

    def link(self, **changes: Any) -> str:
        """The job list's URL for this filter with ``changes`` (a value of None drops
        that parameter): what each count on a summary page links to."""
        params: dict[str, Any] = {
            "state": self.state, "queue": self.queue, "user": self.user,
            "hours": self.hours or "", **dict(self.codes),
        }  # fmt: skip
        params.update(changes)
        kept = {k: v for k, v in params.items() if v not in (None, "")}
        return "/jobs" + (f"?{urlencode(kept)}" if kept else "")


def _bounded(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise FilterError(f"{name} must be a whole number, not {raw[:40]!r}") from exc
    if not low <= value <= high:
        raise FilterError(f"{name} must be {low} to {high}")
    return value


def _like(text: str) -> str:
    """``text`` matched literally by LIKE (its wildcards and escape escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
