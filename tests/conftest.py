"""Shared by the controller-side tests: paths and loading of the collection's plugins."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))


def load_plugin(kind: str, name: str) -> ModuleType:
    """Import plugins/<kind>/<name>.py the way Ansible would: as a plain module file."""
    path = ROOT / "plugins" / kind / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"facility_{kind}_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
