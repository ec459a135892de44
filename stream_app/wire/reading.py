"""Decoding and validating readings on the hot path.

``faust.Record`` decoding is ~20x slower than ``orjson.loads``, and generic
JSON Schema validation is slower still, so readings arrive as raw bytes and
are checked here by hand-compiled rules that mirror
``schemas/reading.schema.json``; a property test generates documents from
the schema and requires this decoder and a standard validator (with format
checking) to agree on every one. Every failure becomes a :class:`Rejection`
with a reason from the dead-letter schema; nothing raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, TypeGuard

import orjson

from stream_app.wire.content import has_duplicate_keys
from stream_app.wire.names import ENTITY_RE, MAX_ENTITY, METRIC_RE
from stream_app.wire.timefmt import parse_timestamp

_TOP_LEVEL = frozenset({"entity", "ts", "metrics", "source", "tags", "ingested_at"})
MAX_METRICS = 64
MAX_TAGS = 32
MAX_SOURCE = 64
MAX_TAG_VALUE = 200
# a tag's name: unbounded, one 1.2 MB name made a valid reading larger than a Kafka
# message (the API answered 503, "Kafka unavailable", to a request no retry could pass)
MAX_TAG_KEY = 64
_MAX_NUMBER = 1.7976931348623157e308  # the schema's bound: a finite double
# ... and a metric's value: beyond it the squares that means keep overflow a double. Two
# readings of 1.7e308 made every mean of their series' buckets fail in PostgreSQL, and so
# did 1e200 beside 2e200 (avg() keeps the sum of squared deviations: 422 on a series'
# downsampled view, and the rollups unreadable for every entity); at 1e150 a bucket
# overflows only past 45 million points. The detectors' squares stay finite too.
MAX_VALUE = 1e150


class Reading(NamedTuple):
    """A validated reading: event time in epoch seconds, metric values finite or None.

    A named tuple: one is made per message, and a frozen dataclass cost three
    times as much to build (1.8 against 0.6 us).
    """

    entity: str
    ts: float
    metrics: dict[str, float | None]
    ingested_at: float | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message could not be used (``reason`` is a dead-letter schema enum value)."""

    reason: str
    detail: str


_NAME_CACHE = 100_000


# the white space a number may have around it: ASCII only (float strips a no-break space
# and other Unicode spaces as well)
ASCII_SPACE = " \t\n\r\x0b\x0c"


def parse_number(text: str) -> float:
    """A number written as text, as every reader of readings takes it (MQTT payloads, CSV
    cells): ``float``, but not Python's own ``1_000``, nor digits of other scripts
    (Arabic-Indic, fullwidth) or Unicode spaces around it, which ``float`` takes but no
    other system reads as a number; ``ValueError`` otherwise.

    >>> parse_number(" 21.5"), parse_number("1e3"), parse_number("\\t-0.0\\n")
    (21.5, 1000.0, -0.0)
    >>> parse_number("1_000")
    Traceback (most recent call last):
    ...
    ValueError: not a number: '1_000'
    >>> parse_number("10\\xa0")
    Traceback (most recent call last):
    ...
    ValueError: not a number: '10\\xa0'
    """
    stripped = text.strip(ASCII_SPACE)
    if "_" in stripped or not stripped.isascii():
        raise ValueError(f"not a number: {text!r}")
    return float(stripped)


def _remember(names: set[str], name: str) -> None:
    if len(names) >= _NAME_CACHE:
        names.clear()
    names.add(name)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _finite(value: int | float) -> bool:
    return -_MAX_NUMBER <= value <= _MAX_NUMBER


# how far ahead of the reader's clock a reading's time may be (a device's clock runs
# ahead); the API applies the same limit, so what it accepts the worker takes
MAX_FUTURE_S = 3600.0


def _beyond(name: str, value: float) -> Rejection:
    if _finite(value):
        return Rejection("schema", f"/metrics/{name}: beyond +-{MAX_VALUE:g}")
    return Rejection("non_finite", f"/metrics/{name}: not a finite number")


def json_rejection(exc: orjson.JSONDecodeError, raw: bytes, context: str = "") -> Rejection:
    """Why JSON orjson refused is no reading: NaN, Infinity or a number beyond a double is
    ``non_finite``, anything else ``invalid_json`` (the Kafka decoder's and the MQTT
    bridge's word alike)."""
    text = str(exc)
    if "infinity" in text or b"NaN" in raw or b"Infinity" in raw:
        return Rejection("non_finite", f"NaN or Infinity is not a valid value: {text}")
    return Rejection("invalid_json", context + text)


