"""Load for ``tsguard bench pipeline``: the readings, producing them, and the bare consumer.

Deterministic readings (a slow cycle plus noise per series, about 0.2 % spikes),
produced either all at once with past event times (the backlog) or at a fixed
pace with event time = wall clock (the latency phase); and the reference the
worker is compared with, a consumer that only decodes.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream_app.settings import Settings


@dataclass(frozen=True, slots=True)
class PipelinePlan:
    """Sizes of one run; the defaults are the ones RESULTS.md reports."""

    readings: int = 200_000
    offered_rate: float = 5_000.0
    latency_seconds: float = 25.0
    entities: int = 1_000
    metrics: tuple[str, ...] = ("cpu", "temperature", "latency_ms")
    seed: int = 7
    catch_up_timeout_s: float = 600.0


class ReadingSource:
    """Deterministic readings: a slow cycle plus noise per series, ~0.2 % spikes."""

    def __init__(self, plan: PipelinePlan) -> None:
        self._plan = plan
        self._rng = random.Random(plan.seed)
        self._phase = [self._rng.uniform(0.0, 2 * math.pi) for _ in range(plan.entities)]
        self.names = [f"bench/site-{e // 50}/dev-{e}" for e in range(plan.entities)]
        self._keys = [n.encode() for n in self.names]

    def reading(self, i: int, ts: float, ingested_at: float | None) -> tuple[bytes, bytes]:
        """Key and value of reading ``i`` (entity ``i % entities``, step ``i // entities``)."""
        entity, step = i % self._plan.entities, i // self._plan.entities
        rng = self._rng
        values: dict[str, float] = {}
        for j, metric in enumerate(self._plan.metrics):
            value = 50.0 + 10 * j + 5.0 * math.sin(step / 40 + self._phase[entity])
            value += rng.gauss(0.0, 1.0)
            if rng.random() < 0.002:
                value += rng.choice((-15.0, 15.0))
            values[metric] = round(value, 3)
        doc: dict[str, Any] = {
            "entity": self.names[entity],
            "ts": ts,
            "metrics": values,
            "source": "bench",
        }
        if ingested_at is not None:
            doc["ingested_at"] = ingested_at
        return self._keys[entity], orjson.dumps(doc)


async def produce_backlog(
    settings: Settings, source: ReadingSource, n: int, t0: float, rate: float
) -> float:
    """Produce readings 0..n-1 with past event times; return readings/s of producing."""
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(), linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        for i in range(n):
            key, value = source.reading(i, t0 + i / rate, None)
            futures.append(await producer.send(settings.topic_readings, value, key=key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n / (time.perf_counter() - started)


async def produce_paced(
    settings: Settings, source: ReadingSource, first: int, rate: float, seconds: float
) -> tuple[int, float, float]:
    """Produce at ``rate`` for ``seconds`` with ts = ingested_at = now; (sent, start, end)."""
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), linger_ms=5)
    await producer.start()
    try:
        futures: list[asyncio.Future[Any]] = []
        started = time.time()
        while (now := time.time()) < started + seconds:
            while len(futures) < int((now - started) * rate):
                ts = time.time()
                key, value = source.reading(first + len(futures), ts, ts)
                futures.append(await producer.send(settings.topic_readings, value, key=key))
            await asyncio.sleep(0.002)
        ended = time.time()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(futures), started, ended


def readings_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A group-less consumer of the readings topic from its beginning (the references)."""
    return AIOKafkaConsumer(
        settings.topic_readings,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **settings.kafka_client_kwargs(),
    )


async def bare_consume(settings: Settings, n: int, timeout_s: float) -> float:
    """Readings/s of a consumer that only decodes, in batches no larger than the worker's.

    As for the worker, the clock starts once the first batch is in hand.
    """
    consumer = readings_consumer(settings)
    await consumer.start()
    try:
        count, first_count, first_at = 0, 0, 0.0
        started = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        while count < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bare consumer read {count} of {n} readings")
            batch = await consumer.getmany(timeout_ms=1000, max_records=settings.worker_batch_size)
            for records in batch.values():
                for record in records:
                    orjson.loads(record.value or b"null")
                count += len(records)
            if not first_count and count:
                first_count, first_at = count, time.perf_counter()
        if count == first_count:  # all of it in one batch: time from the start instead
            return count / (time.perf_counter() - started)
        return (count - first_count) / (time.perf_counter() - first_at)
    finally:
        await consumer.stop()
