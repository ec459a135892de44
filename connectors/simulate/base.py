"""What every simulator offers, and small helpers they share.

A simulator is a pure, seeded generator: `ticks()` yields, per simulated
instant, the readings delivered then and the ground truth of anomalies that
start then. No clock, no I/O: the Kafka shell (`run.py`) paces and produces,
tests and the demo consume it in memory.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from connectors.simulate.groundtruth import GroundTruth
from stream_app.wire import epoch_seconds_from_number

Reading = dict[str, Any]
Tick = tuple[list[Reading], list[GroundTruth]]

SECONDS_PER_DAY = 86_400.0


class Simulator(Protocol):
    """The interface the producing shell needs."""

    interval: float
    start: float

    def ticks(self) -> Iterator[Tick]:
        """Readings and newly injected ground truth, one simulated instant at a time."""
        ...

    def readings_per_tick(self) -> float:
        """Average readings delivered per tick (to turn --count into a time span)."""
        ...


def weekday(ts: float) -> int:
    """Monday = 0 ... Sunday = 6, in UTC (1970-01-01 was a Thursday)."""
    return (math.floor(ts / SECONDS_PER_DAY) + 3) % 7


def rfc3339(ts: float) -> str:
    """Epoch seconds to an RFC 3339 UTC string with milliseconds."""
    text = datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '2h', '7d' -> seconds.

    >>> parse_duration("2h"), parse_duration("1.5m"), parse_duration("10")
    (7200.0, 90.0, 10.0)
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 7d)")
    return float(match.group(1)) * _UNIT[match.group(2) or "s"]


def parse_instant(text: str) -> float:
    """RFC 3339 (naive = UTC) or an epoch number (seconds, or ms, us, ns by its size, as
    in files: :func:`~stream_app.wire.epoch_seconds_from_number`) -> epoch seconds."""
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise ValueError(f"not a finite instant: {text!r}")
        return epoch_seconds_from_number(number)
    parsed = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def reading_ts(reading: Reading) -> float:
    """A simulated reading's ``ts`` (epoch seconds or RFC 3339) in epoch seconds."""
    ts = reading["ts"]
    return float(ts) if isinstance(ts, int | float) else parse_instant(str(ts))
