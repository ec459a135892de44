"""The rules the API lists are the rules the workers apply."""

from __future__ import annotations

import orjson
import pytest

from stream_app.api.detectors import decode_rule


@pytest.mark.parametrize(
    "rule",
    [
        {"pattern": "zzpoison/*", "policy": {"threshold": 5}},
        {"pattern": "x/*", "detector": "no_such_detector"},
        {"pattern": "x/*", "limits": {"lower": 5, "upper": 1}},
    ],
)
def test_a_rule_the_workers_ignore_is_not_listed(rule: dict[str, object]) -> None:
    """Written to the control topic past the API, such a rule was listed by
    ``GET /v1/detectors`` while every worker logged it as ignored."""
    with pytest.raises(ValueError):
        decode_rule(orjson.dumps(rule))


def test_a_rule_the_workers_apply_is_listed_as_written() -> None:
    rule = {"pattern": "plant-*/temperature", "policy": {"threshold": 0.999}}
    assert decode_rule(orjson.dumps(rule)) == rule
