"""``rewind_unmoved`` on a real aiokafka consumer and broker.

After a rebalance the fetch in flight can return a changelog's records after the table
recovery has seeked there to start reading; the worker drops every record fetched while
the flow is stopped, and the changelog has no committed offset to seek back to, so the
recovery waited for those records until the watchdog exited the worker (3 of 26
rebalance drills). ``rewind_unmoved`` puts such a partition back to the first record
dropped, unless something moved it since: these tests read aiokafka's real position
state, which it relies on.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream_app.settings import Settings
from stream_app.worker.faust_compat.consumer import rewind_unmoved

if TYPE_CHECKING:
    from conftest import FreshTopic

pytestmark = pytest.mark.integration


Reader = tuple[TopicPartition, AIOKafkaConsumer]


@pytest.fixture
async def reader(settings: Settings, fresh_topic: FreshTopic) -> AsyncIterator[Reader]:
    """Partition 0 of a fresh topic holding 40 records (offsets 0..39), assigned by hand
    to a consumer of a group that never committed."""
    topic = await fresh_topic("rewind")
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all")
    await producer.start()
    try:
        for i in range(40):
            await producer.send(topic, str(i).encode(), key=b"k")
        await producer.flush()
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(),
        group_id=f"it-rewind-{uuid.uuid4().hex[:12]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        yield tp, consumer
    finally:
        await consumer.stop()


async def _offsets(
    consumer: AIOKafkaConsumer, tp: TopicPartition, count: int, polls: int = 40
) -> list[int]:
    """The offsets of the next ``count`` records of ``tp`` (fewer if none come in
    ``polls`` half seconds)."""
    offsets: list[int] = []
    for _ in range(polls):
        if len(offsets) >= count:
            break
        fetched = await consumer.getmany(tp, timeout_ms=500, max_records=count - len(offsets))
        offsets += [r.offset for r in fetched.get(tp, [])]
    return offsets


async def test_a_partition_left_where_the_dropped_fetch_left_it_is_read_again(
    reader: Reader,
) -> None:
    tp, consumer = reader
    assert await _offsets(consumer, tp, 10) == list(range(10))
    dropped = await _offsets(consumer, tp, 30)  # fetched, then dropped (flow stopped)
    assert dropped == list(range(10, 40))
    assert await rewind_unmoved(consumer, {tp: (10, 39)}) == {tp: 10}
    assert await _offsets(consumer, tp, 30) == list(range(10, 40))


async def test_a_partition_seeked_since_the_fetch_is_left_where_the_seek_put_it(
    reader: Reader,
) -> None:
    """The recovery's seek to where it starts reading came after the records were fetched
    (from before it): undoing it would skip what lies between."""
    tp, consumer = reader
    assert await _offsets(consumer, tp, 30) == list(range(30))
    consumer.seek(tp, 5)
    assert await rewind_unmoved(consumer, {tp: (20, 29)}) == {}
    assert await _offsets(consumer, tp, 35) == list(range(5, 40))


async def test_a_partition_not_assigned_or_moved_is_left_alone(reader: Reader) -> None:
    tp, consumer = reader
    other = TopicPartition(tp.topic, 7)
    assert await _offsets(consumer, tp, 40) == list(range(40))
    assert await rewind_unmoved(consumer, {other: (0, 39)}) == {}
    assert await rewind_unmoved(consumer, {tp: (0, 38)}) == {}  # its position is 40
    assert await _offsets(consumer, tp, 1, polls=3) == []  # not moved: none comes again
