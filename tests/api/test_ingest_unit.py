"""The ingest route's check of a batch, without a server: the verdict comes from the
worker's decoder (cheap), the pointers of what is reported from the schema."""

from __future__ import annotations

import time
from typing import NoReturn

import orjson
import pytest

from stream_app.api import readings
from stream_app.api.readings import _MAX_ERRORS, _checked, check_batch, validate_item


def test_each_missing_field_is_pointed_at_by_its_own_error() -> None:
    """Every "required" error carried the first missing field's pointer: a reading
    without ``ts`` was told ``/entity: 'ts' is a required property``."""
    assert validate_item({"metrics": {"m": 1}}) == [
        ("/entity", "'entity' is a required property"),
        ("/ts", "'ts' is a required property"),
    ]
    _, errors, rejected = check_batch([{"entity": "a/b", "metrics": {"m": 1}}])
    assert rejected == 1 and [(e.pointer, e.field) for e in errors] == [("/ts", "ts")]


def test_a_body_of_empty_items_is_counted_without_checking_each_against_the_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1.7 million items of {} (5 MB) took 32 s of the server's time, each checked by
    jsonschema; the errors reported stop at _MAX_ERRORS, and so does the schema's work."""
    checked: list[object] = []

    def counted(item: object) -> list[tuple[str, str]]:
        checked.append(item)
        return validate_item(item)

    monkeypatch.setattr(readings, "validate_item", counted)
    body = b"[" + b",".join([b"{}"] * 200_000) + b"]"
    _, (valid, errors, rejected) = _checked(body, "application/json")
    assert (len(valid), rejected, len(errors)) == (0, 200_000, _MAX_ERRORS)
    assert len(checked) <= _MAX_ERRORS  # three errors each: 334 items said why


def test_the_verdict_is_the_schemas_on_good_bad_and_mixed_items() -> None:
    now = time.time()
    good = {"entity": "plant-1/pump-2", "ts": "2026-11-26T10:00:00Z", "metrics": {"t": 1.5}}
    bad = [
        {**good, "ts": now + 7200},  # beyond the hour ahead the worker takes
        {**good, "metrics": {"t": 2e150}},  # beyond the bound
        {**good, "metrics": {"t": float("nan")}},
        {**good, "extra": 1},
        {**good, "entity": "a/nl\n"},
        {**good, "source": "a\x00b"},
        [good],
        "text",
    ]
    valid, errors, rejected = check_batch([good, *bad, good], now=now)
    assert valid == [good, good] and rejected == len(bad)
    assert {e.index for e in errors} == set(range(1, len(bad) + 1))
    assert all(e.message for e in errors)
    body = orjson.dumps([good, *bad[:2]])
    assert len(_checked(body, "application/json")[1][0]) == 1


class _Unwalkable(dict[str, float]):
    """A wide object that says its size but may not be walked: what it costs to check
    is then bounded whatever its size."""

    def __iter__(self) -> NoReturn:
        raise AssertionError("walked an object over its bound")

    def items(self) -> NoReturn:
        raise AssertionError("walked an object over its bound")

    keys = values = items  # type: ignore[assignment]


@pytest.mark.parametrize(("field", "bound"), [("metrics", 64), ("tags", 32)])
def test_an_object_over_its_bound_is_refused_without_walking_it(field: str, bound: int) -> None:
    """jsonschema checked every name and value of ``metrics`` after ``maxProperties`` had
    failed: one reading of 200,000 metrics (2.7 MB) held a thread of the API for 15 s, four of 300,000 (4 MB)
    at once 71 s, and the other clients' ingest slowed from 0.13 s to 0.74 s meanwhile.
    The error also echoed the first 300 characters of the object instead of the bound."""
    item: dict[str, object] = {"entity": "a", "ts": "2026-12-06T10:00:00Z", "metrics": {"t": 1}}
    item[field] = _Unwalkable({f"k{i}": 1.0 for i in range(bound + 1)})
    assert validate_item(item) == [(f"/{field}", f"{bound + 1} properties, more than {bound}")]
    _, errors, rejected = check_batch([item])
    assert rejected == 1 and [(e.pointer, e.field) for e in errors] == [(f"/{field}", field)]


def test_short_ndjson_lines_past_the_errors_said_are_counted_unparsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5 MB of "x" lines (2.5 million) took 85 to 107 s of a busy host: each read by orjson
    and again by the standard parser, for messages past _MAX_ERRORS that no one sees. A line
    shorter than the shortest reading is refused whatever it holds; past _MAX_ERRORS of them
    it is counted without being parsed. Readings after them are still read, as they are."""
    shortest = b'{"entity":"a","ts":0,"metrics":{"a":0}}'
    assert len(shortest) == readings.SHORTEST_READING
    parsed: list[bytes] = []

    def counted(raw: bytes) -> object:
        parsed.append(raw)
        return loads_lenient(raw)

    loads_lenient = readings._loads_lenient
    monkeypatch.setattr(readings, "_loads_lenient", counted)
    bom = b"\xef\xbb\xbf" + shortest.replace(b'"a"}', b'"bom"}')  # read by the standard parser
    body = b"\n".join([b"x"] * 200_000 + [b"{}", shortest, bom])
    items, (valid, errors, rejected) = _checked(body, "application/x-ndjson")
    assert (len(items), len(valid), rejected, len(errors)) == (200_003, 2, 200_001, _MAX_ERRORS)
    assert errors[0].message.startswith("not valid JSON") and errors[-1].index == _MAX_ERRORS - 1
    assert len(parsed) == _MAX_ERRORS + 2  # the first 1,000 "x", then the two readings
