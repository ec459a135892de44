"""The MQTT bridge survives its broker restarting and loses no QoS 1 message.

A private Mosquitto (persistence on, so sessions and queued messages survive
its restart) on a free port: the bridge subscribes with a stable client id
and a persistent session, half the messages are published, the broker is
stopped and started again, the other half is published at once (while the
bridge waits to reconnect, so the broker must queue them for its session),
and every message must be in Kafka. Delivery is at-least-once: a message may
appear twice (the workers drop duplicates by entity, metric and ts), never
zero times.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from connectors.ingest.mqtt_bridge import BridgeStats, run_mqtt_bridge
from connectors.ingest.mqtt_payload import TopicPattern
from stream_app.settings import Settings
from tests.connectors.helpers import consume

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MESSAGES = 40


class Broker:
    """One Mosquitto process that can be stopped and started on the same port and data."""

    def __init__(self, home: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.home = home
        self.config = home / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {home}/\n"
            f"user {getpass.getuser()}\n"
            "log_dest stderr\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, within_s: float = 15.0) -> None:
        log = (self.home / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stderr=log)
        log.close()
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)  # polling interval of the deadline loop
        raise AssertionError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: mosquitto writes its persistence file
            self.process.wait(timeout=15)
            self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not os.path.exists(MOSQUITTO):
        pytest.fail("mosquitto is missing: `tsguard stack up` installs Debian's mosquitto")
    broker = Broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def publish(port: int, root: str, numbers: range) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"pub-{root}") as client:
        for n in numbers:
            await client.publish(f"{root}/site/dev{n % 4}/m{n}", str(float(n)).encode(), qos=1)


async def test_every_qos1_message_reaches_kafka_across_a_broker_restart(
    settings: Settings, fresh_topic: Any, broker: Broker, kafka_bootstrap: str
) -> None:
    s = settings.model_copy(
        update={
            "topic_readings": await fresh_topic("readings", partitions=2),
            "topic_deadletter": await fresh_topic("deadletter"),
            "mqtt_port": broker.port,
            "mqtt_reconnect_max_s": 3.0,
        }
    )
    root = f"rs-{uuid.uuid4().hex[:10]}"
    ready, stats, log = asyncio.Event(), BridgeStats(), []
    bridge = asyncio.create_task(
        run_mqtt_bridge(
            s,
            TopicPattern.parse(f"{root}/+site/+device/+metric"),
            client_id=f"tsguard-bridge-{root}",
            ready=ready,
            stats=stats,
            report=log.append,
            first_retry_s=1.5,  # the second half is published while the bridge waits
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 15)
        await publish(broker.port, root, range(MESSAGES // 2))
        first = await consume(s, s.topic_readings, MESSAGES // 2)
        assert len(first) >= MESSAGES // 2, log

        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(broker.start)
        await publish(broker.port, root, range(MESSAGES // 2, MESSAGES))
        assert stats.readings == MESSAGES // 2, "published while the bridge was away"

        # at-least-once: the broker may send again what it sent just before it stopped,
        # so wait for every distinct message, not for a count of records
        every = {f"m{n}" for n in range(MESSAGES)}

        def seen(out: list[tuple[bytes | None, Any]]) -> set[str]:
            return {next(iter(value["metrics"])) for _, value in out}

        records = await consume(
            s, s.topic_readings, 10 * MESSAGES, deadline_s=45, until=lambda out: seen(out) >= every
        )
    finally:
        bridge.cancel()
        await asyncio.gather(bridge, return_exceptions=True)
    assert seen(records) == every, log
    assert stats.reconnects >= 1 and stats.deadletters == 0, log
