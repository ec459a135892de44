"""One batched, idempotent Kafka producer for every connector.

``AIOKafkaProducer.send`` creates a future and a task per message, which caps
a Python producer far below what the broker takes. Here records go straight
into per-partition ``BatchBuilder``s (key = entity, Kafka's murmur2
partitioner, so the layout is the same as any other client's) and whole
batches are handed to ``send_batch``; the accumulator still assigns the
idempotent sequence numbers, and waits while a partition already has a batch
queued, which is the backpressure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from stream_app.settings import Settings

Report = Callable[[str], None]


class RateMeter:
    """Counts records and reports the overall and recent rate every ``every_s`` seconds."""

    def __init__(self, label: str, report: Report | None, every_s: float = 5.0) -> None:
        self.label, self._report, self.every_s = label, report, every_s
        self.count = 0
        self.started = self._last_at = time.monotonic()
        self._last_count = 0

    def add(self, n: int = 1) -> None:
        self.count += n

    def maybe_report(self) -> None:
        """Cheap to call often; reports only when the period has passed."""
        now = time.monotonic()
        if self._report is not None and now - self._last_at >= self.every_s:
            recent = (self.count - self._last_count) / (now - self._last_at)
            self._report(
                f"{self.label}: {self.count} sent, {recent:,.0f}/s recently, {self.rate():,.0f}/s overall"
            )
            self._last_at, self._last_count = now, self.count

    def rate(self) -> float:
        """Records per second since the start."""
        return self.count / max(time.monotonic() - self.started, 1e-9)

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        return f"{self.label}: {self.count} sent in {elapsed:.2f} s = {self.rate():,.0f}/s"


class BatchProducer:
    """JSON records keyed by entity, batched per partition; ``flush`` waits for the acks."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str = "tsguard-connector",
        linger_s: float = 0.05,
        batch_bytes: int = 512 * 1024,
    ) -> None:
        self.settings = settings
        self.linger_s = linger_s
        self._producer = AIOKafkaProducer(
            **settings.kafka_client_kwargs(),
            client_id=client_id,
            enable_idempotence=True,
            linger_ms=int(linger_s * 1000),
            max_batch_size=batch_bytes,
            request_timeout_ms=30_000,
        )
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._slots: dict[tuple[str, bytes], tuple[str, int]] = {}
        self._open: dict[tuple[str, int], Any] = {}
        self._pending: list[asyncio.Future[Any]] = []
        self._last_submit = time.monotonic()
        self._ticker: asyncio.Task[None] | None = None
        self._error: Exception | None = None
        self._closing = False

    async def start(self) -> None:
        await self._producer.start()
        self._ticker = asyncio.create_task(self._linger_loop(), name="batch-producer-linger")

    async def stop(self) -> None:
        """Flush what is buffered, then close (also when the stop itself is cancelled or
        the flush fails: the client's connections and its sender task end either way)."""
        try:
            if self._ticker is not None:
                # The loop is let finish a submission it began: cancelled while the
                # accumulator made it wait for a partition's queued batch, it lost the batch
                # it had taken out of ``_open`` (replay-to-kafka: 6,000 readings "sent",
                # 5,830 in the topic).
                self._closing = True
                try:
                    await self._ticker
                finally:
                    self._ticker = None
            await self.flush()
        finally:
            await self._producer.stop()

    async def _linger_loop(self) -> None:
        """Submit lingering batches when nothing new arrives (a quiet MQTT feed, a paced replay)."""
        while not self._closing:
            await asyncio.sleep(self.linger_s)
            if self._closing:
                return  # ``stop`` flushes what is left
            if self._open and time.monotonic() - self._last_submit >= self.linger_s:
                try:
                    await self.submit_all()
                except Exception as exc:  # surfaced by the next send or flush
                    self._error = exc

    async def __aenter__(self) -> BatchProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def send(self, topic: str, key: str, value: dict[str, Any]) -> None:
        """Serialise and buffer one record; submits full or lingering batches."""
        await self.send_raw(topic, key.encode(), orjson.dumps(value))

    async def send_raw(self, topic: str, key: bytes, value: bytes) -> None:
        if self._error is not None:
            raise self._error
        slot = self._slots.get((topic, key))
        if slot is None:
            slot = await self._slot(topic, key)
        batch = self._open.get(slot)
        if batch is None:
            batch = self._open[slot] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            await self._submit(slot)
            batch = self._open[slot] = self._producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"record of {len(value)} bytes does not fit in a batch")
        if time.monotonic() - self._last_submit >= self.linger_s:
            await self.submit_all()

    async def _slot(self, topic: str, key: bytes) -> tuple[str, int]:
        """murmur2 is pure Python here: compute each key's partition once."""
        partitions = self._partitions.get(topic)
        if partitions is None:
            found = await self._producer.partitions_for(topic)
            partitions = self._partitions[topic] = sorted(found)
        slot = (topic, self._partitioner(key, partitions, partitions))
        if len(self._slots) < 1_000_000:
            self._slots[(topic, key)] = slot
        return slot

    async def submit_all(self) -> None:
        """Hand every non-empty batch to the accumulator (does not wait for acks)."""
        for slot in list(self._open):
            await self._submit(slot)
        self._last_submit = time.monotonic()
        self._pending = [f for f in self._pending if not f.done() or f.exception() is not None]
        for fut in self._pending:
            if fut.done():
                fut.result()  # raise the first delivery error

    async def flush(self) -> None:
        """Submit everything and wait until the broker acknowledged it."""
        if self._error is not None:
            raise self._error  # the linger loop's: after the last send, no send_raw raised it
        await self.submit_all()
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)

    async def _submit(self, slot: tuple[str, int]) -> None:
        batch = self._open.pop(slot, None)
        if batch is None or batch.record_count() == 0:
            return
        topic, partition = slot
        # awaited first: ``self._pending.append`` looked up before the wait appended to a
        # list that ``submit_all`` may have replaced meanwhile, and no flush waited for it
        delivery = await self._producer.send_batch(batch, topic, partition=partition)
        self._pending.append(delivery)
