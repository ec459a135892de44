"""Committed and end offsets the worker needs around faust-streaming 0.15.

``ensure_committed_offsets`` works around Faust losing the first records of a
partition that has no committed offset (see its docstring); ``start_offsets``
feeds the offset guard and ``end_offsets`` the stall watchdog. All use a side
consumer that never joins the group.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from stream_app.settings import Settings
from stream_app.worker.topics import describe_topics


@contextlib.asynccontextmanager
async def _side_consumer(settings: Settings, *, group: bool) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer that never subscribes, so it never joins the group.

    With ``group`` it carries the workers' group id, which committed-offset
    look-ups and commits need; without, it only reads partition metadata.
    """
    consumer = AIOKafkaConsumer(
        group_id=settings.consumer_group if group else None,
        enable_auto_commit=False,
        **settings.kafka_client_kwargs(),
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def ensure_committed_offsets(
    settings: Settings, *, at_end: bool = False
) -> list[TopicPartition]:
    """Commit the earliest offset for input partitions the group has no offset for yet.

    A Faust worker that joins while its partitions have no committed offset can
    fetch from 0, drop what it fetched when the next rebalance clears its
    buffers, and then resume from its fetch position instead of from 0: the
    first messages of the partition are lost (seen with two workers starting
    together). With an offset committed up front the seek after every
    rebalance goes back to it. Only possible while the group has no active
    member; if one is active it has committed already, and the error is ignored.
    With ``at_end`` the group starts at the end instead (``tsguard demo`` runs).
    """
    described = await describe_topics(settings, [settings.topic_readings, settings.topic_feedback])
    tps = [
        TopicPartition(d["topic"], p["partition"])
        for d in described
        if d["error_code"] == 0
        for p in d["partitions"]
    ]
    async with _side_consumer(settings, group=True) as consumer:
        missing = [tp for tp in tps if await consumer.committed(tp) is None]
        if not missing:
            return []
        consumer.assign(missing)
        if at_end:  # a new group that should only see what comes from now on
            start = await consumer.end_offsets(missing)
        else:
            start = await consumer.beginning_offsets(missing)
        try:
            await consumer.commit({tp: start[tp] for tp in missing})
        except KafkaError:
            return []
        return missing


async def start_offsets(
    settings: Settings, partitions: list[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """Where the group resumes each partition: its committed offset, else the earliest."""
    if not partitions:
        return {}
    tps = [TopicPartition(topic, p) for topic, p in partitions]
    async with _side_consumer(settings, group=True) as consumer:
        consumer.assign(tps)
        begin = await consumer.beginning_offsets(tps)
        out: dict[tuple[str, int], int] = {}
        for tp in tps:
            committed = await consumer.committed(tp)
            out[(tp.topic, tp.partition)] = committed if committed is not None else begin[tp]
        return out


async def end_offsets(
    settings: Settings, partitions: list[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The current end (high watermark) of each partition, from a group-less consumer."""
    if not partitions:
        return {}
    tps = [TopicPartition(topic, p) for topic, p in partitions]
    async with _side_consumer(settings, group=False) as consumer:
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}
