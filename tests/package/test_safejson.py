"""JSON from clients: a document nested too deeply is a ValueError (a 400), never a
RecursionError (a 500), whether the parser or a later walk would have hit the limit."""

from __future__ import annotations

import json

import pytest

from pandafacility import safejson


@pytest.mark.parametrize("levels", [safejson.MAX_DEPTH + 1, 900, 100_000])
def test_too_deep_is_a_value_error(levels):
    with pytest.raises(ValueError, match="nested deeper"):
        safejson.loads("[" * levels + "]" * levels)
    with pytest.raises(ValueError, match="nested deeper"):
        safejson.loads('{"a":' * levels + "1" + "}" * levels)


def test_documents_within_the_bound_parse_as_json_does():
    doc = {"jobs": [{"params": {"a": [1, {"b": None}]}}], "n": 1.5}
    assert safejson.loads(json.dumps(doc)) == doc
    nested = "[" * safejson.MAX_DEPTH + "]" * safejson.MAX_DEPTH
    assert safejson.depth(safejson.loads(nested)) == safejson.MAX_DEPTH
    assert safejson.depth(3) == 0 and safejson.depth([]) == 1
