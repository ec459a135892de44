"""Create tsguard's topics explicitly, with the configured partitions.

Faust never creates source topics with the partition count it expects, and a
broker-created topic with another count makes table start-up fail, so topics
are declared here before any worker starts.
"""

from __future__ import annotations

import contextlib
from typing import Any

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


async def describe_topics(settings: Settings, names: list[str]) -> list[dict[str, Any]]:
    """The broker's description of the topics ``names`` (partitions, error codes)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        described: list[dict[str, Any]] = await admin.describe_topics(names)
        return described
    finally:
        await admin.close()


async def labels_partition_problem(settings: Settings) -> str | None:
    """Why the labels' topic cannot serve the workers, or None when it can: it must have
    as many partitions as the readings' topic, so that a label (keyed by its entity)
    comes through the partition of its entity's readings, which the worker holding the
    entity's models is assigned.

    One made by anything else than :func:`ensure_topics` (the broker's auto-creation when
    the API published a label first, one partition; a hand-made one) took the labels of
    the entities of every other worker to a worker that had no model of them: on the
    stack, with two workers and a one-partition topic, 5 of 8 labels were dead-lettered
    "no model of ... here" while the API had answered 200 for each.
    """
    names = [settings.topic_readings, settings.topic_feedback]
    described = await describe_topics(settings, names)
    counts = {t["topic"]: len(t.get("partitions") or ()) for t in described}
    readings, labels = (counts.get(name, 0) for name in names)
    if not readings or not labels or readings == labels:
        return None  # a topic missing is not this check's to report
    return (
        f"topic {settings.topic_feedback} has {labels} partition(s) and "
        f"{settings.topic_readings} {readings}: a label must come through the partition "
        f"of its entity's readings; re-create {settings.topic_feedback} with {readings} "
        "partitions (tsguard topics create makes it so when it is missing)"
    )
