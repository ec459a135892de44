"""Create tsguard's topics explicitly, with the configured partitions.

Faust never creates source topics with the partition count it expects, and a
broker-created topic with another count makes table start-up fail, so topics
are declared here before any worker starts.
"""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from stream_app.settings import Settings


def topic_specs(settings: Settings) -> list[NewTopic]:
    """Every topic tsguard reads or writes, with partitions and configs."""
    parts, repl = settings.topic_partitions, settings.topic_replication
    big = {"max.message.bytes": str(max(settings.max_message_bytes * 8, 8_388_608))}
    return [
        NewTopic(settings.topic_readings, parts, repl, topic_configs=big),
        NewTopic(settings.topic_anomalies, parts, repl),
        NewTopic(settings.topic_deadletter, parts, repl, topic_configs=big),
        NewTopic(settings.topic_groundtruth, 1, repl),
        # Same partition count as readings: Faust then assigns a feedback
        # partition to the worker that owns the entity's readings partition.
        NewTopic(settings.topic_feedback, parts, repl),
        NewTopic(settings.topic_control, 1, repl, topic_configs={"cleanup.policy": "compact"}),
    ]


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics; return the names created."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topic_specs(settings) if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def ensure_committed_offsets(settings: Settings) -> list[TopicPartition]:
    """Commit the earliest offset for input partitions the group has no offset for yet.

    A Faust worker that joins while its partitions have no committed offset can
    fetch from 0, drop what it fetched when the next rebalance clears its
    buffers, and then resume from its fetch position instead of from 0: the
    first messages of the partition are lost (seen with two workers starting
    together). With an offset committed up front the seek after every
    rebalance goes back to it. Only possible while the group has no active
    member; if one is active it has committed already, and the error is ignored.
    """
    topics = [settings.topic_readings, settings.topic_feedback]
    consumer = AIOKafkaConsumer(
        group_id=settings.consumer_group, enable_auto_commit=False, **settings.kafka_client_kwargs()
    )
    await consumer.start()
    try:
        tps = []
        for topic in topics:
            parts = consumer.partitions_for_topic(topic)
            if parts is None:
                await consumer.topics()  # refreshes metadata for every topic
                parts = consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        missing = [tp for tp in tps if await consumer.committed(tp) is None]
        if not missing:
            return []
        consumer.assign(missing)
        begin = await consumer.beginning_offsets(missing)
        try:
            await consumer.commit({tp: begin[tp] for tp in missing})
        except KafkaError:
            return []
        return missing
    finally:
        await consumer.stop()
