"""Tumbling windows for high-rate series: score one aggregate per window.

Windows are aligned on multiples of ``width_s`` in event time. A window is
emitted when the first point of a later window arrives (or on ``flush``).

>>> tw = TumblingWindow(60.0)
>>> [tw.add(t, v) for t, v in [(0.0, 1.0), (30.0, 3.0)]]
[None, None]
>>> agg = tw.add(61.0, 5.0)
>>> (agg.start, agg.end, agg.mean, agg.min, agg.max, agg.count)
(0.0, 60.0, 2.0, 1.0, 3.0, 2)
>>> tw.flush().count
1
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowAggregate:
    """Mean, min, max and count of one window ``[start, end)``."""

    start: float
    end: float
    mean: float
    min: float
    max: float
    count: int

    def get(self, stat: str) -> float:
        """One statistic by name: ``mean``, ``min``, ``max`` or ``count``."""
        if stat not in ("mean", "min", "max", "count"):
            raise ValueError(f"unknown window statistic {stat!r}")
        return float(getattr(self, stat))


class TumblingWindow:
    """Accumulates finite points (clean them first) into fixed-width windows."""

    __slots__ = ("count", "hi", "lo", "start", "total", "width")

    def __init__(self, width_s: float) -> None:
        if not width_s > 0:
            raise ValueError("width_s must be > 0")
        self.width = width_s
        self.start = math.nan
        self.count = 0
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf

    def add(self, ts: float, value: float) -> WindowAggregate | None:
        """Add a point; returns the previous window once a point falls past it.

        Points earlier than the open window (late) are counted into it.
        """
        start = math.floor(ts / self.width) * self.width
        done = None
        if self.count and start > self.start:
            done = self.flush()
        if not self.count:
            self.start = start
        self.count += 1
        self.total += value
        self.lo = min(self.lo, value)
        self.hi = max(self.hi, value)
        return done

    def flush(self) -> WindowAggregate | None:
        """Emit the open window (if any) and start empty."""
        if not self.count:
            return None
        agg = WindowAggregate(self.start, self.start + self.width, self.total / self.count,
                              self.lo, self.hi, self.count)  # fmt: skip
        self.count = 0
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf
        return agg
