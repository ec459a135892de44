"""The wire contracts: examples validate, and code and SQL match the schemas."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from stream_app.core import EngineConfig, SeriesProcessor
from stream_app.storage.tables import ANOMALY_COLUMNS, OBSERVATION_COLUMNS
from stream_app.wire import ReadingDecoder, Rejection, dead_letter, event_to_wire

ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "schemas"


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize(
    "example", sorted((SCHEMAS / "examples").glob("*.json")), ids=lambda p: p.name
)
def test_examples_validate(example: Path) -> None:
    kind = example.name.split("-")[0]
    schema = {"reading": "reading", "anomaly": "anomaly-event", "deadletter": "deadletter"}[kind]
    _validator(f"{schema}.schema.json").validate(json.loads(example.read_text()))


def test_decoder_agrees_with_the_reading_schema() -> None:
    validator = _validator("reading.schema.json")
    decoder = ReadingDecoder(max_future_s=1e12)
    cases = [
        {"entity": "a/b", "ts": 1.0, "metrics": {"x": 1.0}},
        {"entity": "a/b", "ts": "2026-01-01T00:00:00Z", "metrics": {"x": None}, "tags": {"k": "v"}},
        {"entity": "a b", "ts": 1.0, "metrics": {"x": 1.0}},
        {"entity": "a/b", "metrics": {"x": 1.0}},
        {"entity": "a/b", "ts": 1.0, "metrics": {}},
        {"entity": "a/b", "ts": 1.0, "metrics": {"x": "1"}},
        {"entity": "a/b", "ts": 1.0, "metrics": {"9x": 1.0}},
        {"entity": "a/b", "ts": 1.0, "metrics": {"x": 1.0}, "extra": 1},
        {"entity": "a/b", "ts": 1.0, "metrics": {"x": True}},
        {"entity": "a/b", "ts": -5, "metrics": {"x": 1.0}},
        {"entity": "a/b", "ts": 1.0, "metrics": {"x": 1.0}, "source": "s" * 65},
        {"entity": "a/b", "ts": 1.0, "metrics": {"x": 1.0}, "tags": {"k": 3}},
    ]
    for doc in cases:
        schema_ok = validator.is_valid(doc)
        decoded = decoder.validate(doc, now=2e9)
        assert schema_ok == (not isinstance(decoded, Rejection)), (doc, decoded)


def test_dead_letters_match_their_schema() -> None:
    validator = _validator("deadletter.schema.json")
    letter = dead_letter(b"\xff\xfe" * 10, Rejection("invalid_json", "bad"), at=1.0, max_payload=8)
    validator.validate(letter)
    assert letter["payload_encoding"] == "base64" and letter["truncated"]


def test_episode_events_match_their_schema() -> None:
    validator = _validator("anomaly-event.schema.json")
    proc = SeriesProcessor.create(entity="p/1", metric="t", config=EngineConfig.default())
    events = []
    for i in range(400):
        value = 10.0 + (i % 7) * 0.1 + (50.0 if 300 <= i < 305 else 0.0)
        events += proc.process(ts=1.79e9 + 60 * i, value=value)[1]
    assert {e.event for e in events} >= {"opened", "resolved"}
    for event in events:
        validator.validate(event_to_wire(event, emitted_at=1.79e9))


def test_sql_columns_match_the_scored_point() -> None:
    sql = (ROOT / "stream_app/storage/migrations/001_tables.sql").read_text()
    for column in OBSERVATION_COLUMNS:
        assert f"    {column} " in sql, column
    # the one list of the anomalies' columns that the sink writes and the API reads
    anomalies = sql[sql.index("CREATE TABLE IF NOT EXISTS anomalies") :]
    for column in ANOMALY_COLUMNS:
        assert f"    {column} " in anomalies, column
    anomaly = json.loads((SCHEMAS / "anomaly-event.schema.json").read_text())["properties"]
    for field in (
        "entity",
        "metric",
        "kind",
        "value",
        "expected",
        "lower",
        "upper",
        "score",
        "peak_score",
        "severity",
        "direction",
        "detector",
        "explanation",
    ):
        assert field in anomaly
        assert f"    {field} " in sql, field
