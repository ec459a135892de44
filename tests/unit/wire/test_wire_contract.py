"""One reading contract: the hand-written decoder and the schema agree.

Documents are generated from ``schemas/reading.schema.json`` (valid ones by
hypothesis-jsonschema, invalid ones by mutating them and by arbitrary JSON)
and each must get the same verdict from the worker's fast decoder and from a
standard validator with ``date-time`` format checking (jsonschema +
rfc3339-validator). The future-time check depends on the clock, not the
schema, so it is switched off here. One thing the schema cannot say: a text
time's instant in UTC must be in the range too (``1970-01-01T00:00:00+01:00``
is before the epoch), which its pattern, reading the year as written, lets by.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator

from stream_app.resources import data_file
from stream_app.wire import Reading, ReadingDecoder, Rejection, dead_letter
from stream_app.wire.timefmt import MAX_EPOCH

SCHEMA: dict[str, Any] = json.loads(data_file("schemas", "reading.schema.json").read_text("utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
DECODER = ReadingDecoder(max_future_s=math.inf)
EXAMPLES = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NEAR_MISS_TIMES = [
    "2026-01-01",
    "20260101T100000",
    "20260101T100000Z",
    "2026-W01-1T10:00",
    "2026-01-01T10:00",
    "2026-01-01T10:00:00",
    "2026-01-01 10:00:00Z",
    "2026-01-01T10:00:00Z\n",
    "2026-01-01T10:00:00+0100",
    "2026-01-01T10:00:60Z",
    "2026-02-29T10:00:00Z",
    "2026-13-01T10:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T10:00:00+24:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "0000-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "\uff12026-01-01T10:00:00Z",  # a full-width digit: \d would take it
    "2026-01-01T10:00:00.Z",
]


def from_object_schema(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects of ``schema``, each value from hypothesis-jsonschema.

    hypothesis-jsonschema 0.23's own object strategy relies on a Hypothesis
    internal (``many.more``) that current Hypothesis no longer has, so objects
    are composed here from the schema's keywords; every leaf value still comes
    from ``from_schema`` of its subschema.
    """
    if "properties" in schema:
        required = set(schema.get("required", ()))
        props = schema["properties"]
        strategies = {k: subschema(v) for k, v in props.items()}
        return st.fixed_dictionaries(
            {k: v for k, v in strategies.items() if k in required},
            optional={k: v for k, v in strategies.items() if k not in required},
        )
    names = from_schema({"type": "string", **schema.get("propertyNames", {})})
    return st.dictionaries(
        names,
        subschema(schema["additionalProperties"]),
        min_size=schema.get("minProperties", 0),
        max_size=min(schema.get("maxProperties", 8), 8),
    )


def subschema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if schema.get("type") == "object":
        return from_object_schema(schema)
    return from_schema(schema)


READINGS = from_object_schema(SCHEMA)


def verdicts(doc: Any) -> tuple[bool, bool, Rejection | None]:
    """(schema says valid, decoder says valid, the decoder's rejection)."""
    raw = json.dumps(doc).encode()
    decoded = DECODER.decode(raw, now=0.0)
    rejection = decoded if isinstance(decoded, Rejection) else None
    return VALIDATOR.is_valid(doc), rejection is None, rejection


def offset_leaves_the_range(doc: Any) -> bool:
    """A text time the schema takes whose offset puts it before 1970 or after 9999."""
    ts = doc.get("ts") if isinstance(doc, dict) else None
    if not isinstance(ts, str) or not VALIDATOR.is_valid(doc):
        return False
    try:
        instant = datetime.fromisoformat(ts.upper()).timestamp()
    except (ValueError, OverflowError):
        return False
    return not 0.0 <= instant < MAX_EPOCH


