"""BatchProducer hands every record it was given to Kafka's accumulator, also on stop.

The linger loop takes a partition's batch out of its buffer, then waits while the
accumulator still holds that partition's previous batch. ``stop()`` cancelled the loop
there, and the batch it held was gone: ``tsguard replay-to-kafka`` reported 6,000
readings sent and the topic held 5,830 (review rev65d: 1 replay in 8 on the local stack).
A fake accumulator makes the wait as long as the test wants.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from connectors.ingest import producer as producer_module
from connectors.ingest.producer import BatchProducer
from stream_app.settings import Settings


class _Builder:
    def __init__(self) -> None:
        self.records: list[bytes] = []

    def append(self, *, key: bytes, value: bytes, timestamp: Any) -> object | None:
        self.records.append(value)
        return object()

    def record_count(self) -> int:
        return len(self.records)


class _Accumulator:
    """``send_batch`` waits until ``drained`` is set, as aiokafka's does while the
    partition's previous batch is queued; what it accepted is in ``accepted``."""

    def __init__(self) -> None:
        self.drained = asyncio.Event()
        self.accepted: list[bytes] = []
        self.waiting = 0

    def create_batch(self) -> _Builder:
        return _Builder()

    async def send_batch(self, batch: _Builder, topic: str, *, partition: int) -> Any:
        self.waiting += 1
        await self.drained.wait()
        self.accepted.extend(batch.records)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    async def stop(self) -> None:
        return None


def _producer(monkeypatch: pytest.MonkeyPatch) -> tuple[BatchProducer, _Accumulator]:
    fake = _Accumulator()
    monkeypatch.setattr(producer_module, "AIOKafkaProducer", lambda **kwargs: fake)
    return BatchProducer(Settings(), linger_s=0.01), fake


async def test_stop_keeps_the_batch_the_linger_loop_is_submitting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer, fake = _producer(monkeypatch)
    producer._ticker = asyncio.create_task(producer._linger_loop())
    for i in range(3):
        await producer.send_raw("t", b"k", b"%d" % i)
    for _ in range(1000):  # the linger loop takes the batch and waits for the partition
        if fake.waiting:
            break
        await asyncio.sleep(0.01)
    assert fake.waiting == 1 and not producer._open
    asyncio.get_running_loop().call_later(0.05, fake.drained.set)
    await producer.stop()
    assert fake.accepted == [b"0", b"1", b"2"]


async def test_a_delivery_error_of_the_linger_loop_fails_the_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer, fake = _producer(monkeypatch)

    async def refused(batch: _Builder, topic: str, *, partition: int) -> Any:
        raise RuntimeError("refused")

    fake.send_batch = refused  # type: ignore[method-assign]
    producer._ticker = asyncio.create_task(producer._linger_loop())
    await producer.send_raw("t", b"k", b"0")  # the last record: no send_raw sees the error
    for _ in range(1000):  # up to 10 s: a loaded machine can starve the loop a while
        if producer._error is not None:
            break
        await asyncio.sleep(0.01)
    try:
        await producer.stop()
    except RuntimeError as exc:
        assert str(exc) == "refused"
    else:
        raise AssertionError("a batch the broker never took ended as sent")


async def test_a_delivery_that_waited_for_the_accumulator_is_waited_for_by_the_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ``self._pending.append(await send_batch(...))`` took the list before the wait; a
    # submit_all meanwhile replaced it, and the delivery went to a list no flush read
    producer, fake = _producer(monkeypatch)
    ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def queued(batch: _Builder, topic: str, *, partition: int) -> Any:
        fake.waiting += 1
        await fake.drained.wait()
        fake.accepted.extend(batch.records)
        return ack  # the broker's acknowledgement, still to come

    fake.send_batch = queued  # type: ignore[method-assign]
    await producer.send_raw("t", b"k", b"0")
    waiting = asyncio.create_task(producer.submit_all())
    for _ in range(1000):  # up to 10 s: a loaded machine can starve the loop a while
        if fake.waiting:
            break
        await asyncio.sleep(0.01)
    assert fake.waiting == 1
    await producer.submit_all()  # replaces ``_pending`` while the first waits
    fake.drained.set()
    await waiting
    assert ack in producer._pending  # where the next flush waits for it
    asyncio.get_running_loop().call_later(0.05, ack.set_result, None)
    await producer.flush()
    assert ack.done() and producer._pending == []


async def test_a_stop_cancelled_while_the_linger_loop_waits_still_closes_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cancelled while it waited for the linger loop, ``stop()`` never reached the client's
    own ``stop``: its connections and sender task were left open."""
    producer, fake = _producer(monkeypatch)
    stopped: list[bool] = []

    async def client_stop() -> None:
        stopped.append(True)

    monkeypatch.setattr(fake, "stop", client_stop)
    producer._ticker = asyncio.create_task(producer._linger_loop())
    await producer.send_raw("t", b"k", b"1")
    for _ in range(1000):  # up to 10 s: a loaded machine can starve the loop a while
        if fake.waiting:
            break
        await asyncio.sleep(0.01)
    assert fake.waiting == 1
    stopping = asyncio.create_task(producer.stop())
    await asyncio.sleep(0.02)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert stopped == [True]
