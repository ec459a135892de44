"""The anomaly event (topic ``tsguard.anomalies``): a core episode event on the wire.

``schemas/anomaly-event.schema.json`` is the contract; this is its one encoder.

>>> iso_millis(0.5)
'1970-01-01T00:00:00.500Z'
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream_app.core import EpisodeEvent

EVENT_VERSION = 1


def iso_millis(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC with milliseconds."""
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def event_to_wire(event: EpisodeEvent, emitted_at: float) -> dict[str, Any]:
    """The anomaly-event schema's JSON form of a core episode event."""
    out = event.to_dict()
    out["version"] = EVENT_VERSION
    out["started_at"] = iso_millis(event.started_at)
    out["ended_at"] = iso_millis(event.ended_at) if event.ended_at is not None else None
    out["ts"] = iso_millis(event.ts)
    out["emitted_at"] = iso_millis(emitted_at)
    return out


# the explanation of an episode resolved because its model was lost
LOST_MODEL = (
    "resolved without its model: the state that followed this episode was lost (unreadable,"
    " too large to save, older than the episode, or gone) when the worker loaded it, so no"
    " end was seen; the series is watched afresh from here"
)


def resolved_without_model(row: Mapping[str, Any], emitted_at: float) -> dict[str, Any]:
    """The ``resolved`` event of an episode the sink closed because no model tracks it
    any more (``row``: its stored columns, ``ended_at`` the moment it was closed).

    >>> row = {"id": "0c9a6793a0688abd", "entity": "e", "metric": "t", "kind": "value",
    ...        "started_at": datetime(2026, 1, 1, tzinfo=UTC), "ended_at": datetime(2026, 1, 2,
    ...        tzinfo=UTC), "value": 9.0, "expected": 1.0, "lower": 0.0, "upper": 2.0,
    ...        "score": 0.9999, "peak_score": 1.0, "severity": "high", "direction": "up",
    ...        "detector": "robust_seasonal", "explanation": "x"}
    >>> event = resolved_without_model(row, 1767312000.0)
    >>> event["event"], event["ts"], event["ended_at"], event["explanation"] == LOST_MODEL
    ('resolved', '2026-01-02T00:00:00.000Z', '2026-01-02T00:00:00.000Z', True)
    """
    from stream_app.core.records import EpisodeEvent  # (the worker has the core loaded)

    ended = row["ended_at"].timestamp()
    event = EpisodeEvent(
        event="resolved",
        episode_id=row["id"],
        entity=row["entity"],
        metric=row["metric"],
        kind=row["kind"],
        started_at=row["started_at"].timestamp(),
        ended_at=ended,
        ts=ended,
        value=row["value"],
        expected=row["expected"],
        lower=row["lower"],
        upper=row["upper"],
        score=row["score"],
        peak_score=row["peak_score"],
        severity=row["severity"],
        direction=row["direction"],
        detector=row["detector"],
        explanation=LOST_MODEL,
    )
    return event_to_wire(event, emitted_at)