def assert_agree(doc: Any) -> None:
    if offset_leaves_the_range(doc):
        assert verdicts(doc)[1] is False, doc  # the decoder refuses what the pattern cannot
        return
    schema_ok, decoder_ok, rejection = verdicts(doc)
    assert schema_ok == decoder_ok, (doc, rejection, list(VALIDATOR.iter_errors(doc))[:2])
    if rejection is not None:
        assert rejection.reason != "internal_error"


def test_the_validator_checks_date_time_formats() -> None:
    assert "date-time" in Draft202012Validator.FORMAT_CHECKER.checkers


@EXAMPLES
@given(READINGS)
def test_every_schema_valid_document_is_accepted(doc: dict[str, Any]) -> None:
    assume(not offset_leaves_the_range(doc))
    schema_ok, decoder_ok, rejection = verdicts(doc)
    assert schema_ok
    assert decoder_ok, (doc, rejection)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
mutated_text = st.text(max_size=12) | st.sampled_from(
    ["\n", "\x00", "/", " ", "é", "a\nb", "", "9"]
)


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = dict(draw(READINGS))
    field = draw(st.sampled_from(["entity", "ts", "metrics", "source", "tags", "extra", "drop"]))
    how = draw(st.integers(0, 3))
    if field == "drop":
        doc.pop(draw(st.sampled_from(["entity", "ts", "metrics"])), None)
    elif field == "extra":
        doc[draw(st.text(max_size=10))] = draw(json_values)
    elif field == "ts" and how < 2:
        doc["ts"] = draw(st.sampled_from(NEAR_MISS_TIMES)) if how == 0 else draw(st.text())
    elif field == "entity" and how < 2:
        doc["entity"] = str(doc["entity"]) + draw(mutated_text)
    elif field == "metrics" and how < 2:
        metrics = dict(doc["metrics"])
        metrics[draw(st.text(max_size=6)) + draw(mutated_text)] = draw(json_values)
        doc["metrics"] = metrics
    elif field in ("source", "tags") and how < 2:
        doc[field] = (
            draw(mutated_text) if field == "source" else {draw(mutated_text): draw(mutated_text)}
        )
    else:
        doc[field if field != "extra" else "entity"] = draw(json_values)
    return doc


@EXAMPLES
@given(mutated_documents())
def test_mutated_documents_get_the_same_verdict(doc: dict[str, Any]) -> None:
    assert_agree(doc)


@EXAMPLES
@given(st.dictionaries(st.sampled_from(sorted(SCHEMA["properties"])), json_values, max_size=6))
def test_arbitrary_objects_get_the_same_verdict(doc: dict[str, Any]) -> None:
    assert_agree(doc)


@pytest.mark.parametrize(
    "ts", ["1970-01-01T00:00:00+23:59", "1970-01-01T04:59:59+05:00", "9999-12-31T23:59:59-01:00"]
)
def test_a_time_whose_offset_leaves_the_range_is_refused_by_the_decoder(ts: str) -> None:
    """The schema's pattern reads the year as written; the instant is what is stored (a
    reading of 1969 was stored, where the number -60 is refused)."""
    doc = {"entity": "a/b", "ts": ts, "metrics": {"x": 1.0}}
    assert offset_leaves_the_range(doc)
    schema_ok, decoder_ok, rejection = verdicts(doc)
    assert schema_ok and not decoder_ok
    assert rejection is not None and rejection.reason == "bad_timestamp", rejection


@pytest.mark.parametrize("ts", NEAR_MISS_TIMES)
def test_near_miss_times_are_refused_by_both(ts: str) -> None:
    doc = {"entity": "a/b", "ts": ts, "metrics": {"x": 1.0}}
    schema_ok, decoder_ok, rejection = verdicts(doc)
    assert not schema_ok and not decoder_ok
    assert rejection is not None and rejection.reason == "bad_timestamp", rejection


