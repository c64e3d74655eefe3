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


# The docker exec under the lab's connection sometimes loses a command's output under
# load (community.docker issue #644): a failure of the transport, not of a role.
TRANSIENT = "failed to resolve remote temporary directory"


def run_site(inventory: Path, *extra: str, log: Path | None = None) -> SiteRun:
    """One ansible-playbook run of site.yml from the checkout, timed from the outside.
    A run that failed only because of the transport's known fault is run again once,
    whole (so the result stands on its own); the log keeps both."""
    cmd = ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "site.yml"), *extra]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    outputs = []
    for _ in range(2):
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - start
        outputs.append(proc.stdout + proc.stderr)
        if proc.returncode == 0 or not only_transient(outputs[-1]):
            break
        print(f"sitecheck: the transport failed ({TRANSIENT}); running again", flush=True)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("\n=== run again after a transport failure ===\n".join(outputs))
    return SiteRun(seconds, proc.returncode, outputs[-1], parse_recap(outputs[-1]))


def only_transient(output: str) -> bool:
    """Whether every failed task of a run failed with the transport's known fault."""
    failures = re.findall(r"^fatal: \[[^\]]+\]: .*?(?=^\S)", output, re.MULTILINE | re.DOTALL)
    return bool(failures) and all(TRANSIENT in f for f in failures)
