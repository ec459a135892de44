"""Bridge MQTT device topics into ``tsguard.readings``.

Subscribes with the pattern's filter, converts each message with
`payload_to_reading` and produces it keyed by entity; a message that cannot be
a reading is dead-lettered with the reason and the MQTT topic as location.
Runs until cancelled (Ctrl-C) or ``max_messages`` have been handled.

Delivery: a QoS 1 message is acknowledged to the broker only once Kafka has what
became of it (a reading or a dead letter), so a bridge killed at any point loses
nothing the broker gave it. The bridge connects with a stable client id and a
persistent session (``clean_session=False``), so while it is away (its broker restarting, a
network cut) the broker keeps the QoS 1 messages of its subscription and sends
them when it is back. A lost connection is retried forever with capped
exponential backoff and jitter. The guarantee is at-least-once: the broker may
send a message again whose acknowledgement it did not get; the workers drop
such duplicates by ``(entity, metric, ts)`` and the database writes are
idempotent. A retained message is produced only when it carries its own time (the
broker sends it again at every subscription; the workers drop the copies by time); one
without is the broker's memory of a value, not a new reading, and is counted, not sent.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt
import orjson
from aiokafka.errors import KafkaError

from connectors.ingest.mqtt_payload import TopicPattern, payload_to_reading
from connectors.ingest.producer import BatchProducer, RateMeter
from stream_app.settings import Settings
from stream_app.wire import ReadingDecoder, Rejection, dead_letter


@dataclass(slots=True)
class BridgeStats:
    messages: int = 0
    readings: int = 0
    deadletters: int = 0
    reconnects: int = 0
    retained: int = 0  # retained messages without a time of their own, not produced


def reconnect_delay(
    attempt: int, *, first_s: float = 0.5, max_s: float = 30.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): doubling, capped, jittered.

    The jitter (50-100 % of the step) keeps a fleet of bridges from reconnecting
    in lock-step after their broker comes back.

    >>> [round(reconnect_delay(a, rng=random.Random(1)), 2) for a in (0, 1, 2, 10)]
    [0.28, 0.57, 1.13, 17.02]
    """
    step: float = min(max_s, first_s * 2.0 ** min(attempt, 30))
    return step * float((rng or random).uniform(0.5, 1.0))


def client_options(settings: Settings, client_id: str | None) -> dict[str, object]:
    """aiomqtt.Client keyword arguments from the settings (session, credentials, TLS)."""
    options: dict[str, object] = {
        "hostname": settings.mqtt_host,
        "port": settings.mqtt_port,
        "identifier": client_id or settings.mqtt_client_id,
        "clean_session": False,
        "username": settings.mqtt_username,
        "password": (settings.mqtt_password.get_secret_value() if settings.mqtt_password else None),
    }
    if settings.mqtt_tls:
        cafile = str(settings.mqtt_tls_cafile) if settings.mqtt_tls_cafile else None
        options["tls_context"] = ssl.create_default_context(cafile=cafile)
    return options


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
    stats: BridgeStats | None = None,
    first_retry_s: float = 0.5,
) -> BridgeStats:
    """Bridge until cancelled or ``max_messages``; returns the counts.

    ``ready`` is set at every (re)subscription; ``stats`` is updated as it goes.
    """
    if qos not in SUPPORTED_QOS:
        raise ValueError(f"qos {qos!r}: the bridge subscribes with QoS 0 or 1, not 2 ({_NO_QOS2})")
    from stream_app.worker.topics import ensure_topics

    stats = stats if stats is not None else BridgeStats()
    meter = RateMeter("mqtt readings", report, report_every_s)
    decoder = ReadingDecoder(max_bytes=settings.max_message_bytes)
    options = client_options(settings, client_id)
    attempt = 0
    topics_ready = False
    while True:
        try:
            if not topics_ready:
                # in the retry: started while Kafka was away (a host's reboot, Kafka slower
                # than the bridge), the bridge exited 1 at once, though the same Kafka lost
                # while it ran is waited for, and the broker keeps its session's messages
                await ensure_topics(settings)
                topics_ready = True
            # a producer per session: one whose deliveries failed (Kafka away) is closed
            # with the session, and the broker sends the messages not acknowledged again
            async with BatchProducer(
                settings, client_id="tsguard-mqtt-bridge", linger_s=0.02
            ) as producer:
                mqtt = aiomqtt.Client(**options)  # type: ignore[arg-type]
                # acknowledged to the broker once Kafka has the reading, not on receipt: a
                # kill -9 lost what was acknowledged and not yet produced (172 of 900)
                mqtt._client.manual_ack_set(True)
                async with mqtt as client:
                    await client.subscribe(pattern.subscription, qos=qos)
                    attempt = 0
                    if report is not None:
                        report(f"subscribed to {pattern.subscription!r} as {options['identifier']}")
                    if ready is not None:
                        ready.set()
                    unacked: list[aiomqtt.Message] = []
                    messages = client.messages
                    while max_messages is None or stats.messages < max_messages:
                        # nothing more waiting, or a group as large as the broker lets
                        # wait unacknowledged: into Kafka, then acknowledged
                        if unacked and (len(messages) == 0 or len(unacked) >= ACK_EVERY):
                            await _acknowledge(client, producer, unacked)
                        message = await anext(messages)
                        await _handle(message, pattern, settings, decoder, producer, stats, report)
                        unacked.append(message)
                        meter.count = stats.readings
                        meter.maybe_report()
                    await _acknowledge(client, producer, unacked)
            break
        except (aiomqtt.MqttError, KafkaError, TimeoutError) as exc:
            # Kafka away: before, the first failed delivery ended the bridge with a
            # traceback (LeaderNotAvailableError), after 160,000 pairs of connection errors
            if ready is not None:
                ready.clear()
            delay = reconnect_delay(
                attempt, first_s=first_retry_s, max_s=settings.mqtt_reconnect_max_s
            )
            attempt += 1
            stats.reconnects += 1
            if report is not None:
                lost = (
                    "MQTT connection lost"
                    if isinstance(exc, aiomqtt.MqttError)
                    else (
                        "Kafka unavailable; the messages not acknowledged come again from the broker"
                    )
                )
                report(f"{lost} ({exc!r}); reconnecting in {delay:.1f} s")
            await asyncio.sleep(delay)
    if report is not None:
        report(
            meter.summary() + f"; {stats.deadletters} dead-lettered of {stats.messages} messages"
        )
    return stats


