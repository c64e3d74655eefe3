"""JSON from clients, bounded in depth. Python's parser recurses once per level of
nesting: a body nested 100,000 deep raises RecursionError (not ValueError), which the
services would answer with a 500, and a document a little under the interpreter's limit
still makes every later recursive walk (json.dumps, the database driver) fail. Here a
document deeper than MAX_DEPTH is a ValueError, which the services answer with a 400."""

from __future__ import annotations

import json
from typing import Any

# Deeper than any document a PanDA client sends (a job's parameters nest a few levels).
MAX_DEPTH = 64


def depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed document (a scalar is 0), counted
    without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads(data: str | bytes | bytearray, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads that raises ValueError, never RecursionError, for a document nested
    deeper than max_depth."""
    try:
        value = json.loads(data)
    except RecursionError as exc:
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from exc
    if depth(value) > max_depth:
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    return value
