"""Decoding and validating readings on the hot path.

``faust.Record`` decoding is ~20x slower than ``orjson.loads``, and generic
JSON Schema validation is slower still, so readings arrive as raw bytes and
are checked here by hand-compiled rules that mirror
``schemas/reading.schema.json`` (a test keeps the two in agreement). Every
failure becomes a :class:`Rejection` with a reason from the dead-letter
schema; nothing raises.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

ENTITY_RE = re.compile(r"^[A-Za-z0-9_.:@-]+(/[A-Za-z0-9_.:@-]+)*$")
METRIC_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_TOP_LEVEL = frozenset({"entity", "ts", "metrics", "source", "tags", "ingested_at"})
MAX_ENTITY = 200
MAX_METRICS = 64
MAX_TAGS = 32


@dataclass(frozen=True, slots=True)
class Reading:
    """A validated reading: event time in epoch seconds, metric values finite or None."""

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


def parse_timestamp(value: Any) -> float:
    """RFC 3339 text (naive = UTC) or epoch seconds to epoch seconds; ValueError otherwise.

    >>> parse_timestamp("2026-11-26T10:00:00Z")
    1795687200.0
    >>> parse_timestamp(1795687200.5)
    1795687200.5
    """
    if isinstance(value, bool):
        raise ValueError("timestamp must be a string or a number, not a boolean")
    if isinstance(value, int | float):
        ts = float(value)
        if not math.isfinite(ts) or ts < 0:
            raise ValueError(f"timestamp {value!r} is not a non-negative finite number")
        return ts
    if isinstance(value, str):
        if not 10 <= len(value) <= 40:
            raise ValueError("timestamp text must be 10 to 40 characters")
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise ValueError(
        f"timestamp must be RFC 3339 text or epoch seconds, got {type(value).__name__}"
    )


_NAME_CACHE = 100_000


def _remember(names: set[str], name: str) -> None:
    if len(names) >= _NAME_CACHE:
        names.clear()
    names.add(name)


class ReadingDecoder:
    """Turns raw message bytes into a :class:`Reading` or a :class:`Rejection`."""

    def __init__(self, *, max_bytes: int = 1_048_576, max_future_s: float = 3600.0) -> None:
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
            text = str(exc)
            if "infinity" in text or b"NaN" in raw or b"Infinity" in raw:
                return Rejection("non_finite", f"NaN or Infinity is not a valid value: {text}")
            return Rejection("invalid_json", text)
        return self.validate(doc, now)

    def validate(self, doc: Any, now: float) -> Reading | Rejection:
        if not isinstance(doc, dict):
            return Rejection("schema", f"a reading must be a JSON object, got {type(doc).__name__}")
        unknown = doc.keys() - _TOP_LEVEL
        if unknown:
            return Rejection("schema", f"unknown field(s): {', '.join(sorted(unknown))}")
        entity = doc.get("entity")
        if not isinstance(entity, str) or not entity:
            return Rejection("schema", "/entity: required non-empty string")
        if entity not in self._good_entities:
            if len(entity) > MAX_ENTITY or ENTITY_RE.match(entity) is None:
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
                if METRIC_RE.match(name) is None:
                    return Rejection("schema", f"/metrics/{name[:64]}: invalid metric name")
                _remember(good, name)
            if value is None:
                values[name] = None
            elif isinstance(value, bool) or not isinstance(value, int | float):
                return Rejection("schema", f"/metrics/{name}: must be a number or null")
            else:
                values[name] = float(value)
        return self._optional_fields(doc, entity, ts, values)

    @staticmethod
    def _optional_fields(
        doc: dict[str, Any], entity: str, ts: float, values: dict[str, float | None]
    ) -> Reading | Rejection:
        source = doc.get("source")
        if source is not None and (not isinstance(source, str) or len(source) > 64):
            return Rejection("schema", "/source: must be a string of at most 64 characters")
        tags = doc.get("tags")
        if tags is not None:
            if not isinstance(tags, dict) or len(tags) > MAX_TAGS:
                return Rejection(
                    "schema", f"/tags: must be an object of at most {MAX_TAGS} strings"
                )
            for key, tag in tags.items():
                if not isinstance(tag, str) or len(tag) > 200:
                    return Rejection("schema", f"/tags/{key[:64]}: must be a string (<= 200)")
        ingested = doc.get("ingested_at")
        if ingested is not None and (
            isinstance(ingested, bool) or not isinstance(ingested, int | float)
        ):
            return Rejection("schema", "/ingested_at: must be a number")
        return Reading(
            entity, ts, values, float(ingested) if ingested is not None else None, source
        )


def dead_letter(
    raw: bytes | None,
    rejection: Rejection,
    *,
    at: float,
    max_payload: int,
    source: str = "kafka",
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | str | None = None,
    location: str | None = None,
) -> dict[str, Any]:
    """A dead-letter record (``schemas/deadletter.schema.json``) with a bounded payload."""
    payload = raw or b""
    cut = payload[:max_payload]
    try:
        text, encoding = cut.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(cut).decode("ascii"), "base64"
    if isinstance(key, bytes):
        key = key.decode("utf-8", errors="replace")
    return {
        "reason": rejection.reason,
        "detail": rejection.detail[:2000],
        "origin": {
            "source": source,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": key,
            "location": location,
        },
        "payload": text,
        "payload_encoding": encoding,
        "payload_size": len(payload),
        "truncated": len(payload) > max_payload,
        "at": datetime.fromtimestamp(at, tz=UTC).isoformat().replace("+00:00", "Z"),
    }
