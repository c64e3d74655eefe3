#!/usr/bin/env python3
"""Check that every role's meta/argument_specs.yml and defaults/main.yml agree.

A public variable documented with one default and shipped with another is a trap for
an operator reading the README; a default missing from the spec goes unvalidated.
Rules, for each role:
  - the role has meta/argument_specs.yml with a ``main`` entry point (a role without
    tasks/main.yml, which holds values and task files only: a ``values`` entry point);
  - every variable in defaults/main.yml is an option of ``main``, with the same default;
  - every option of ``main`` that has a default is in defaults/main.yml;
  - every option carries the role's name as prefix and a description.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load(path: Path) -> dict:
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def role_problems(role: Path) -> list[str]:
    name = role.name
    spec_file = role / "meta" / "argument_specs.yml"
    if not spec_file.is_file():
        return [f"{name}: meta/argument_specs.yml is missing"]
    entry = "main" if (role / "tasks" / "main.yml").is_file() else "values"
    options = (load(spec_file).get("argument_specs", {}).get(entry, {}) or {}).get(
        "options", {}
    ) or {}
    if not options:
        return [f"{name}: argument_specs has no {entry} entry point with options"]
    defaults = load(role / "defaults" / "main.yml")
    problems = []
    for var, value in defaults.items():
        if var not in options:
            problems.append(f"{name}: {var} is in defaults/main.yml but not in the spec")
        elif options[var].get("default") != value:
            problems.append(
                f"{name}: {var} defaults to {value!r} in defaults/main.yml "
                f"but {options[var].get('default')!r} in the spec"
            )
    for var, spec in options.items():
        if "default" in spec and var not in defaults:
            problems.append(f"{name}: {var} has a default in the spec but not in defaults/main.yml")
        if not var.startswith(f"{name}_"):
            problems.append(f"{name}: {var} lacks the role prefix '{name}_'")
        if not spec.get("description"):
            problems.append(f"{name}: {var} has no description")
    return problems


def main(roles_dir: Path = ROOT / "roles") -> int:
    problems = [
        p for role in sorted(roles_dir.iterdir()) if role.is_dir() for p in role_problems(role)
    ]
    for problem in problems:
        print(problem)
    print(f"argument specs: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
