"""Kafka for the API: the compacted control topic and a read-to-end view of it.

Detector rules live in a compacted topic (key = rule name, value = JSON rule,
null value = deleted) that workers read too, so the topic *is* the store and
there is no second copy to drift. The API reads it to its current end before
answering ``GET /v1/detectors``, which makes a ``PUT`` immediately visible to
the same or any other API replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream_app.settings import Settings

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


async def ensure_compacted_topic(settings: Settings, topic: str) -> None:
    """Create ``topic`` with ``cleanup.policy=compact`` (one partition: rules are few
    and one partition keeps their total order); an existing topic is left as it is."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    name=topic,
                    num_partitions=1,
                    replication_factor=settings.topic_replication,
                    topic_configs={"cleanup.policy": "compact"},
                )
            ]
        )
        for entry in response.topic_errors:
            name, code = entry[0], entry[1]
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create topic {name}: error code {code} {entry[2:]}")
    finally:
        await admin.close()


class ControlView:
    """The latest value per key of a compacted topic, refreshed to the end on demand.

    ``decode`` turns a record value into a rule or raises ``ValueError``; records
    that do not decode (written by hand, an older version) are skipped with a
    warning rather than breaking the API.
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        decode: Callable[[bytes], dict[str, Any]],
        *,
        refresh_timeout_s: float = 10.0,
    ) -> None:
        self._settings = settings
        self._topic = topic
        self._decode = decode
        self._timeout = refresh_timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._state: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect, assign every partition (no consumer group) and seek to the start."""
        consumer = AIOKafkaConsumer(
            **self._settings.kafka_client_kwargs(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,  # a GET waits for the fetch in flight: keep it short
        )
        try:
            await consumer.start()
            await consumer.topics()  # refresh metadata so the new topic is known
            parts = consumer.partitions_for_topic(self._topic) or {0}
            self._partitions = [TopicPartition(self._topic, p) for p in sorted(parts)]
            consumer.assign(self._partitions)
            await consumer.seek_to_beginning(*self._partitions)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def ping(self) -> None:
        """One metadata round trip to the cluster (readiness)."""
        if self._consumer is None:
            raise RuntimeError("control view not started")
        await self._consumer.topics()

    async def snapshot(self) -> dict[str, dict[str, Any]]:
        """Read up to the end offsets as of now, then return a copy of the state."""
        if self._consumer is None:
            raise RuntimeError("control view not started")
        consumer = self._consumer
        async with self._lock, asyncio.timeout(self._timeout):
            end = await consumer.end_offsets(self._partitions)
            while await self._behind(end):
                batches = await consumer.getmany(*self._partitions, timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        self._apply(record.key, record.value)
            return dict(self._state)

    async def _behind(self, end: dict[TopicPartition, int]) -> bool:
        assert self._consumer is not None
        for tp in self._partitions:
            if await self._consumer.position(tp) < end[tp]:
                return True
        return False

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = key.decode("utf-8", "replace")
        if value is None:
            self._state.pop(name, None)
            return
        try:
            self._state[name] = self._decode(value)
        except ValueError as exc:
            log.warning("skipping undecodable control record %r: %s", name, exc)
