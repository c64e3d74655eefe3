"""Run playbooks/site.yml through ansible-runner and read its structured events: shared
by `make deploy`, the lab test and the benchmark. What a run did (each host's recap,
each failed task's result, the module executions per host, the time of each task and
role) comes from the events, not from Ansible's human output."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner

ROOT = Path(__file__).resolve().parent.parent

# Actions that run on the controller alone: no module execution on the host.
CONTROLLER_ACTIONS = {
    "set_fact", "assert", "debug", "fail", "include_tasks", "include_role", "import_tasks",
    "import_role", "include_vars", "meta", "add_host", "group_by", "pause",
    "validate_argument_spec", "set_stats", "noop",
}  # fmt: skip
RESULT_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_unreachable"}


@dataclass
class Failure:
    """A failed (or unreachable) task on one host, as its event carried it."""

    host: str
    task: str
    result: dict
    printed: str  # what the callback printed for it, warnings and errors included

    def summary(self, lines: int = 12) -> str:
        return "\n".join([f"TASK [{self.task}] on {self.host}", *self.printed.splitlines()[:lines]])


@dataclass
class SiteRun:
    seconds: float
    returncode: int
    output: str
    recap: dict[str, dict[str, int]]
    failed: list[Failure] = field(default_factory=list)
    executions: Counter[str] = field(default_factory=Counter)  # module runs per host
    tasks: int = 0
    task_seconds: dict[str, float] = field(default_factory=dict)
    role_seconds: dict[str, float] = field(default_factory=dict)

    def total(self, field_name: str) -> int:
        return sum(host[field_name] for host in self.recap.values())

    def changed_hosts(self) -> dict[str, int]:
        return {h: r["changed"] for h, r in self.recap.items() if r["changed"]}

    def failures(self) -> str:
        """What a test prints when the run failed: each failed task, short."""
        return "\n".join(f.summary() for f in self.failed) or self.output[-3000:]


# The lab's docker exec sometimes loses a command's output under load (community.docker
# issue #644, moby issue #27289): a failure of the transport, not of a role. Ansible then
# either cannot read the remote temporary directory it asked for, or finds no result
# where the module printed one ("No start of json char found", exit code 0 and nothing
# on stdout or stderr: a module that crashes exits non-zero). Under no_log the result is
# censored and only the error the callback printed tells.
TRANSIENT = "failed to resolve remote temporary directory"
NO_RESULT = "No start of json char found"


def transient(failure: Failure) -> bool:
    """Whether a failure is the lab transport's known fault."""
    res = failure.result
    results = res.get("results") or [res]
    failed = [r for r in results if isinstance(r, dict) and r.get("failed", r is res)]
    for r in failed or [res]:
        text = str(r.get("msg", ""))
        if TRANSIENT in text:
            continue
        if "censored" in r and NO_RESULT in failure.printed:
            continue
        empty = r.get("module_stdout") == "" and r.get("module_stderr") == "" and r.get("rc") == 0
        if NO_RESULT in text and empty:
            continue
        return False
    return True


def only_transient(failures: list[Failure]) -> bool:
    return bool(failures) and all(transient(f) for f in failures)


class EventReader:
    """Collects what a run's events say, and echoes their output if asked."""

    def __init__(self, echo: bool) -> None:
        self.echo = echo
        self.lines: list[str] = []
        self.failed: list[Failure] = []
        self.executions: Counter[str] = Counter()
        self.tasks = 0
        self.starts: list[tuple[float, str, str]] = []  # start time, task, role
        self.stats: dict = {}

    def __call__(self, event: dict) -> bool:
        text = event.get("stdout", "")
        if text:
            self.lines.append(text)
            if self.echo:
                print(text, flush=True)
        kind, data = event.get("event", ""), event.get("event_data", {})
        if kind == "playbook_on_stats":
            self.stats = data
        if kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self.tasks += 1
            self.starts.append((_timestamp(event), data.get("task", ""), data.get("role", "")))
        if kind in RESULT_EVENTS and data.get("task_action", "").split(".")[-1] not in (
            CONTROLLER_ACTIONS
        ):
            res = data.get("res", {}) or {}
            runs = [r for r in res.get("results", []) if not r.get("skipped")]
            self.executions[data.get("host", "")] += len(runs) if "results" in res else 1
        if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            task = f"{data.get('role')} : {data['task']}" if data.get("role") else data["task"]
            self.failed.append(Failure(data.get("host", ""), task, data.get("res", {}), text))
        return False  # runner need not keep the event on disk

    def times(self, end: float) -> tuple[dict[str, float], dict[str, float]]:
        """Seconds spent in each task (from its start to the next one's) and each role."""
        tasks: dict[str, float] = defaultdict(float)
        roles: dict[str, float] = defaultdict(float)
        following_starts = [*self.starts[1:], (end, "", "")][: len(self.starts)]
        for (start, task, role), (following, _, _) in zip(
            self.starts, following_starts, strict=True
        ):
            name = f"{role} : {task}" if role else task
            tasks[name] += following - start
            roles[role or "(play)"] += following - start
        return dict(tasks), dict(roles)


