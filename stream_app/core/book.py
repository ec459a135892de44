"""``SeriesBook``: the processors of many series, with idle eviction.

>>> book = SeriesBook(EngineConfig.default())
>>> point, events = book.process("pump-1", "temp", 0.0, 20.0)
>>> len(book), book.state_bytes() > 0
(1, True)
>>> evicted = book.evict_idle(watermark_ts=7200.0, idle_seconds=3600.0)
>>> sorted(evicted), len(book)
([('pump-1', 'temp')], 0)
"""

from __future__ import annotations

from collections.abc import Iterator

from .config import EngineConfig
from .detectors import DetectorRegistry
from .processor import SeriesProcessor
from .records import EpisodeEvent, ScoredPoint

SeriesKey = tuple[str, str]


class SeriesBook:
    """Maps ``(entity, metric)`` to its :class:`SeriesProcessor`, created on demand."""

    __slots__ = ("_config", "_procs", "_registry", "_seen")

    def __init__(self, config: EngineConfig, registry: DetectorRegistry | None = None) -> None:
        self._config = config
        self._registry = registry
        self._procs: dict[SeriesKey, SeriesProcessor] = {}
        self._seen: dict[SeriesKey, float] = {}

    def __len__(self) -> int:
        return len(self._procs)

    def __iter__(self) -> Iterator[SeriesKey]:
        return iter(self._procs)

    def get(self, entity: str, metric: str) -> SeriesProcessor:
        """The processor of a series, created (cold) when unknown."""
        key = (entity, metric)
        proc = self._procs.get(key)
        if proc is None:
            proc = SeriesProcessor.create(entity, metric, self._config, self._registry)
            self._procs[key] = proc
        return proc

    def put(self, proc: SeriesProcessor, seen_ts: float) -> None:
        """Adopt a processor restored from bytes."""
        key = (proc.entity, proc.metric)
        self._procs[key] = proc
        self._seen[key] = seen_ts

    def process(
        self, entity: str, metric: str, ts: float, value: float | None
    ) -> tuple[ScoredPoint, list[EpisodeEvent]]:
        proc = self.get(entity, metric)
        key = (entity, metric)
        if ts > self._seen.get(key, -float("inf")):
            self._seen[key] = ts
        return proc.process(ts, value)

    def advance(self, watermark_ts: float) -> list[EpisodeEvent]:
        """Silence checks for every series."""
        events: list[EpisodeEvent] = []
        for proc in self._procs.values():
            events.extend(proc.advance(watermark_ts))
        return events

    def evict_idle(self, watermark_ts: float, idle_seconds: float) -> dict[SeriesKey, bytes]:
        """Drop series without input for ``idle_seconds``; returns their state bytes."""
        out: dict[SeriesKey, bytes] = {}
        for key, seen in list(self._seen.items()):
            if watermark_ts - seen > idle_seconds:
                out[key] = self._procs.pop(key).to_bytes()
                del self._seen[key]
        return out

    def state_bytes(self) -> int:
        """Total serialised state of all series held (memory report)."""
        return sum(proc.state_size() for proc in self._procs.values())
