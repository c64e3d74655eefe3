"""What the benchmarks share: driving a molecule scenario, finding its CA, and reading
how much CPU each of its containers used."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CGROUP = Path("/sys/fs/cgroup")


def molecule(scenario: str, *args: str) -> None:
    subprocess.run(["molecule", *args, "-s", scenario], cwd=ROOT, check=True)


def ephemeral_ca(scenario: str) -> Path:
    """The scenario's CA, in molecule's ephemeral directory for this scenario."""
    tmp = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", Path.home() / ".ansible" / "tmp"))
    found = sorted(tmp.glob(f"molecule.*.{scenario}/ca/ca.crt"), key=lambda p: p.stat().st_mtime)
    if not found:
        sys.exit(f"no CA of the {scenario} scenario under {tmp}: did converge run?")
    return found[-1]


def cpu_seconds(container: str) -> float:
    """CPU time a container has used so far (cgroup v1 or v2, cgroupfs or systemd)."""
    full = subprocess.run(
        ["docker", "inspect", "--format", "{{.Id}}", container],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    v1 = CGROUP / "cpuacct" / "docker" / full / "cpuacct.usage"
    if v1.is_file():
        return int(v1.read_text()) / 1e9
    for v2 in (CGROUP / "docker" / full, CGROUP / "system.slice" / f"docker-{full}.scope"):
        stat = v2 / "cpu.stat"
        if stat.is_file():
            fields = dict(line.split() for line in stat.read_text().splitlines())
            return int(fields["usage_usec"]) / 1e6
    raise FileNotFoundError(f"no CPU accounting found for container {container}")


def add_scenario_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", action="store_true", help="leave the scenario up")
    parser.add_argument("--reuse", action="store_true", help="use the converged scenario")


def bring_up(scenario: str, reuse: bool) -> None:
    """Docker, the images and a freshly converged scenario (or the one up, with reuse)."""
    import lab

    lab.ensure_docker()
    if not reuse:
        lab.ensure_images()
        for action in ("destroy", "create", "converge"):
            molecule(scenario, action)


def tear_down(scenario: str, args: argparse.Namespace) -> None:
    if not (args.keep or args.reuse):
        molecule(scenario, "destroy")