def _timestamp(event: dict) -> float:
    from datetime import datetime

    created = event.get("created")
    return datetime.fromisoformat(created).timestamp() if created else time.time()


def run_site(
    inventory: Path,
    *extra: str,
    log: Path | None = None,
    echo: bool = False,
    playbook: Path = ROOT / "playbooks" / "site.yml",
    mitogen: bool | None = None,
) -> SiteRun:
    """One run of site.yml from the checkout, timed from the outside. A run whose every
    failure is the transport's known fault is run again once, whole (so the result stands
    on its own); the log keeps both runs. ``echo`` prints the output as it comes;
    ``mitogen`` picks the strategy (None: use_mitogen())."""
    outputs: list[str] = []
    mitogen = use_mitogen() if mitogen is None else mitogen
    for _ in range(2):
        run = _playbook(playbook, inventory, list(extra), echo, mitogen)
        outputs.append(run.output)
        if run.returncode == 0 or not only_transient(run.failed):
            break
        print("sitecheck: the transport failed:\n" + run.failures(), flush=True)
        print("sitecheck: running again", flush=True)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("\n=== run again after a transport failure ===\n".join(outputs))
    return run


def mitogen_env() -> dict[str, str]:
    """What runs a playbook under Mitogen's linear strategy (PyPI mitogen), through the
    collection's wrapper that leaves a 2-CPU controller unpinned: a connection it
    accelerates (docker, ssh, local...) becomes one long-lived Python per host."""
    return {"ANSIBLE_STRATEGY": "panda.facility.mitogen_linear"}


def use_mitogen() -> bool:
    """Mitogen unless PANDA_MITOGEN=0 (the plain linear strategy)."""
    return os.environ.get("PANDA_MITOGEN", "1") != "0"


def _playbook(
    playbook: Path, inventory: Path, extra: list[str], echo: bool, mitogen: bool
) -> SiteRun:
    reader = EventReader(echo)
    env = {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0"}  # fmt: skip
    if mitogen:
        env.update(mitogen_env())
    private = Path(tempfile.mkdtemp(prefix="sitecheck-"))
    start = time.monotonic()
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(ROOT),
            playbook=str(playbook),
            inventory=str(Path(inventory).resolve()),
            cmdline=" ".join(_quote(a) for a in extra),
            envvars=env,
            event_handler=reader,
            quiet=True,
            suppress_env_files=True,
        )
        end = time.time()
        seconds = time.monotonic() - start
    finally:
        shutil.rmtree(private, ignore_errors=True)
    recap = _recap(reader.stats)
    task_seconds, role_seconds = reader.times(end)
    return SiteRun(
        seconds, runner.rc, "\n".join(reader.lines), recap, reader.failed,
        reader.executions, reader.tasks, task_seconds, role_seconds,
    )  # fmt: skip


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _recap(stats: dict) -> dict[str, dict[str, int]]:
    keys = {"ok": "ok", "changed": "changed", "dark": "unreachable", "failures": "failed"}
    hosts = {h for part in stats.values() if isinstance(part, dict) for h in part}
    return {
        h: {name: int(stats.get(key, {}).get(h, 0)) for key, name in keys.items()} for h in hosts
    }


def main(argv: list[str] | None = None) -> int:
    """``make deploy``: site.yml on an inventory, run again once if only the lab's
    transport failed."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("-i", "--inventory", type=Path, default=ROOT / "inventories" / "lab")
    args, extra = parser.parse_known_args(argv)  # the rest goes to ansible-playbook
    run = run_site(args.inventory, *extra, echo=True)
    if run.failed:
        print("sitecheck: failed tasks:\n" + run.failures(), file=sys.stderr)
    print(f"sitecheck: {run.seconds:.0f} s, hosts: {len(run.recap)}, "
          f"changed: {run.total('changed')}, failed: {run.total('failed')}")  # fmt: skip
    return run.returncode


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