@pytest.mark.parametrize("ts", [-1, -0.5, 253402300800, 1e300])
def test_out_of_range_numbers_are_refused_like_out_of_range_text(ts: float) -> None:
    doc = {"entity": "a/b", "ts": ts, "metrics": {"x": 1.0}}
    schema_ok, decoder_ok, rejection = verdicts(doc)
    assert not schema_ok and not decoder_ok
    assert rejection is not None and rejection.reason == "bad_timestamp"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("entity", "a/nl\n"),
        ("metrics", {"t\n": 1.0}),
        ("source", "a\x00b"),
        ("tags", {"site": "a\x00"}),
        ("tags", {"a\x00": "x"}),
        ("metrics", {"t": 10**400}),
        # two readings of 1.7e308 made every mean of their series' buckets overflow
        ("metrics", {"t": 1.7e308}),
        ("metrics", {"t": -1.0000001e150}),
        # 1e200 beside 2e200 made avg() overflow: a 422 on the downsampled view
        ("metrics", {"t": 2e200}),
        # a 1.2 MB tag name made a valid reading larger than a Kafka message
        ("tags", {"k" * 65: "x"}),
        ("tags", {"k" * 1_200_000: "x"}),
    ],
)
def test_hostile_values_are_refused_by_both(field: str, value: Any) -> None:
    doc = {"entity": "a/b", "ts": "2026-01-01T00:00:00Z", "metrics": {"x": 1.0}, field: value}
    schema_ok, decoder_ok, rejection = verdicts(doc)
    assert not schema_ok and not decoder_ok, rejection


@pytest.mark.parametrize(
    "raw",
    [
        b'{"entity": "X/dupA", "entity": "X/dupB", "ts": 1, "metrics": {"x": 1}}',
        b'{"entity": "X/a", "ts": 1, "metrics": {"x": 1, "x": 2}}',
        b'{"entity": "X/a", "ts": 1, "metrics": {"x": 1}, "tags": {"k": "a", "k" : "b"}}',
        b'{"entity" :"X/a", "entity":"X/b", "ts": 1, "metrics": {"x": 1}}',
    ],
)
def test_duplicate_keys_are_dead_lettered(raw: bytes) -> None:
    verdict = DECODER.decode(raw, now=0.0)
    assert isinstance(verdict, Rejection) and verdict.reason == "invalid_json"
    assert "same key twice" in verdict.detail
    record = dead_letter(raw, verdict, at=0.0, max_payload=1024)
    assert record["payload"] == raw.decode()


def test_keys_hidden_in_text_are_not_duplicates() -> None:
    raw = b'{"entity": "X/a", "ts": 1, "metrics": {"x": 1}, "source": ":", "tags": {"k": "\\":"}}'
    assert not isinstance(DECODER.decode(raw, now=0.0), Rejection)


@pytest.mark.parametrize("digits", [309, 400, 4000])
def test_integers_beyond_the_floats_read_as_infinite_not_as_an_error(digits: int) -> None:
    """The API's fallback parser (for what orjson refuses) raised OverflowError, a 500,
    on an integer of 309 to 4,300 digits; 1e999 reads as infinite, and so do they."""
    from stream_app.wire.content import loads_marking_duplicates

    big = "9" * digits
    assert loads_marking_duplicates(f"[{big}, -{big}, 18446744073709551616]") == [
        math.inf,
        -math.inf,
        18446744073709551616.0,
    ]


def test_a_letter_cuts_the_senders_key_and_location() -> None:
    """A 600 kB Kafka key made a letter over the producer's 1 MB limit (it carries the key
    and is keyed by it): the worker could not send it and died on the record."""
    schema = json.loads(data_file("schemas", "deadletter.schema.json").read_text("utf-8"))
    verdict = Rejection("wrong_key", "the key is not the reading's entity")
    for key in (b"k" * 600_000, "é" * 600_000, "k" * 1024):
        letter = dead_letter(
            b"{}", verdict, at=0.0, max_payload=1024, key=key, location="x" * 10**6
        )
        Draft202012Validator(schema).validate(letter)
        assert letter["origin"]["key"] == (key.decode() if isinstance(key, bytes) else key)[:1024]
        assert len(letter["origin"]["location"]) == 1024
        assert len(json.dumps(letter)) < 20_000


