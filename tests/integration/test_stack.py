"""The local stack works for real: Kafka, PostgreSQL, Prometheus, Alertmanager, Mosquitto."""

from __future__ import annotations

import datetime as dt
import random
import socket
import time
import uuid
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from connectors import stack
from connectors.stack import ServiceStatus
from connectors.stack.process import wait_until
from stream_app.settings import Settings

if TYPE_CHECKING:
    from conftest import FreshSchema, FreshTopic

pytestmark = pytest.mark.integration

Record = tuple[bytes | None, bytes | None, int]


async def consume(consumer: AIOKafkaConsumer, count: int, deadline_s: float) -> list[Record]:
    """Up to ``count`` records as (key, value, partition), polling until the deadline."""
    end = time.monotonic() + deadline_s
    records: list[Record] = []
    while len(records) < count and time.monotonic() < end:
        batches = await consumer.getmany(timeout_ms=500)
        for partition, messages in batches.items():
            records += [(m.key, m.value, partition.partition) for m in messages]
    return records


# --- Kafka ------------------------------------------------------------------------


async def test_kafka_round_trip(settings: Settings, fresh_topic: FreshTopic) -> None:
    topic = await fresh_topic("roundtrip", partitions=2)
    sent = {f"sensor-{i}".encode(): f'{{"value": {i}}}'.encode() for i in range(40)}

    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all")
    await producer.start()
    try:
        for key, value in sent.items():
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka_client_kwargs(),
        group_id=f"it-{uuid.uuid4().hex[:12]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        records = await consume(consumer, len(sent), deadline_s=30)
    finally:
        await consumer.stop()

    assert {key: value for key, value, _ in records} == sent
    assert len(records) == len(sent)
    assert {partition for _, _, partition in records} == {0, 1}


async def test_kafka_carries_a_5_mb_message(settings: Settings, fresh_topic: FreshTopic) -> None:
    """The broker accepts a message this big, so poison-message handling can be tested."""
    topic = await fresh_topic("big")
    poison = random.randbytes(5 * 1024 * 1024)

    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), max_request_size=6_000_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, poison)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka_client_kwargs(),
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        records = await consume(consumer, 1, deadline_s=30)
    finally:
        await consumer.stop()
    assert [value for _, value, _ in records] == [poison]


# --- PostgreSQL -------------------------------------------------------------------


def test_postgres_write_and_read(fresh_schema: FreshSchema) -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = [(start + dt.timedelta(seconds=i), "sensor-1", float(i) / 2) for i in range(100)]
    with psycopg.connect(fresh_schema.conninfo) as conn:
        assert conn.execute("SELECT current_schema()").fetchone() == (fresh_schema.name,)
        conn.execute(
            "CREATE TABLE readings (ts timestamptz, series text, value double precision,"
            " PRIMARY KEY (series, ts))"
        )
        with conn.cursor().copy("COPY readings (ts, series, value) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()

    with psycopg.connect(fresh_schema.conninfo) as conn:
        back = conn.execute("SELECT ts, series, value FROM readings ORDER BY ts").fetchall()
    assert back == rows


# --- Prometheus and Alertmanager ----------------------------------------------


def test_prometheus_is_ready(prometheus_url: str) -> None:
    assert httpx.get(f"{prometheus_url}/-/ready", timeout=5).status_code == 200


def test_prometheus_scrapes_a_worker_port(settings: Settings, prometheus_url: str) -> None:
    """A metrics server on the second worker port is scraped within seconds.

    The gauge holds a value unique to this run, so an old scrape cannot pass the test.
    """
    port = settings.worker_web_port + 1
    instance = f"127.0.0.1:{port}"
    registry = CollectorRegistry()
    marker = Gauge("tsguard_integration_probe", "Set by the stack test.", registry=registry)
    expected = random.randint(1, 10**9)
    marker.set(expected)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)

    def query(client: httpx.Client, promql: str) -> list[str]:
        answer = client.get("/api/v1/query", params={"query": promql}).json()
        return [sample["value"][1] for sample in answer["data"]["result"]]

    try:
        with httpx.Client(base_url=prometheus_url, timeout=5) as client:
            up = f'up{{job="tsguard-workers",instance="{instance}"}}'
            probe = f'tsguard_integration_probe{{instance="{instance}"}}'
            assert wait_until(lambda: query(client, probe) == [str(expected)], deadline_s=30)
            assert query(client, up) == ["1"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_alertmanager_accepts_an_alert(alertmanager_url: str) -> None:
    run = uuid.uuid4().hex
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    alert = {
        "labels": {"alertname": "TsguardStackTest", "run": run},
        "annotations": {"summary": "posted by the integration tests"},
        "endsAt": ends.isoformat(),
    }
    with httpx.Client(base_url=alertmanager_url, timeout=5) as client:
        assert client.get("/-/ready").status_code == 200
        assert client.post("/api/v2/alerts", json=[alert]).status_code == 200

        def listed() -> bool:
            found = client.get("/api/v2/alerts", params={"filter": f'run="{run}"'}).json()
            return len(found) == 1

        assert wait_until(listed, deadline_s=10)


# --- Mosquitto ----------------------------------------------------------------------


def test_mosquitto_accepts_an_mqtt_connection(settings: Settings, mqtt_port: int) -> None:
    """A bare MQTT 3.1.1 CONNECT is answered with CONNACK "accepted"."""
    client_id = f"it-{uuid.uuid4().hex[:8]}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x3c"  # protocol, level 4, clean session, keep-alive
    payload = len(client_id).to_bytes(2, "big") + client_id
    connect = bytes([0x10, len(variable) + len(payload)]) + variable + payload
    with socket.create_connection((settings.mqtt_host, mqtt_port), timeout=5) as conn:
        conn.sendall(connect)
        assert conn.recv(4) == b"\x20\x02\x00\x00"
        conn.sendall(b"\xe0\x00")  # DISCONNECT


# --- the stack itself ----------------------------------------------------------------


def test_stack_up_again_changes_nothing(
    settings: Settings, local_stack: list[ServiceStatus]
) -> None:
    """``ensure_up`` on a running stack starts nothing and leaves every pid as it was."""
    after = stack.ensure_up(settings)
    assert [(item.name, item.pid, item.healthy) for item in after] == [
        (item.name, item.pid, True) for item in local_stack
    ]
    assert not any(item.started for item in after)
