"""Run playbooks/site.yml and read its recap: shared by the lab test and the benchmark."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


@dataclass
class SiteRun:
    seconds: float
    returncode: int
    output: str
    recap: dict[str, dict[str, int]]

    def total(self, field: str) -> int:
        return sum(host[field] for host in self.recap.values())

    def changed_hosts(self) -> dict[str, int]:
        return {h: r["changed"] for h, r in self.recap.items() if r["changed"]}


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    tail = output.rsplit("PLAY RECAP", 1)[-1]
    return {
        m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
        for m in RECAP.finditer(tail)
    }


def run_site(inventory: Path, *extra: str, log: Path | None = None) -> SiteRun:
    """One ansible-playbook run of site.yml from the checkout, timed from the outside."""
    cmd = ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "site.yml"), *extra]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    output = proc.stdout + proc.stderr
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(output)
    return SiteRun(seconds, proc.returncode, output, parse_recap(output))
