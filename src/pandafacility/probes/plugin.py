"""The plugin API shared by the probes: results, thresholds, perfdata and the exit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


@dataclass(frozen=True)
class Perf:
    """One performance datum: 'label'=value[unit];warn;crit;min;max."""

    label: str
    value: float
    unit: str = ""
    warn: float | None = None
    crit: float | None = None
    minimum: float | None = None
    maximum: float | None = None

    def __str__(self) -> str:
        def num(x: float | None) -> str:
            return "" if x is None else f"{x:g}"

        fields = [num(self.warn), num(self.crit), num(self.minimum), num(self.maximum)]
        tail = ";".join(fields).rstrip(";")
        label = self.label.replace("'", "_")
        return f"'{label}'={self.value:g}{self.unit}" + (f";{tail}" if tail else "")


@dataclass
class Result:
    status: int
    text: str
    perf: list[Perf] = field(default_factory=list)

    def line(self, name: str) -> str:
        head = f"{name} {STATUS_NAMES[self.status]}: {self.text}"
        return head + (" | " + " ".join(str(p) for p in self.perf) if self.perf else "")


def worst(statuses: list[int]) -> int:
    """The most serious status; UNKNOWN ranks below CRITICAL but above WARNING."""
    order = [OK, WARNING, UNKNOWN, CRITICAL]
    return max(statuses, key=order.index, default=OK)


def above(value: float, warn: float | None, crit: float | None) -> int:
    """Status of a value that is bad when high."""
    if crit is not None and value >= crit:
        return CRITICAL
    if warn is not None and value >= warn:
        return WARNING
    return OK


def below(value: float, warn: float | None, crit: float | None) -> int:
    """Status of a value that is bad when low."""
    if crit is not None and value <= crit:
        return CRITICAL
    if warn is not None and value <= warn:
        return WARNING
    return OK


Check = Callable[[argparse.Namespace], Result]


def run(name: str, parser: argparse.ArgumentParser, check: Check, argv: list[str]) -> int:
    """Parse, check, print the plugin line; any failure of the probe itself is UNKNOWN."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or bad options (argparse has printed why)
        return OK if exc.code == 0 else UNKNOWN
    try:
        result = check(args)
    except Exception as exc:  # a plugin must answer, whatever happened
        result = Result(UNKNOWN, f"probe failed: {type(exc).__name__}: {exc}")
    print(result.line(name).replace("\n", " "))
    sys.stdout.flush()
    return result.status
