"""HAProxy's backends: each has servers UP (WARNING when some are down, CRITICAL when
none is up), read from the stats socket."""

from __future__ import annotations

import argparse
import csv
import io
import socket

from pandafacility.probes.plugin import CRITICAL, OK, WARNING, Perf, Result, worst


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="haproxy", description=__doc__)
    p.add_argument("--socket", default="/run/haproxy/admin.sock")
    p.add_argument("--backend", action="append", help="only these backends; repeat")
    return p


def show_stat(path: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"show stat\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def servers(stat_csv: str) -> dict[str, dict[str, str]]:
    """Backend -> server -> status (UP, DOWN, MAINT, ...), from `show stat` CSV."""
    rows = csv.DictReader(io.StringIO(stat_csv.lstrip("# ")))
    found: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["svname"] in ("FRONTEND", "BACKEND"):
            if row["svname"] == "BACKEND":
                found.setdefault(row["pxname"], {})
            continue
        found.setdefault(row["pxname"], {})[row["svname"]] = row["status"]
    return found


def check(args: argparse.Namespace) -> Result:
    backends = servers(show_stat(args.socket))
    wanted = args.backend or sorted(b for b in backends if b != "stats")
    statuses, parts, perf = [], [], []
    for name in wanted:
        members = backends.get(name)
        if members is None:
            statuses.append(CRITICAL)
            parts.append(f"{name}: no such backend")
            continue
        up = [s for s, state in members.items() if state.startswith("UP")]
        down = sorted(set(members) - set(up))
        status = CRITICAL if not up else WARNING if down else OK
        statuses.append(status)
        parts.append(
            f"{name} {len(up)}/{len(members)} up" + (f" ({', '.join(down)} not)" if down else "")
        )
        perf.append(Perf(f"{name}_up", len(up), "", minimum=0, maximum=len(members)))
    return Result(worst(statuses), ", ".join(parts), perf)