# QoS 2 cannot be acknowledged after Kafka has the reading: the MQTT client answers a
# QoS 2 PUBLISH with PUBREC on receipt (from then on the broker holds it delivered) and
# only PUBCOMP waits for `_acknowledge`. A session closed in between (a kill -9, or Kafka
# away, which closes it on purpose) lost those messages, and the next session's client did
# not know their ids: it never completed the PUBRELs the broker sent again, they filled the
# broker's in-flight window and nothing more was delivered, silently and for good (308 of
# 2,000 QoS 2 messages reached Kafka across a 30 s Kafka restart; 26 of 400 after a kill -9).
SUPPORTED_QOS = (0, 1)
_NO_QOS2 = "QoS 2 lost messages and stalled the session after a reconnect"


# The broker sends a client at most so many unacknowledged QoS 1 messages (Mosquitto's
# max_inflight_messages: 20 by default): they are produced and acknowledged in groups below
# it, or as soon as no other message is waiting.
ACK_EVERY = 16


async def _acknowledge(
    client: aiomqtt.Client, producer: BatchProducer, unacked: list[aiomqtt.Message]
) -> None:
    """Once Kafka has every reading (and dead letter) of these messages, acknowledge them
    to the broker; until then it keeps them for the session and sends them again."""
    if not unacked:
        return
    await producer.flush()
    for message in unacked:
        if message.qos > 0:
            client._client.ack(message.mid, message.qos)
    unacked.clear()


async def _handle(
    message: aiomqtt.Message,
    pattern: TopicPattern,
    settings: Settings,
    decoder: ReadingDecoder,
    producer: BatchProducer,
    stats: BridgeStats,
    report: Callable[[str], None] | None,
) -> None:
    stats.messages += 1
    topic = message.topic.value
    raw = _payload_bytes(message.payload)
    now = time.time()
    result = payload_to_reading(topic, raw, pattern, now, decoder)
    if isinstance(result, Rejection):
        stats.deadletters += 1
        if report is not None:
            # cut: a 60,000-character topic was written whole, once per message
            report(f"dead-lettered {topic[:200]!r}: {result.reason}: {result.detail[:300]}")
        letter = dead_letter(
            raw,
            result,
            at=now,
            max_payload=settings.deadletter_max_payload_bytes,
            source="mqtt",
            location=topic,
        )
        await producer.send(settings.topic_deadletter, topic, letter)
        return
    if message.retain and result["ts"] is now:
        # the broker's last value, sent again at every (re)subscription: with no time of
        # its own it was stamped now, a new reading at every restart of the bridge that
        # the workers could not tell from a fresh one (with its time it is deduplicated)
        stats.retained += 1
        return
    result["ingested_at"] = round(now, 6)
    await producer.send_raw(
        settings.topic_readings, result["entity"].encode(), orjson.dumps(result)
    )
    stats.readings += 1


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()
