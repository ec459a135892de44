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
from typing import TYPE_CHECKING

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream_app.settings import Settings
from stream_app.worker.faust_compat.consumer import rewind_unmoved

if TYPE_CHECKING:
    from conftest import FreshTopic

pytestmark = pytest.mark.integration


async def _topic_with(settings: Settings, fresh_topic: FreshTopic, count: int) -> str:
    topic = await fresh_topic("rewind")
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all")
    await producer.start()
    try:
        for i in range(count):
            await producer.send(topic, str(i).encode(), key=b"k")
        await producer.flush()
    finally:
        await producer.stop()
    return topic


async def _assigned(settings: Settings, *tps: TopicPartition) -> AIOKafkaConsumer:
    """A consumer of a group that never committed, with ``tps`` assigned by hand."""
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(),
        group_id=f"it-rewind-{uuid.uuid4().hex[:12]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    consumer.assign(list(tps))
    return consumer


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
    settings: Settings, fresh_topic: FreshTopic
) -> None:
    tp = TopicPartition(await _topic_with(settings, fresh_topic, 40), 0)
    consumer = await _assigned(settings, tp)
    try:
        assert await _offsets(consumer, tp, 10) == list(range(10))
        dropped = await _offsets(consumer, tp, 30)  # fetched, then dropped (flow stopped)
        assert dropped == list(range(10, 40))
        assert await rewind_unmoved(consumer, {tp: (10, 39)}) == {tp: 10}
        assert await _offsets(consumer, tp, 30) == list(range(10, 40))
    finally:
        await consumer.stop()


async def test_a_partition_seeked_since_the_fetch_is_left_where_the_seek_put_it(
    settings: Settings, fresh_topic: FreshTopic
) -> None:
    """The recovery's seek to where it starts reading came after the records were fetched
    (from before it): undoing it would skip what lies between."""
    tp = TopicPartition(await _topic_with(settings, fresh_topic, 40), 0)
    consumer = await _assigned(settings, tp)
    try:
        assert await _offsets(consumer, tp, 30) == list(range(30))
        consumer.seek(tp, 5)
        assert await rewind_unmoved(consumer, {tp: (20, 29)}) == {}
        assert await _offsets(consumer, tp, 35) == list(range(5, 40))
    finally:
        await consumer.stop()


async def test_a_partition_no_longer_assigned_is_left_alone(
    settings: Settings, fresh_topic: FreshTopic
) -> None:
    topic = await _topic_with(settings, fresh_topic, 20)
    tp, other = TopicPartition(topic, 0), TopicPartition(topic, 7)
    consumer = await _assigned(settings, tp)
    try:
        assert await _offsets(consumer, tp, 20) == list(range(20))
        assert await rewind_unmoved(consumer, {other: (0, 19)}) == {}
        assert await rewind_unmoved(consumer, {tp: (0, 18)}) == {}  # its position is 20
        assert await _offsets(consumer, tp, 1, polls=3) == []  # not moved: none comes again
    finally:
        await consumer.stop()
