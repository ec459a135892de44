"""A simulator moved in time: same values in the same order, every timestamp ``by`` later.

The demo simulates a fixed reference window and moves it to end now, so what it
feeds does not depend on the hour or weekday it runs at. Readings and ground
truth move alike, so the ground truth still covers the readings it labels.

>>> from connectors.simulate import IoTFleet
>>> def fleet() -> IoTFleet:
...     return IoTFleet(devices=1, sensors=["temperature"], seed=1, start=0.0)
>>> moved = Shifted(fleet(), 3600.0)
>>> (a, _), (b, _) = next(fleet().ticks()), next(moved.ticks())
>>> moved.start, b[0]["ts"] - a[0]["ts"], b[0]["metrics"] == a[0]["metrics"]
(3600.0, 3600.0, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from connectors.simulate.base import (
    Reading,
    Simulator,
    Tick,
    parse_instant,
    reading_ts,
    rfc3339,
)
from connectors.simulate.groundtruth import GroundTruth


class Shifted:
    """``sim`` with its start, readings' ``ts`` and ground truth's start/end moved ``by`` s."""

    def __init__(self, sim: Simulator, by: float) -> None:
        self.sim, self.by = sim, by
        self.interval = sim.interval
        self.start = sim.start + by

    def readings_per_tick(self) -> float:
        """As the wrapped simulator's."""
        return self.sim.readings_per_tick()

    def ticks(self) -> Iterator[Tick]:
        """The wrapped simulator's ticks, moved."""
        for readings, truth in self.sim.ticks():
            yield [self._reading(r) for r in readings], [self._truth(t) for t in truth]

    def _reading(self, reading: Reading) -> Reading:
        ts = reading["ts"]
        if isinstance(ts, int | float):
            moved: float | str = round(ts + self.by, 3)
        else:
            moved = rfc3339(parse_instant(str(ts)) + self.by)
        return {**reading, "ts": moved}

    def _truth(self, truth: GroundTruth) -> GroundTruth:
        return dataclasses.replace(
            truth, start=round(truth.start + self.by, 3), end=round(truth.end + self.by, 3)
        )


class Continued:
    """``sim`` from its first tick whose readings start at or after ``at``: the same
    simulation going on where a run of it bounded at ``at`` stopped (``bounded`` stops at
    that very tick), its earlier ticks computed and dropped.

    >>> import itertools
    >>> from connectors.simulate import IoTFleet
    >>> def fleet() -> IoTFleet:
    ...     return IoTFleet(devices=1, sensors=["temperature"], seed=1, start=0.0, interval=10.0)
    >>> whole = [r for r, _ in itertools.islice(fleet().ticks(), 5)]
    >>> later = Continued(fleet(), 30.0)
    >>> first, _ = next(later.ticks())
    >>> later.start, first == whole[3]
    (30.0, True)
    """

    def __init__(self, sim: Simulator, at: float) -> None:
        self.sim, self.at = sim, at
        self.interval = sim.interval
        self.start = at

    def readings_per_tick(self) -> float:
        """As the wrapped simulator's."""
        return self.sim.readings_per_tick()

    def ticks(self) -> Iterator[Tick]:
        """The wrapped simulator's ticks from the first one stamped at or after ``at``."""
        ticks = self.sim.ticks()
        for readings, truth in ticks:
            if readings and reading_ts(readings[0]) >= self.at:
                yield readings, truth
                break
        yield from ticks
