"""Reading back what a connector produced."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from stream_app.settings import Settings


async def consume(
    settings: Settings,
    topic: str,
    expected: int,
    deadline_s: float = 20.0,
    until: Callable[[list[tuple[bytes | None, Any]]], bool] | None = None,
) -> list[tuple[bytes | None, Any]]:
    """(key, decoded value) of every record of ``topic`` from the start, until ``expected`` arrived or the deadline."""
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka_client_kwargs(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[tuple[bytes | None, Any]] = []
    try:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and len(out) < expected and not (until and until(out)):
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                out.extend((r.key, orjson.loads(r.value)) for r in records)
    finally:
        await consumer.stop()
    return out
