"""The shell around a simulator: bound it, pace it, and send it somewhere.

Pacing: ``rate`` caps readings per wall-clock second; ``speedup`` makes
simulated time run that many times faster than the wall clock (market nights
and weekends are skipped rather than slept through); ``realtime`` sends each tick
when the wall clock reaches its timestamp; none of them means as fast as
possible. Readings go to ``settings.topic_readings`` (with ``ingested_at``) or,
in a dry run, to a text stream as NDJSON; ground truth goes to its file and,
unless dry, to ``settings.topic_groundtruth``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TextIO

import orjson

from connectors.ingest.producer import BatchProducer, RateMeter
from connectors.simulate.base import Simulator, Tick, reading_ts
from connectors.simulate.groundtruth import GroundTruth
from stream_app.offline.terminal import STDOUT, writing
from stream_app.settings import Settings


class TruthSink(Protocol):
    """Where ground truth goes: a :class:`GroundTruthWriter` file, or any collector."""

    def write(self, records: Iterable[GroundTruth]) -> None: ...


@dataclass(frozen=True, slots=True)
class Pace:
    """How fast to go; none of them = as fast as possible. ``realtime``: each tick when
    the wall clock reaches its timestamp (ticks already past go at once, to catch up)."""

    rate: float | None = None
    speedup: float | None = None
    max_idle_s: float = 2.0
    realtime: bool = False


@dataclass(frozen=True, slots=True)
class RunStats:
    readings: int
    truth: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.readings / max(self.seconds, 1e-9)


def bounded(sim: Simulator, count: int | None, duration: float | None) -> Iterator[Tick]:
    """Stop after ``count`` readings (the last tick is cut) or ``duration`` simulated seconds.

    Ground truth of a fault that starts after the cut is dropped with it. With
    neither bound the simulation runs until the caller stops iterating.
    """
    sent = 0
    end = sim.start + duration if duration is not None else float("inf")
    for readings, truth in sim.ticks():
        if readings and reading_ts(readings[0]) >= end:
            return
        if count is not None and sent + len(readings) >= count:
            readings = readings[: count - sent]
            last = max((reading_ts(r) for r in readings), default=float("-inf"))
            yield readings, [t for t in truth if t.start <= last]
            return
        sent += len(readings)
        yield readings, truth


class Pacer:
    """Sleeps just enough to honour a `Pace`."""

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self._wall0 = time.monotonic()
        self._sent = 0
        self._ts0: float | None = None
        self._last_ts = 0.0

    async def wait(self, ts: float, readings: int) -> None:
        """Called before sending ``readings`` readings stamped around ``ts``."""
        target = self._wall0
        if self.pace.realtime:
            target = max(target, time.monotonic() + (ts - time.time()))
        if self.pace.speedup:
            if self._ts0 is None:
                self._ts0 = ts
            elif (ts - self._last_ts) / self.pace.speedup > self.pace.max_idle_s:
                self._ts0 += ts - self._last_ts  # closed market: skip the gap
            target = max(target, self._wall0 + (ts - self._ts0) / self.pace.speedup)
            self._last_ts = ts
        if self.pace.rate:
            target = max(target, self._wall0 + self._sent / self.pace.rate)
        self._sent += readings
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def run_simulation(
    sim: Simulator,
    settings: Settings,
    *,
    count: int | None = None,
    duration: float | None = None,
    pace: Pace = Pace(),
    dry_run: TextIO | None = None,
    truth_file: TruthSink | None = None,
    report: Callable[[str], None] | None = None,
    report_every_s: float = 5.0,
    meter: RateMeter | None = None,
) -> RunStats:
    """Run a bounded simulation to Kafka (or ``dry_run``, standard output for the command's
    ``--dry-run``) and return what was sent.

    ``meter`` (its ``count`` grows as readings are sent) lets a caller export it.
    """
    meter = meter if meter is not None else RateMeter("readings", report, report_every_s)
    pacer = Pacer(pace)
    producer: BatchProducer | None = None
    truth_count = 0
    if dry_run is None:
        from stream_app.worker.topics import ensure_topics

        await ensure_topics(settings)
        producer = BatchProducer(settings, client_id="tsguard-simulator")
        await producer.start()
    try:
        for readings, truth in bounded(sim, count, duration):
            if not readings and not truth:
                continue
            if pace.rate or pace.speedup or pace.realtime:
                await pacer.wait(reading_ts(readings[0]) if readings else sim.start, len(readings))
            truth_count += len(truth)
            if truth_file is not None and truth:
                truth_file.write(truth)
            if producer is None:
                assert dry_run is not None
                with writing(STDOUT):
                    dry_run.write("".join(orjson.dumps(r).decode() + "\n" for r in readings))
            else:
                await _produce_tick(producer, settings, readings, truth)
            meter.add(len(readings))
            meter.maybe_report()
        if producer is not None:
            await producer.flush()
        elif dry_run is not None:
            with writing(STDOUT):
                dry_run.flush()
    finally:
        if producer is not None:
            await producer.stop()
    if report is not None:
        report(meter.summary() + f"; {truth_count} ground-truth records")
    return RunStats(meter.count, truth_count, time.monotonic() - meter.started)


async def _produce_tick(
    producer: BatchProducer,
    settings: Settings,
    readings: list[dict[str, object]],
    truth: list[GroundTruth],
) -> None:
    now = round(time.time(), 6)
    topic = settings.topic_readings
    for reading in readings:
        reading["ingested_at"] = now
        await producer.send_raw(topic, str(reading["entity"]).encode(), orjson.dumps(reading))
    for rec in truth:
        await producer.send(settings.topic_groundtruth, rec.entity, rec.to_dict())
