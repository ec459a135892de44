"""MQTT topics and payloads to readings (pure: no broker, no Kafka).

A topic pattern names the levels it captures: ``sites/+site/+device/+metric``
matches ``sites/plant-3/pump-7/temperature`` with site=plant-3, device=pump-7,
metric=temperature. ``+name`` captures one level, ``#name`` (last only) the
rest; bare ``+``/``#`` match without capturing. The entity is the captured
levels other than ``metric`` joined by ``/`` (or an explicit template such as
``{site}/{device}``); the metric is the ``metric`` level or, without one, the
keys of a JSON object payload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from stream_app.wire import ReadingDecoder, Rejection, parse_number
from stream_app.wire.content import has_duplicate_keys
from stream_app.wire.reading import json_rejection

TS_KEYS = ("ts", "timestamp", "time")


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A parsed pattern; `subscription` is the MQTT filter to subscribe with.

    >>> p = TopicPattern.parse("sites/+site/+device/+metric")
    >>> p.subscription, p.match("sites/plant-3/pump-7/temperature")
    ('sites/+/+/+', {'site': 'plant-3', 'device': 'pump-7', 'metric': 'temperature'})
    >>> p.entity({"site": "plant-3", "device": "pump-7", "metric": "temperature"})
    'plant-3/pump-7'
    """

    levels: tuple[str, ...]
    entity_template: str | None = None

    @classmethod
    def parse(cls, text: str, entity_template: str | None = None) -> TopicPattern:
        levels = tuple(text.strip().split("/"))
        for i, level in enumerate(levels):
            if level.startswith("#") and i != len(levels) - 1:
                raise ValueError(f"'#' may only be the last level of {text!r}")
            rest = level[1:] if level[:1] in ("+", "#") else level
            if "+" in rest or "#" in rest:
                raise ValueError(
                    f"level {level!r} of {text!r}: wildcards must stand alone (+name, #name)"
                )
        names = [lv[1:] for lv in levels if lv[:1] in ("+", "#") and lv[1:]]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate level names in {text!r}")
        if not [n for n in names if n != "metric"] and entity_template is None:
            raise ValueError(f"{text!r} captures no entity level (name one, e.g. +device)")
        if entity_template is not None:
            # tried now with the levels' names: "{device.real}" or "{device!x}" failed at the
            # first message, which the broker then sent again at every restart
            try:
                made = entity_template.format(**{name: "x" for name in names})
            except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"entity template {entity_template!r}: {type(exc).__name__}: {exc}"
                    f" (it may name the levels {', '.join(names) or 'none'}, as {{name}})"
                ) from None
            if not isinstance(made, str) or not made:
                raise ValueError(f"entity template {entity_template!r} makes no entity")
        return cls(levels, entity_template)

    @property
    def subscription(self) -> str:
        return "/".join(lv[0] if lv[:1] in ("+", "#") else lv for lv in self.levels)

    @property
    def has_metric(self) -> bool:
        return any(lv[1:] == "metric" for lv in self.levels if lv[:1] in ("+", "#"))

    def match(self, topic: str) -> dict[str, str] | None:
        """Captured levels, or None when the topic does not fit the pattern."""
        parts = topic.split("/")
        found: dict[str, str] = {}
        for i, level in enumerate(self.levels):
            if level.startswith("#"):
                if i >= len(parts) and i > 0:
                    return None
                if level[1:]:
                    found[level[1:]] = "/".join(parts[i:])
                return found
            if i >= len(parts):
                return None
            if level.startswith("+"):
                if level[1:]:
                    found[level[1:]] = parts[i]
            elif level != parts[i]:
                return None
        return found if len(parts) == len(self.levels) else None

    def entity(self, captured: dict[str, str]) -> str:
        if self.entity_template is not None:
            return self.entity_template.format(**captured)
        return "/".join(v for k, v in captured.items() if k != "metric")


def payload_to_reading(
    topic: str,
    payload: bytes,
    pattern: TopicPattern,
    now: float,
    decoder: ReadingDecoder | None = None,
) -> dict[str, Any] | Rejection:
    """One MQTT message to a reading dict, or the reason it cannot be one."""
    captured = pattern.match(topic)
    if captured is None:
        return Rejection(
            "bad_payload", f"topic {topic!r} does not fit the pattern {'/'.join(pattern.levels)!r}"
        )
    try:
        entity = pattern.entity(captured)
    except (KeyError, IndexError) as exc:
        return Rejection("bad_payload", f"entity template needs level {exc}")
    except (AttributeError, TypeError, ValueError) as exc:  # a level's value the template refuses
        return Rejection("bad_payload", f"entity template: {type(exc).__name__}: {exc}"[:300])
    decoder = decoder or ReadingDecoder()
    if len(payload) > decoder.max_bytes:
        # as the API (413) and the workers' decoder refuse it: a 50 MB payload of one
        # value and padding was parsed whole and produced as a reading
        return Rejection(
            "too_large", f"{len(payload)} bytes exceeds the limit of {decoder.max_bytes}"
        )
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return Rejection("bad_payload", "payload is not UTF-8 text")
    metric = captured.get("metric")
    ts: Any = now
    try:
        body: Any = parse_number(text)
    except ValueError:
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            # as the Kafka decoder says it: NaN and 1e400 inside JSON are not finite
            return json_rejection(exc, text.encode(), "neither a number nor JSON: ")
        if has_duplicate_keys(text.encode(), body):
            # as the Kafka decoder refuses it ({"value": 1, "value": 999} became 999)
            return Rejection("invalid_json", "an object names the same key twice")
    if isinstance(body, dict):
        ts = next((body[k] for k in TS_KEYS if k in body), now)
        metrics = _object_metrics(body, metric)
        if isinstance(metrics, Rejection):
            return metrics
    elif isinstance(body, int | float) and not isinstance(body, bool):
        if metric is None:
            return Rejection(
                "bad_payload", "a bare number needs a +metric level in the topic pattern"
            )
        if not math.isfinite(body):
            return Rejection("non_finite", f"{metric}: {text[:40]!r} is not finite")
        metrics = {metric: body}
    else:
        return Rejection(
            "bad_payload", f"payload must be a number or a JSON object, got {type(body).__name__}"
        )
    doc: dict[str, Any] = {"entity": entity, "ts": ts, "metrics": metrics, "source": "mqtt"}
    checked = decoder.validate(doc, now)
    return checked if isinstance(checked, Rejection) else doc


def _object_metrics(body: dict[str, Any], metric: str | None) -> dict[str, Any] | Rejection:
    """``{"metrics": {...}}``, ``{"value": v}`` under a +metric topic, or flat numeric keys."""
    if isinstance(body.get("metrics"), dict):
        metrics: dict[str, Any] = body["metrics"]
    elif metric is not None and "value" in body:
        metrics = {metric: body["value"]}
    else:
        metrics = {k: v for k, v in body.items() if k not in TS_KEYS and k != "metrics"}
    if not metrics:
        return Rejection("bad_payload", "JSON object carries no metric values")
    for name, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            return Rejection("non_finite", f"{name}: not finite")
    return metrics