class ReadingDecoder:
    """Turns raw message bytes into a :class:`Reading` or a :class:`Rejection`."""

    def __init__(self, *, max_bytes: int = 1_048_576, max_future_s: float = MAX_FUTURE_S) -> None:
        self.max_bytes = max_bytes
        self.max_future_s = max_future_s
        # Names already checked against the patterns: a fleet repeats the same
        # entities and metrics, and the regular expressions cost more than the
        # rest of the validation. Bounded: cleared when full.
        self._good_entities: set[str] = set()
        self._good_metrics: set[str] = set()

    def decode(self, raw: bytes | None, now: float) -> Reading | Rejection:
        if raw is None:
            return Rejection("invalid_json", "empty message (tombstone)")
        if len(raw) > self.max_bytes:
            return Rejection("too_large", f"{len(raw)} bytes exceeds the limit of {self.max_bytes}")
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return json_rejection(exc, raw)
        if has_duplicate_keys(raw, doc):
            return Rejection("invalid_json", "an object names the same key twice")
        return self.validate(doc, now)

    def validate(self, doc: Any, now: float) -> Reading | Rejection:
        if not isinstance(doc, dict):
            return Rejection("schema", f"a reading must be a JSON object, got {type(doc).__name__}")
        if not _TOP_LEVEL.issuperset(doc):
            unknown = doc.keys() - _TOP_LEVEL
            return Rejection("schema", f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
        entity = doc.get("entity")
        if not isinstance(entity, str) or not entity:
            return Rejection("schema", "/entity: required non-empty string")
        if entity not in self._good_entities:
            if len(entity) > MAX_ENTITY or ENTITY_RE.fullmatch(entity) is None:
                return Rejection("schema", f"/entity: {entity[:80]!r} is not a valid entity path")
            _remember(self._good_entities, entity)
        if "ts" not in doc:
            return Rejection("schema", "/ts: required")
        try:
            ts = parse_timestamp(doc["ts"])
        except (ValueError, OverflowError) as exc:
            return Rejection("bad_timestamp", f"/ts: {exc}")
        if ts > now + self.max_future_s:
            return Rejection(
                "future_timestamp",
                f"/ts: {ts - now:.0f} s in the future (limit {self.max_future_s:.0f} s)",
            )
        metrics = doc.get("metrics")
        if not isinstance(metrics, dict) or not metrics:
            return Rejection("schema", "/metrics: required non-empty object")
        if len(metrics) > MAX_METRICS:
            return Rejection("schema", f"/metrics: more than {MAX_METRICS} metrics")
        values: dict[str, float | None] = {}
        good = self._good_metrics
        for name, value in metrics.items():
            if name not in good:
                if METRIC_RE.fullmatch(name) is None:
                    return Rejection("schema", f"/metrics/{name[:64]!r}: invalid metric name")
                _remember(good, name)
            kind = type(value)
            if kind is float:  # the common case first: a plain float
                if -MAX_VALUE <= value <= MAX_VALUE:
                    values[name] = value
                    continue
                return _beyond(name, value)
            if value is None:
                values[name] = None
            elif not _is_number(value):
                return Rejection("schema", f"/metrics/{name}: must be a number or null")
            elif not -MAX_VALUE <= value <= MAX_VALUE:
                return _beyond(name, value)
            else:
                values[name] = float(value)
        return self._optional_fields(doc, entity, ts, values)

    @staticmethod
    def _optional_fields(
        doc: dict[str, Any], entity: str, ts: float, values: dict[str, float | None]
    ) -> Reading | Rejection:
        source = doc.get("source")
        if "source" in doc and (
            not isinstance(source, str) or len(source) > MAX_SOURCE or "\x00" in source
        ):
            return Rejection(
                "schema", f"/source: must be text of at most {MAX_SOURCE} characters, no NUL"
            )
        if "tags" in doc:
            tags = doc["tags"]
            if not isinstance(tags, dict) or len(tags) > MAX_TAGS:
                return Rejection(
                    "schema", f"/tags: must be an object of at most {MAX_TAGS} strings"
                )
            for key, tag in tags.items():
                if (
                    not isinstance(tag, str)
                    or len(tag) > MAX_TAG_VALUE
                    or len(key) > MAX_TAG_KEY
                    or "\x00" in tag
                    or "\x00" in key
                ):
                    return Rejection(
                        "schema",
                        f"/tags/{key[:64]!r}: must be text (<= {MAX_TAG_VALUE}) named in at "
                        f"most {MAX_TAG_KEY} characters, no NUL",
                    )
        if "ingested_at" not in doc:
            return Reading(entity, ts, values, None, source)
        ingested = doc["ingested_at"]
        if not (_is_number(ingested) and _finite(ingested)):
            return Rejection("schema", "/ingested_at: must be a finite number")
        return Reading(entity, ts, values, float(ingested), source)
