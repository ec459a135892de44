"""The anomaly event (topic ``tsguard.anomalies``): a core episode event on the wire.

``schemas/anomaly-event.schema.json`` is the contract; this is its one encoder.

>>> iso_millis(0.5)
'1970-01-01T00:00:00.500Z'
"""

from __future__ import annotations

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
