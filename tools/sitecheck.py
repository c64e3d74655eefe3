"""Run playbooks/site.yml and read its recap: shared by `make deploy`, the lab test and
the benchmark."""

from __future__ import annotations

import argparse
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

    def failures(self) -> str:
        """What a test prints when the run failed: each failed task, short."""
        return failed_tasks(self.output) or self.output[-3000:]


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    tail = output.rsplit("PLAY RECAP", 1)[-1]
    return {
        m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
        for m in RECAP.finditer(tail)
    }


# The docker exec under the lab's connection sometimes loses a command's output under
# load (community.docker issue #644, moby issue #27289): a failure of the transport, not
# of a role. Ansible then either cannot read the remote temporary directory it asked
# for, or finds no result where the module printed one: "No start of json char found",
# with exit code 0 and nothing on stdout or stderr (a module that crashes exits
# non-zero). Under no_log only the first of those lines is printed, before the result.
TRANSIENT = "failed to resolve remote temporary directory"
NO_RESULT = "No start of json char found"
EMPTY = [
    re.compile(f"^ +{k}$", re.MULTILINE)
    for k in ("module_stdout: ''", "module_stderr: ''", "rc: 0")
]
CENSORED = "the output has been hidden"


def run_site(inventory: Path, *extra: str, log: Path | None = None, echo: bool = False) -> SiteRun:
    """One ansible-playbook run of site.yml from the checkout, timed from the outside.
    A run whose every failure is the transport's known fault is run again once, whole
    (so the result stands on its own); the log keeps both runs. ``echo`` prints the
    output as it comes."""
    cmd = ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "site.yml"), *extra]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    outputs = []
    for _ in range(2):
        start = time.monotonic()
        returncode, output = _playbook(cmd, env, echo)
        seconds = time.monotonic() - start
        outputs.append(output)
        if returncode == 0 or not only_transient(output):
            break
        print(f"sitecheck: the transport failed:\n{failed_tasks(output)}", flush=True)
        print("sitecheck: running again", flush=True)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("\n=== run again after a transport failure ===\n".join(outputs))
    return SiteRun(seconds, returncode, outputs[-1], parse_recap(outputs[-1]))


def _playbook(cmd: list[str], env: dict[str, str], echo: bool) -> tuple[int, str]:
    lines = []
    with subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout:
            lines.append(line)
            if echo:
                print(line, end="", flush=True)
    return proc.returncode, "".join(lines)


# A failed host's line (a loop's failed item starts with "failed:") and its indented result.
FAILED = re.compile(r"^(?:fatal|failed): \[[^\]]+\].*?(?=^\S|\Z)", re.MULTILINE | re.DOTALL)
TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[.*$", re.MULTILINE)


def failures(output: str) -> list[tuple[str, str, str]]:
    """Each failure of a run: its task's name, what the task printed before it, itself."""
    found = []
    for match in FAILED.finditer(output):
        tasks = list(TASK.finditer(output, 0, match.start()))
        start = tasks[-1].start() if tasks else 0
        task = tasks[-1].group().rstrip(" *") if tasks else ""
        found.append((task, output[start : match.start()], match.group()))
    return found


def failed_tasks(output: str, lines: int = 12) -> str:
    """Every failure of a run under the name of its task, each cut to a few lines."""
    out = []
    for task, _, failure in failures(output):
        out += [task, *failure.rstrip().splitlines()[:lines]]
    return "\n".join(out)


def only_transient(output: str) -> bool:
    """Whether every failed task of a run failed with the transport's known fault."""
    found = failures(output)
    return bool(found) and all(transient(before, failure) for _, before, failure in found)


def transient(before: str, failure: str) -> bool:
    if TRANSIENT in failure:
        return True
    if NO_RESULT not in before + failure:
        return False
    return CENSORED in failure or all(mark.search(failure) for mark in EMPTY)


def main(argv: list[str] | None = None) -> int:
    """``make deploy``: site.yml on an inventory, run again once if only the lab's
    transport failed."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("-i", "--inventory", type=Path, default=ROOT / "inventories" / "lab")
    args, extra = parser.parse_known_args(argv)  # the rest goes to ansible-playbook
    return run_site(args.inventory, *extra, echo=True).returncode


if __name__ == "__main__":
    raise SystemExit(main())
