"""Create tsguard's topics explicitly, with the configured partitions.

Faust never creates source topics with the partition count it expects, and a
broker-created topic with another count makes table start-up fail, so topics
are declared here before any worker starts.
"""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

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
