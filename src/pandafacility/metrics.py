"""Prometheus metrics of a service that runs as several mod_wsgi processes.

Each process counts in memory and writes its counts, at most once a second (a timer
writes what the last second counted), to a file of its own (``<pid>.json``) in a
directory the processes share; a scrape sums every file. A process that is gone (a
reload, a restart after a hung request) leaves its file behind, and the next scrape
folds it into ``gone.json``: what it counted stays in the totals, so a counter only
goes back to zero when the directory is emptied (at boot: it lives under /run), which
Prometheus reads as a counter reset.

Everything is a counter; a histogram is its buckets, sum and count.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

Labels = tuple[tuple[str, str], ...]
Key = tuple[str, Labels]

# Seconds: from a fast acquire to one that waited on a lock or a slow database.
_log = logging.getLogger(__name__)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
GONE = "gone.json"


def labels(**values: object) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in values.items()))


class Counters:
    """This process's counts, shared through ``directory`` (None: this process only)."""

    def __init__(
        self, directory: Path | None, flush_every: float = 1.0, pid: int | None = None
    ) -> None:
        self.directory = directory
        self.flush_every = flush_every
        self.pid = os.getpid() if pid is None else pid
        self._counts: dict[Key, float] = {}
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # one write at a time, newest snapshot last
        self._flushed = 0.0
        self._broken = False
        self._timer: threading.Timer | None = None

    def inc(self, name: str, lbls: Labels = (), value: float = 1.0) -> None:
        with self._lock:
            key = (name, lbls)
            self._counts[key] = self._counts.get(key, 0.0) + value
        self.flush()

    def observe(self, name: str, seconds: float, lbls: Labels = ()) -> None:
        """One observation of a histogram ``name`` (cumulative buckets, as exposed)."""
        with self._lock:
            for bound in (*BUCKETS, math.inf):
                if seconds <= bound:
                    key = (f"{name}_bucket", (*lbls, ("le", _number(bound))))
                    self._counts[key] = self._counts.get(key, 0.0) + 1
            for key, add in (((f"{name}_sum", lbls), seconds), ((f"{name}_count", lbls), 1.0)):
                self._counts[key] = self._counts.get(key, 0.0) + add
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Write this process's file, at most every ``flush_every`` seconds; counts
        made sooner are written by a timer when the interval is over. A file that
        cannot be written is logged, never raised: metrics must not fail a request."""
        if self.directory is None:
            return
        with self._writing:
            now = time.monotonic()
            with self._lock:
                wait = self._flushed + self.flush_every - now
                if not force and wait > 0:
                    if self._timer is None:
                        self._timer = threading.Timer(wait, self._flush_later)
                        self._timer.daemon = True
                        self._timer.start()
                    return
                self._flushed = now
                data = _dump(self._counts)
            path = self.directory / f"{self.pid}.json"
            try:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(data)
                tmp.replace(path)
            except OSError as exc:
                if not self._broken:
                    _log.warning("metrics: cannot write %s: %s", path, exc)
                self._broken = True

    def _flush_later(self) -> None:
        with self._lock:
            self._timer = None
        self.flush(force=True)

    def totals(self) -> dict[Key, float]:
        """Every process's counts summed (this one's as they are now)."""
        if self.directory is None:
            with self._lock:
                return dict(self._counts)
        self.flush(force=True)
        try:
            _fold_gone(self.directory)
        except OSError as exc:
            _log.warning("metrics: cannot fold ended processes' counts: %s", exc)
        with self._lock:  # this process's counts as they are, the others' from their files
            total = dict(self._counts)
        for path in self.directory.glob("*.json"):
            if path.stem != str(self.pid):
                for key, value in _read(path).items():
                    total[key] = total.get(key, 0.0) + value
        return total


def _fold_gone(directory: Path) -> None:
    """Fold the files of processes that no longer run into GONE, under a lock."""
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        gone_path = directory / GONE
        dead = [p for p in directory.glob("*.json") if p.stem.isdigit() and not _alive(int(p.stem))]
        if not dead:
            return
        gone = _read(gone_path)
        for path in dead:
            for key, value in _read(path).items():
                gone[key] = gone.get(key, 0.0) + value
        tmp = gone_path.with_suffix(".tmp")
        tmp.write_text(_dump(gone))
        tmp.replace(gone_path)
        for path in dead:
            path.unlink(missing_ok=True)


def _read(path: Path) -> dict[Key, float]:
    """A counts file; one that is missing or unreadable (being replaced, damaged)
    counts nothing rather than failing the scrape."""
    try:
        return _load(path.read_text())
    except (OSError, ValueError, TypeError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to fold
    return True


def _dump(counts: dict[Key, float]) -> str:
    return json.dumps([[name, [list(pair) for pair in lbls], value]
                       for (name, lbls), value in counts.items()])  # fmt: skip


def _load(text: str) -> dict[Key, float]:
    return {(name, tuple((k, v) for k, v in lbls)): float(value)
            for name, lbls, value in json.loads(text)}  # fmt: skip


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    return repr(float(value)) if value != int(value) else f"{int(value)}.0"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(
    help_types: dict[str, tuple[str, str]], samples: Iterable[tuple[str, Labels, float]]
) -> str:
    """Prometheus' text format: ``help_types`` maps each metric family to (type, help);
    a sample's family is its name without a histogram's _bucket/_sum/_count."""
    by_family: dict[str, list[str]] = {}
    for name, lbls, value in sorted(samples, key=lambda s: (s[0], s[1])):
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in help_types:
                family = name[: -len(suffix)]
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in lbls)
        by_family.setdefault(family, []).append(
            f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}"
        )
    lines = []
    for family, (kind, text) in help_types.items():
        lines += [f"# HELP {family} {text}", f"# TYPE {family} {kind}", *by_family.get(family, [])]
    return "\n".join(lines) + "\n"
