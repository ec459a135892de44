"""Bridge MQTT device topics into ``tsguard.readings``.

Subscribes with the pattern's filter, converts each message with
`payload_to_reading` and produces it keyed by entity; a message that cannot be
a reading is dead-lettered with the reason and the MQTT topic as location.
Runs until cancelled (Ctrl-C) or ``max_messages`` have been handled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt
import orjson

from connectors.ingest.mqtt_payload import TopicPattern, payload_to_reading
from connectors.ingest.producer import BatchProducer, RateMeter
from stream_app.settings import Settings
from stream_app.worker.decode import ReadingDecoder, Rejection, dead_letter


@dataclass(slots=True)
class BridgeStats:
    messages: int = 0
    readings: int = 0
    deadletters: int = 0


async def run_mqtt_bridge(
    settings: Settings,
    pattern: TopicPattern,
    *,
    max_messages: int | None = None,
    qos: int = 1,
    client_id: str | None = None,
    ready: asyncio.Event | None = None,
    report: Callable[[str], None] | None = None,
    report_every_s: float = 10.0,
) -> BridgeStats:
    """Bridge until cancelled or ``max_messages``; returns the counts."""
    from stream_app.worker.topics import ensure_topics

    await ensure_topics(settings)
    stats = BridgeStats()
    meter = RateMeter("mqtt readings", report, report_every_s)
    decoder = ReadingDecoder(max_bytes=settings.max_message_bytes)
    async with (
        BatchProducer(settings, client_id="tsguard-mqtt-bridge", linger_s=0.02) as producer,
        aiomqtt.Client(settings.mqtt_host, settings.mqtt_port, identifier=client_id) as client,
    ):
        await client.subscribe(pattern.subscription, qos=qos)
        if report is not None:
            report(
                f"subscribed to {pattern.subscription!r} on {settings.mqtt_host}:{settings.mqtt_port}"
            )
        if ready is not None:
            ready.set()
        async for message in client.messages:
            stats.messages += 1
            topic = message.topic.value
            raw = _payload_bytes(message.payload)
            now = time.time()
            result = payload_to_reading(topic, raw, pattern, now, decoder)
            if isinstance(result, Rejection):
                stats.deadletters += 1
                if report is not None:
                    report(f"dead-lettered {topic}: {result.reason}: {result.detail}")
                letter = dead_letter(
                    raw,
                    result,
                    at=now,
                    max_payload=settings.deadletter_max_payload_bytes,
                    source="mqtt",
                    location=topic,
                )
                await producer.send(settings.topic_deadletter, topic, letter)
            else:
                result["ingested_at"] = round(now, 6)
                await producer.send_raw(
                    settings.topic_readings, result["entity"].encode(), orjson.dumps(result)
                )
                stats.readings += 1
                meter.add()
                meter.maybe_report()
            if max_messages is not None and stats.messages >= max_messages:
                break
    if report is not None:
        report(
            meter.summary() + f"; {stats.deadletters} dead-lettered of {stats.messages} messages"
        )
    return stats


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()
