"""Replay CSV/Parquet history into ``tsguard.readings``, keeping event time.

Replaying history through Kafka is how a new deployment warms its models
before going live, so the readings keep their original timestamps; only the
pace changes (``speed``: 1.0 = as it happened, 60 = a minute per second,
None = as fast as the broker takes it). Malformed rows are reported with file
and line, counted and dead-lettered, and the replay goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from connectors.ingest.files import ColumnMap, Malformed, merged
from connectors.ingest.producer import BatchProducer, RateMeter
from stream_app.settings import Settings
from stream_app.wire import Rejection, dead_letter


@dataclass(slots=True)
class ReplayCounts:
    """Counts updated while the replay runs (exported on ``/metrics``)."""

    readings: int = 0
    malformed: int = 0


@dataclass(frozen=True, slots=True)
class ReplayStats:
    readings: int
    malformed: int
    seconds: float
    # of the malformed rows, those that could not be read at all (Malformed.unreadable)
    unreadable: int = 0

    @property
    def rate(self) -> float:
        return self.readings / max(self.seconds, 1e-9)


def parse_speed(text: str) -> float | None:
    """'real' -> 1.0, 'max' -> None, '60' or '60x' -> 60.0.

    >>> parse_speed("real"), parse_speed("max"), parse_speed("60x")
    (1.0, None, 60.0)
    """
    word = text.strip().lower()
    if word == "max":
        return None
    if word == "real":
        return 1.0
    factor = float(word.rstrip("x"))
    if factor <= 0:
        raise ValueError("speed factor must be positive")
    return factor


async def replay_to_kafka(
    paths: Sequence[Path],
    settings: Settings,
    cmap: ColumnMap = ColumnMap(),
    *,
    speed: float | None = None,
    report: Callable[[str], None] | None = None,
    show_errors: int = 20,
    report_every_s: float = 5.0,
    live: ReplayCounts | None = None,
) -> ReplayStats:
    """Produce every good row as a reading and dead-letter every bad one."""
    live = live if live is not None else ReplayCounts()
    from stream_app.worker.topics import ensure_topics

    await ensure_topics(settings)
    meter = RateMeter("readings", report, report_every_s)
    malformed = unreadable = 0
    wall0 = time.monotonic()
    ts0: float | None = None
    async with BatchProducer(settings, client_id="tsguard-replay") as producer:
        for ts, item in merged(paths, cmap):
            if isinstance(item, Malformed):
                malformed += 1
                unreadable += item.unreadable
                live.malformed = malformed
                if report is not None and malformed <= show_errors:
                    report(item.message())
                await producer.send(
                    settings.topic_deadletter, item.location, _dead_letter(item, settings)
                )
                continue
            if speed is not None:
                ts0 = ts if ts0 is None else ts0
                delay = wall0 + (ts - ts0) / speed - time.monotonic()
                if delay > 0:
                    await producer.submit_all()  # do not hold readings back while we wait
                    await asyncio.sleep(delay)
            item["ingested_at"] = round(time.time(), 6)
            await producer.send_raw(
                settings.topic_readings, item["entity"].encode(), orjson.dumps(item)
            )
            meter.add()
            live.readings = meter.count
            meter.maybe_report()
    if report is not None:
        if malformed > show_errors:
            report(f"... and {malformed - show_errors} more malformed rows")
        report(
            meter.summary()
            + f"; {malformed} malformed rows dead-lettered to {settings.topic_deadletter}"
        )
    return ReplayStats(meter.count, malformed, time.monotonic() - meter.started, unreadable)


def _dead_letter(item: Malformed, settings: Settings) -> dict[str, object]:
    return dead_letter(
        item.raw,
        Rejection(item.reason, item.detail),
        at=time.time(),
        max_payload=settings.deadletter_max_payload_bytes,
        source="file",
        location=item.location,
    )
