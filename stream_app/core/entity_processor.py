"""``EntityProcessor``: the per-reading step of one entity, shared by every caller.

An entity's series (one :class:`SeriesProcessor` per metric), its joint score
(when a rule enables an :class:`EntityScorer`), the explanation of its
episodes and its silence judged against a watermark the caller gives. The
streaming worker, ``tsguard replay`` and ``tsguard evaluate`` all call it, so
what is evaluated offline is what runs online.

>>> from stream_app.core import EngineConfig
>>> proc = EntityProcessor.create("pump-1", EngineConfig.default())
>>> step = proc.process(0.0, {"temperature": 20.0, "pressure": 5.0})
>>> sorted(step.points), step.events
(['pressure', 'temperature'], [])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

from .config import EngineConfig
from .entity import EntityScore, EntityScorer, explain_entity
from .processor import SeriesProcessor
from .records import EpisodeEvent, ScoredPoint

# A point the cleaner turns away as a duplicate opens, updates or resolves
# nothing: at-least-once delivery replays readings, and a replay is not news.
_QUIET = frozenset({"duplicate"})
_MAX_EXPLANATION = 1000
# An entity keeps at most this many series. A reading may carry 64 metrics (the
# reading schema), but readings that keep naming new ones (a producer putting a
# request id or a timestamp in a metric name, a hostile one) would grow the
# entity's memory and its saved state without bound, until the state no longer fits
# in a Kafka message and no checkpoint can save it. A metric beyond the limit is
# rejected ("too_many_series") and its point dead-lettered; the entity's other
# series go on.
MAX_SERIES = 256
TOO_MANY_SERIES = "too_many_series"


class EntityStep(NamedTuple):
    """What one reading of an entity produced (a named tuple: made once per reading,
    it costs a fifth of a frozen dataclass)."""

    points: dict[str, ScoredPoint]
    events: list[EpisodeEvent]
    joint: EntityScore | None


class EntityProcessor:
    """One entity: its series, joint score, explanations and silence."""

    def __init__(
        self,
        entity: str,
        config: EngineConfig,
        series: dict[str, SeriesProcessor] | None = None,
        joint: EntityScorer | None = None,
    ) -> None:
        self.entity = entity
        self.config = config
        self.series: dict[str, SeriesProcessor] = series if series is not None else {}
        self.joint = joint

    @classmethod
    def create(cls, entity: str, config: EngineConfig) -> EntityProcessor:
        """A fresh entity, with the joint scorer its configuration enables (if any)."""
        return cls(entity, config, joint=EntityScorer.for_entity(entity, config))

    def processor(self, metric: str) -> SeriesProcessor:
        """The series of ``metric`` (created on first use)."""
        proc = self.series.get(metric)
        if proc is None:
            proc = SeriesProcessor.create(entity=self.entity, metric=metric, config=self.config)
            self.series[metric] = proc
        return proc

    def process(self, ts: float, metrics: Mapping[str, float | None]) -> EntityStep:
        """Clean, score and decide every metric of one reading, then the joint score.

        A value episode's explanation names the entity's most unusual metric
        when the reading has several.
        """
        points: dict[str, ScoredPoint] = {}
        emitted: list[EpisodeEvent] = []
        series = self.series
        for metric, value in metrics.items():
            proc = series.get(metric)
            if proc is None:
                if len(series) >= MAX_SERIES:
                    points[metric] = self._refused(metric, ts, value)
                    continue
                proc = self.processor(metric)
            point, events = proc.process(ts, value)
            points[metric] = point
            if events and point.status not in _QUIET:
                emitted.extend(events)
        joint = self.joint
        score = joint.update(ts, points) if joint is not None else None
        if emitted and len(points) > 1:
            note = explain_entity(points, score)
            if note:
                emitted = [_explained(e, note) if e.kind == "value" else e for e in emitted]
        return _new_step(EntityStep, (points, emitted, score))

    def _refused(self, metric: str, ts: float, value: float | None) -> ScoredPoint:
        """The point of a metric the entity has no room for (see ``MAX_SERIES``)."""
        return ScoredPoint(self.entity, metric, ts, value, TOO_MANY_SERIES, False, None, None,
                           None, None, False, "")  # fmt: skip

    def open_episode_ids(self) -> tuple[str, ...]:
        """The ids of the episodes its series have open (value, silence and stuck).

        >>> from stream_app.core import EngineConfig
        >>> EntityProcessor.create("e", EngineConfig.default()).open_episode_ids()
        ()
        """
        return tuple(
            episode
            for proc in self.series.values()
            for episode in (proc.policy.episode, proc.silence.episode, proc.stuck.episode)
            if episode
        )

    def retire(self, ts: float, why: str) -> list[EpisodeEvent]:
        """Every episode its series have open, resolved at ``ts`` for ``why`` (it is
        being forgotten)."""
        return [event for proc in self.series.values() for event in proc.retire(ts, why)]

    def latest(self) -> float:
        """Event time of the newest point of any of its series (``-inf`` before any)."""
        return max((proc.last_ts for proc in self.series.values()), default=float("-inf"))

    def slowest_step(self) -> float:
        """The longest usual interval of its series (0 before any is known)."""
        return max(
            (s for s in (p.cleaner.step for p in self.series.values()) if s == s), default=0.0
        )

    def watched(self) -> bool:
        """Whether a series of it still has its silence to be judged (see ``advance``)."""
        return any(proc.watched() for proc in self.series.values())

    def advance(
        self, watermark_ts: float, *, resumed_at: float = float("-inf")
    ) -> list[EpisodeEvent]:
        """Silence of every series judged against ``watermark_ts``.

        ``resumed_at``: when the whole source was quiet until then (an outage,
        a market's night), a series' silence counts from that moment, not from
        its last point; else every series not heard from since would look
        silent at once.
        """
        out: list[EpisodeEvent] = []
        for proc in self.series.values():
            behind = resumed_at - proc.last_ts
            out.extend(proc.advance(watermark_ts - behind if behind > 0 else watermark_ts))
        return out


# tuple.__new__ directly: the named tuple's own __new__ is a Python-level wrapper
# (about 0.1 us per reading)
_new_step = tuple.__new__


def _explained(event: EpisodeEvent, note: str) -> EpisodeEvent:
    text = f"{event.explanation}; {note}"[:_MAX_EXPLANATION]
    return dataclasses.replace(event, explanation=text)
