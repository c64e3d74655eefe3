"""What the roles declare, read from their files: the unit tests of cross-cutting
concerns (SELinux, the host firewall) check that every port option reaches them."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"


def port_options() -> set[str]:
    """Every option of every role's argument specs whose name ends in _port."""
    names = set()
    for spec in ROLES.glob("*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            names |= {n for n in entry.get("options", {}) if n.endswith("_port")}
    return names


def tasks() -> list[dict]:
    """Every task of every role's task files (top level)."""
    found = []
    for path in ROLES.glob("*/tasks/*.yml"):
        found += [t for t in yaml.safe_load(path.read_text()) or [] if isinstance(t, dict)]
    return found


def unreached(options: set[str], text: str) -> list[str]:
    """The options that the text (what the roles hand a shared task file) never names."""
    return [name for name in sorted(options) if not re.search(rf"\b{name}\b", text)]