def test_the_api_refuses_a_time_the_worker_would_dead_letter_as_future() -> None:
    """The API answered 202 for a reading two hours ahead, which the worker then
    dead-lettered as future_timestamp: the client never heard."""
    from stream_app.api.readings import check_batch

    now = 1_790_000_000.0
    items = [
        {"entity": "a", "ts": now + 7200, "metrics": {"v": 1.0}},
        {"entity": "a", "ts": "9999-12-31T23:59:59Z", "metrics": {"v": 1.0}},
        {"entity": "a", "ts": now + 3000, "metrics": {"v": 1.0}},  # a clock a little ahead
        {"entity": "a", "ts": now - 86_400 * 365, "metrics": {"v": 1.0}},
    ]
    valid, errors, rejected = check_batch(items, now=now)
    assert valid == items[2:] and rejected == 2
    assert [(e.index, e.pointer) for e in errors] == [(0, "/ts"), (1, "/ts")]
    assert errors[0].message == "7200 s in the future (limit 3600 s)"
    decoder = ReadingDecoder()
    for item in items:  # the worker's verdict, item by item
        verdict = decoder.validate(item, now)
        assert isinstance(verdict, Rejection) == (item not in valid), item


def test_the_largest_valid_reading_fits_a_kafka_message() -> None:
    """Every part of a reading is bounded, so one the schema accepts is never a message
    too large for Kafka (1 MB)."""
    doc = {
        "entity": "/".join(["e" * 49] * 4),
        "ts": "2026-01-01T00:00:00.123456789+00:00",
        "metrics": {f"m{i:02d}" + "x" * 60: -1e150 for i in range(64)},
        "source": "s" * 64,
        "tags": {f"{i:02d}" + "k" * 62: "\u2603" * 200 for i in range(32)},
        "ingested_at": -1.7976931348623157e308,
    }
    schema_ok, decoder_ok, _ = verdicts(doc)
    assert schema_ok and decoder_ok
    assert len(json.dumps(doc, ensure_ascii=False).encode()) < 100_000


def test_epoch_numbers_are_read_to_the_microsecond_as_text_and_the_database_read_them() -> None:
    """Two readings 0.3 us apart were two points to the worker (both scored, both counted)
    and one row to PostgreSQL, which keeps microseconds: the second vanished uncounted."""
    from stream_app.wire import parse_timestamp

    t0 = 1_790_000_000.0
    assert parse_timestamp(t0 + 2e-7) == parse_timestamp(t0 + 5e-7) == t0
    assert parse_timestamp(t0 + 0.25) == t0 + 0.25 and parse_timestamp(1790000123) == 1790000123.0
    assert parse_timestamp(t0 + 0.1234567) == parse_timestamp("2026-09-21T14:13:20.123457Z")
    decoded = [DECODER.decode(orjson.dumps({"entity": "a", "ts": t, "metrics": {"v": 1}}), now=t0)
               for t in (t0 + 2e-7, t0 + 5e-7)]  # fmt: skip
    assert [r.ts for r in decoded if isinstance(r, Reading)] == [t0, t0]


def test_the_core_refuses_what_the_schema_refuses() -> None:
    """The detector core keeps its own copies of the wire's bounds (it imports nothing of
    the wire): a value or time the schema refuses must be a rejection there too, so that
    ``replay`` scores a file as the stream would."""
    from stream_app.core import cleaning
    from stream_app.wire import reading, timefmt

    assert cleaning.VALUE_MAX == reading.MAX_VALUE
    assert (cleaning.TS_MIN, cleaning.TS_MAX) == (timefmt.MIN_EPOCH, timefmt.MAX_EPOCH)
    value = SCHEMA["properties"]["metrics"]["additionalProperties"]["oneOf"][0]
    assert (value["minimum"], value["maximum"]) == (-cleaning.VALUE_MAX, cleaning.VALUE_MAX)
