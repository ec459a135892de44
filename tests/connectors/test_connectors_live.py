"""Each connector against the real local Kafka, Mosquitto and Alertmanager (fresh topics per test)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from jsonschema import Draft202012Validator
from pydantic import SecretStr

from connectors.alerting.alertmanager import forward_to_alertmanager
from connectors.alerting.alerts import epoch, iso
from connectors.ingest.files import ColumnMap
from connectors.ingest.mqtt_bridge import run_mqtt_bridge
from connectors.ingest.mqtt_payload import TopicPattern
from connectors.ingest.replay_to_kafka import replay_to_kafka
from connectors.simulate import GroundTruthWriter, IoTFleet, MarketSim, read_ground_truth
from connectors.simulate.run import run_simulation
from stream_app.settings import Settings
from stream_app.storage.migrate import migrate
from tests.connectors.helpers import consume
from tests.integration.conftest import FreshSchema

pytestmark = pytest.mark.integration


async def private(settings: Settings, fresh_topic: Any, *names: str) -> Settings:
    """Settings whose named topics are fresh ones of this test."""
    update = {f"topic_{n}": await fresh_topic(n, partitions=2) for n in names}
    return settings.model_copy(update=update)


@pytest.mark.parametrize("which", ["iot", "market"])
async def test_simulator_delivers_valid_readings_and_its_ground_truth(
    settings: Settings,
    fresh_topic: Any,
    reading_schema: Draft202012Validator,
    tmp_path: Path,
    which: str,
) -> None:
    s = await private(settings, fresh_topic, "readings", "groundtruth")
    sim = (
        IoTFleet(devices=6, anomaly_rate=0.05, seed=3)
        if which == "iot"
        else MarketSim(5, anomaly_rate=0.02, seed=3)
    )
    with GroundTruthWriter(tmp_path / "truth.jsonl") as writer:
        stats = await run_simulation(sim, s, count=600, truth_file=writer)
    assert stats.readings == 600 and stats.truth > 0
    readings = await consume(s, s.topic_readings, 600)
    assert len(readings) == 600
    for key, reading in readings:
        reading_schema.validate(reading)
        assert key == reading["entity"].encode() and reading["ingested_at"] > 1e9
    truth = await consume(s, s.topic_groundtruth, stats.truth)
    on_file = [t.to_dict() for t in read_ground_truth(tmp_path / "truth.jsonl")]
    assert sorted(orjson.dumps(v) for _, v in truth) == sorted(orjson.dumps(t) for t in on_file)


async def test_replay_keeps_event_time_and_dead_letters_bad_rows(
    settings: Settings,
    fresh_topic: Any,
    reading_schema: Draft202012Validator,
    deadletter_schema: Draft202012Validator,
    tmp_path: Path,
) -> None:
    s = await private(settings, fresh_topic, "readings", "deadletter")
    csv_file = tmp_path / "pump.csv"
    csv_file.write_text(
        "time,temp,vib\n1767571200,70.5,0.1\noops,1,2\n1767571260,71.0,0.2\n1767571320,x,1\n"
    )
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"ts": [1767571230.0, 1767571290.0], "rpm": [900.0, 950.0]})
    pq.write_table(table, tmp_path / "fans.parquet")
    files = [csv_file, tmp_path / "fans.parquet"]
    stats = await replay_to_kafka(files, s, ColumnMap(), speed=None)
    good = 4
    assert (stats.readings, stats.malformed) == (good, 2)
    readings = [v for _, v in await consume(s, s.topic_readings, good)]
    for reading in readings:
        reading_schema.validate(reading)
    pump = sorted(r["ts"] for r in readings if r["entity"] == "pump")
    assert pump == [1767571200.0, 1767571260.0]
    assert [r["metrics"]["rpm"] for r in readings if r["entity"] == "fans"] == [900.0, 950.0]
    letters = [v for _, v in await consume(s, s.topic_deadletter, 2)]
    for letter in letters:
        deadletter_schema.validate(letter)
    assert sorted((d["origin"]["location"], d["reason"]) for d in letters) == [
        (f"{csv_file}:3", "bad_timestamp"),
        (f"{csv_file}:5", "schema"),
    ]
    assert {d["origin"]["source"] for d in letters} == {"file"}


async def test_mqtt_bridge_converts_and_dead_letters(
    settings: Settings,
    fresh_topic: Any,
    mqtt_port: int,
    reading_schema: Draft202012Validator,
    deadletter_schema: Draft202012Validator,
) -> None:
    s = await private(settings, fresh_topic, "readings", "deadletter")
    root = f"it-{uuid.uuid4().hex[:10]}"
    ready = asyncio.Event()
    bridge = asyncio.create_task(
        run_mqtt_bridge(
            s,
            TopicPattern.parse(f"{root}/+site/+device/+metric"),
            max_messages=5,
            ready=ready,
            client_id=f"tsguard-test-{root}",
        )
    )
    await asyncio.wait_for(ready.wait(), 10)
    messages = [
        (f"{root}/s1/d1/temp", b"21.5"),
        (f"{root}/s1/d1/hum", b'{"value": 40, "ts": "2026-01-05T00:00:00Z"}'),
        (f"{root}/s1/d2/all", b'{"a": 1, "b": 2.5}'),
        (f"{root}/s1/d1/temp", b"very warm"),
        (f"{root}/s1/d1/temp", b"\xff\x00"),
    ]
    async with aiomqtt.Client(s.mqtt_host, mqtt_port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)
    stats = await asyncio.wait_for(bridge, 20)
    assert (stats.readings, stats.deadletters) == (3, 2)
    readings = {
        v["entity"] + "|" + ",".join(v["metrics"]): v
        for _, v in await consume(s, s.topic_readings, 3)
    }
    for reading in readings.values():
        reading_schema.validate(reading)
    assert (
        readings["s1/d1|hum"]["ts"] == "2026-01-05T00:00:00Z"
        and readings["s1/d2|a,b"]["metrics"]["b"] == 2.5
    )
    letters = [v for _, v in await consume(s, s.topic_deadletter, 2)]
    for letter in letters:
        deadletter_schema.validate(letter)
    assert sorted(d["reason"] for d in letters) == ["bad_payload", "invalid_json"]
    assert {d["origin"]["location"] for d in letters} == {f"{root}/s1/d1/temp"}


async def test_a_retained_value_without_a_time_is_not_a_new_reading(
    settings: Settings, fresh_topic: Any, mqtt_port: int
) -> None:
    """The broker sends a retained message again at every subscription; one without a
    time of its own was stamped now, a new reading at every restart of the bridge (six
    copies of one published value after a few restarts)."""
    s = await private(settings, fresh_topic, "readings", "deadletter")
    root = f"it-{uuid.uuid4().hex[:10]}"
    retained = [
        (f"{root}/s1/d1/temp", b"17.0"),
        (f"{root}/s1/d1/hum", b'{"value": 40, "ts": "2026-01-05T00:00:00Z"}'),
    ]
    async with aiomqtt.Client(s.mqtt_host, mqtt_port) as client:
        for topic, payload in retained:
            await client.publish(topic, payload, qos=1, retain=True)
    try:
        stats = await asyncio.wait_for(
            run_mqtt_bridge(
                s,
                TopicPattern.parse(f"{root}/+site/+device/+metric"),
                max_messages=2,
                client_id=f"tsguard-test-{root}",
            ),
            20,
        )
        assert (stats.messages, stats.readings, stats.retained) == (2, 1, 1)
        (reading,) = [v for _, v in await consume(s, s.topic_readings, 1)]
        assert reading["metrics"] == {"hum": 40} and reading["ts"] == "2026-01-05T00:00:00Z"
    finally:
        async with aiomqtt.Client(s.mqtt_host, mqtt_port) as client:
            for topic, _ in retained:  # an empty retained message clears it
                await client.publish(topic, b"", qos=1, retain=True)


def _retrying_bridge(
    s: Settings,
) -> tuple[asyncio.Task[Any], asyncio.Event, list[str], str]:
    """A bridge on a fresh topic root that retries after 0.05 s: its task, the event set
    at each subscription, what it told, and the root."""
    root = f"it-{uuid.uuid4().hex[:10]}"
    ready = asyncio.Event()
    told: list[str] = []
    bridge = asyncio.create_task(
        run_mqtt_bridge(
            s,
            TopicPattern.parse(f"{root}/+site/+device/+metric"),
            ready=ready,
            report=told.append,
            client_id=f"tsguard-test-{root}",
            first_retry_s=0.05,
        )
    )
    return bridge, ready, told, root


async def test_a_delivery_kafka_refused_is_a_reconnect_and_loses_nothing(
    settings: Settings, fresh_topic: Any, mqtt_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Kafka away, the first failed delivery ended the bridge with a traceback
    (LeaderNotAvailableError): 552 of 2,573 messages the broker had taken reached Kafka,
    the rest only after a restart. The refusal is simulated here (the first two flushes
    fail as a broker without a leader makes them); the broker is real and sends again
    what was not acknowledged."""
    from aiokafka.errors import LeaderNotAvailableError

    from connectors.ingest.producer import BatchProducer

    real_flush = BatchProducer.flush
    refused: list[int] = []

    async def flush(self: BatchProducer) -> None:
        if len(refused) < 2:
            refused.append(1)
            raise LeaderNotAvailableError()
        await real_flush(self)

    monkeypatch.setattr(BatchProducer, "flush", flush)
    s = await private(settings, fresh_topic, "readings", "deadletter")
    bridge, ready, told, root = _retrying_bridge(s)
    try:
        await asyncio.wait_for(ready.wait(), 10)
        async with aiomqtt.Client(s.mqtt_host, mqtt_port) as client:
            for i in range(30):
                payload = orjson.dumps({"value": i, "ts": 1_767_225_600 + 60 * i})
                await client.publish(f"{root}/s1/d1/seq", payload, qos=1)

        def all_there(out: list[tuple[bytes | None, Any]]) -> bool:
            return {v["metrics"]["seq"] for _, v in out} == set(range(30))

        got = await consume(s, s.topic_readings, 10**6, deadline_s=30, until=all_there)
        assert all_there(got), sorted({v["metrics"]["seq"] for _, v in got})
        assert not bridge.done()  # it went on
        assert len(refused) == 2 and any("Kafka unavailable" in line for line in told), told
    finally:
        bridge.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bridge


async def test_a_bridge_started_while_kafka_is_away_waits_for_it(
    settings: Settings, fresh_topic: Any, mqtt_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started while Kafka was away (a host's reboot, Kafka slower to come up), the bridge
    exited 1 at once ("cannot reach Kafka"), though the same Kafka lost while it ran is
    waited for. Kafka's absence is simulated (the first two topic checks fail as an
    unreachable bootstrap makes them); the bridge must retry, subscribe and deliver."""
    from aiokafka.errors import KafkaConnectionError

    from stream_app.worker import topics

    real_ensure = topics.ensure_topics
    refused: list[int] = []

    async def ensure_topics(s: Settings) -> list[str]:
        if len(refused) < 2:
            refused.append(1)
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")
        return await real_ensure(s)

    monkeypatch.setattr(topics, "ensure_topics", ensure_topics)
    s = await private(settings, fresh_topic, "readings", "deadletter")
    bridge, ready, told, root = _retrying_bridge(s)
    try:
        subscribed = asyncio.create_task(ready.wait())
        await asyncio.wait({bridge, subscribed}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        subscribed.cancel()
        assert not bridge.done(), f"the bridge ended: {bridge.exception()!r}"
        assert ready.is_set(), told
        async with aiomqtt.Client(s.mqtt_host, mqtt_port) as client:
            await client.publish(f"{root}/s1/d1/temp", b"21.5", qos=1)
        (reading,) = [v for _, v in await consume(s, s.topic_readings, 1)]
        assert reading["metrics"] == {"temp": 21.5}
        assert len(refused) == 2 and any("Kafka unavailable" in line for line in told), told
    finally:
        bridge.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bridge


async def test_a_bridge_killed_mid_stream_loses_no_message_the_broker_gave_it(
    settings: Settings, fresh_topic: Any, mqtt_port: int
) -> None:
    """The MQTT client acknowledged each message on receipt, before its reading reached
    Kafka: a kill -9 lost what was in between (172 of 900 in a drill), and the broker
    had no reason to send it again. Now a message is acknowledged once Kafka has it."""
    s = await private(settings, fresh_topic, "readings", "deadletter")
    root = f"it-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "TSGUARD_TOPIC_READINGS": s.topic_readings,
        "TSGUARD_TOPIC_DEADLETTER": s.topic_deadletter,
        "TSGUARD_MQTT_HOST": s.mqtt_host,
        "TSGUARD_MQTT_PORT": str(mqtt_port),
    }
    command = [
        sys.executable, "-m", "stream_app.cli", "bridge", "mqtt",
        "--topic-pattern", f"{root}/+site/+device/+metric", "--client-id", f"tsguard-test-{root}",
    ]  # fmt: skip

    async def started() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        assert proc.stderr is not None
        while b"subscribed to" not in await asyncio.wait_for(proc.stderr.readline(), 60):
            pass
        return proc

    n, t0 = 900, 1_700_000_000.0

    async def publish(client: aiomqtt.Client, numbers: range) -> None:
        # all at once (each returns when the broker acknowledged it), as a fleet does
        await asyncio.gather(
            *(
                client.publish(f"{root}/s1/d1/v", orjson.dumps({"value": i, "ts": t0 + i}), qos=1)
                for i in numbers
            )
        )

    bridge = await started()
    async with aiomqtt.Client(s.mqtt_host, mqtt_port, max_inflight_messages=1000) as client:
        await publish(client, range(n // 3))
        bridge.kill()  # while it holds what the broker just gave it
        await bridge.wait()
        await publish(client, range(n // 3, n))
    bridge = await started()
    try:
        records = await consume(
            s,
            s.topic_readings,
            10**9,
            deadline_s=30,
            until=lambda got: len({v["ts"] for _, v in got}) >= n,
        )
    finally:
        bridge.terminate()
        await bridge.wait()
    missing = set(range(n)) - {int(v["ts"] - t0) for _, v in records}
    assert not missing, f"{len(missing)} of {n} lost, e.g. {sorted(missing)[:5]}"


def _event(event: str, episode: str, entity: str, **extra: Any) -> bytes:
    now = time.time()
    doc = {
        "version": 1,
        "event": event,
        "episode_id": episode,
        "entity": entity,
        "metric": "temperature",
        "kind": "value",
        "started_at": iso(now - 60),
        "ended_at": None,
        "ts": iso(now),
        "value": 97.2,
        "expected": 71.3,
        "lower": 68.0,
        "upper": 74.6,
        "score": 0.99,
        "peak_score": 0.99,
        "severity": "high",
        "direction": "up",
        "detector": "robust_seasonal",
        "explanation": "6 sigma above",
    }
    return orjson.dumps(doc | extra)


async def _alerts(url: str, episode: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        response = await http.get("/api/v2/alerts", params={"filter": f'episode_id="{episode}"'})
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts


async def _poll(
    url: str, episode: str, want_present: bool, deadline_s: float = 15.0
) -> list[dict[str, Any]]:
    end = time.monotonic() + deadline_s
    while True:
        alerts = await _alerts(url, episode)
        if bool(alerts) == want_present or time.monotonic() > end:
            return alerts
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _forwarding(
    s: Settings, url: str, *, backoff_s: float = 0.1, report: Any = None
) -> AsyncIterator[tuple[AIOKafkaProducer, asyncio.Task[Any]]]:
    """A forwarder of ``s``'s anomalies topic (a group of its own) running, and a producer
    into that topic; both stopped at the end."""
    forwarder = asyncio.create_task(
        forward_to_alertmanager(
            s,
            url=url,
            group_id=f"it-fwd-{uuid.uuid4().hex[:8]}",
            backoff_s=backoff_s,
            report=report,
        )
    )
    producer = AIOKafkaProducer(**s.kafka_client_kwargs())
    await producer.start()
    try:
        yield producer, forwarder
    finally:
        forwarder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forwarder
        await producer.stop()


async def test_a_stopping_forwarder_whose_kafka_calls_hang_still_ends(
    settings: Settings, fresh_topic: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped while retrying an unreachable Alertmanager, the forwarder took 41 s to
    leave its group, and with Kafka away too it never ended (SIGTERM and SIGINT ignored
    for 9 minutes). Here leaving the group hangs; the stop still ends, and says why."""
    from aiokafka import AIOKafkaConsumer

    from connectors.alerting import alertmanager

    s = await private(settings, fresh_topic, "anomalies", "deadletter")
    hang, real_stop = asyncio.Event(), AIOKafkaConsumer.stop
    stopped: list[AIOKafkaConsumer] = []

    async def stop(self: AIOKafkaConsumer) -> None:
        stopped.append(self)
        await hang.wait()  # never set

    told: list[str] = []
    forwarder = asyncio.create_task(
        forward_to_alertmanager(
            s,
            url="http://127.0.0.1:9",  # nothing listens: every post is retried
            group_id=f"it-fwd-{uuid.uuid4().hex[:8]}",
            report=told.append,
        )
    )
    await asyncio.sleep(2.0)  # it reads the (empty) topic
    monkeypatch.setattr(AIOKafkaConsumer, "stop", stop)
    forwarder.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(forwarder, 4 * alertmanager.STOP_TIMEOUT_S)
    assert forwarder.done()
    assert any("leaving the consumer group gave up" in line for line in told), told
    monkeypatch.undo()
    for consumer in stopped:  # closed for real, now that the point is made
        await real_stop(consumer)


async def test_sigterm_stops_a_healthy_forwarder_as_ctrl_c_does(
    settings: Settings, fresh_topic: Any, alertmanager_url: str
) -> None:
    """SIGTERM was mapped to ``default_int_handler``: its KeyboardInterrupt left the event
    loop at once, and ``asyncio.run`` cancelled aiokafka's tasks with the forwarder's, so
    with Kafka and Alertmanager both well it took 7 s to stop, "leaving the consumer group
    gave up after 5 s", and its producer was left unclosed (Ctrl-C: 2 s, clean)."""
    import signal
    import socket

    s = await private(settings, fresh_topic, "anomalies", "deadletter")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {
        **os.environ,
        "TSGUARD_TOPIC_ANOMALIES": s.topic_anomalies,
        "TSGUARD_TOPIC_DEADLETTER": s.topic_deadletter,
    }
    command = [
        sys.executable, "-m", "stream_app.cli", "forward", "alertmanager", "--url",
        alertmanager_url, "--group-id", f"it-fwd-{uuid.uuid4().hex[:8]}", "--metrics-port",
        str(port),
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{port}/metrics")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        await asyncio.sleep(3.0)  # joined its group and polling
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        took = time.monotonic() - began
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    said = err.decode(errors="replace")
    assert "gave up" not in said and "Unclosed" not in said, said[-2000:]
    assert took < 4.0, f"{took:.1f} s to stop: {said[-2000:]}"


async def test_forwarder_fires_and_resolves_alerts_in_alertmanager(
    settings: Settings,
    fresh_topic: Any,
    alertmanager_url: str,
    deadletter_schema: Draft202012Validator,
) -> None:
    s = await private(settings, fresh_topic, "anomalies", "deadletter")
    episode, entity = f"ep-{uuid.uuid4().hex[:16]}", f"it/pump-{uuid.uuid4().hex[:6]}"
    async with _forwarding(s, alertmanager_url) as (producer, _):
        await producer.send_and_wait(s.topic_anomalies, b"{broken", key=entity.encode())
        await producer.send_and_wait(
            s.topic_anomalies, _event("opened", episode, entity), key=entity.encode()
        )
        firing = await _poll(alertmanager_url, episode, want_present=True)
        assert len(firing) == 1, firing
        assert firing[0]["labels"] == {
            "alertname": "TsguardAnomaly",
            "entity": entity,
            "metric": "temperature",
            "severity": "high",
            "detector": "robust_seasonal",
            "kind": "value",
            "episode_id": episode,
        }
        assert firing[0]["annotations"]["explanation"] == "6 sigma above"
        assert (
            firing[0]["annotations"]["value"] == "97.2" and firing[0]["status"]["state"] == "active"
        )
        resolved = _event("resolved", episode, entity, ended_at=iso(time.time()))
        await producer.send_and_wait(s.topic_anomalies, resolved, key=entity.encode())
        # Alertmanager lists only alerts whose endsAt is still ahead: a resolved one drops out.
        assert await _poll(alertmanager_url, episode, want_present=False) == []
    letters = [v for _, v in await consume(s, s.topic_deadletter, 1)]
    assert len(letters) == 1 and letters[0]["reason"] == "invalid_json"
    deadletter_schema.validate(letters[0])


async def test_a_forwarder_reads_every_codec_and_skips_a_batch_it_cannot_unpack(
    settings: Settings,
    fresh_topic: Any,
    alertmanager_url: str,
    deadletter_schema: Draft202012Validator,
) -> None:
    """An lz4 batch (a Java producer's usual codec) stopped every consumer without the
    lz4 library, and a small gzip batch could unpack to gigabytes."""
    s = await private(settings, fresh_topic, "anomalies", "deadletter")
    s = s.model_copy(update={"kafka_max_batch_bytes": 1024 * 1024})
    episode, entity = f"ep-{uuid.uuid4().hex[:16]}", f"it/pump-{uuid.uuid4().hex[:6]}"
    async with _forwarding(s, alertmanager_url) as (_, forwarder):
        for codec, value in [
            ("lz4", _event("opened", episode, entity)),
            ("gzip", b" " * (2 * 1024 * 1024)),
            ("zstd", _event("resolved", episode, entity, ended_at=iso(time.time()))),
        ]:
            producer = AIOKafkaProducer(
                **s.kafka_client_kwargs(), compression_type=codec, max_request_size=4 << 20
            )
            await producer.start()
            try:
                await producer.send_and_wait(s.topic_anomalies, value, key=entity.encode())
            finally:
                await producer.stop()
            if codec == "lz4":
                assert len(await _poll(alertmanager_url, episode, want_present=True)) == 1
        assert await _poll(alertmanager_url, episode, want_present=False) == []
        assert not forwarder.done()
    letters = [v for _, v in await consume(s, s.topic_deadletter, 1)]
    assert len(letters) == 1 and letters[0]["reason"] == "unreadable_batch", letters
    assert letters[0]["detail"].startswith("a gzip batch of offsets")
    deadletter_schema.validate(letters[0])


async def test_a_forwarder_fires_again_the_episodes_the_database_has_open(
    settings: Settings, fresh_topic: Any, alertmanager_url: str, fresh_schema: FreshSchema
) -> None:
    """Alertmanager keeps alerts in memory only, and a forwarder's group has committed the
    opened events of episodes still open: after both restarted together (a host's
    reboot), nothing fired for them again until they resolved. Here Alertmanager holds
    no alert of the episodes and the topic no event of them; the database has one open
    and one resolved."""
    migrate(fresh_schema.conninfo)
    s = (await private(settings, fresh_topic, "anomalies", "deadletter")).model_copy(
        update={"pg_dsn": SecretStr(fresh_schema.conninfo)}
    )
    tag = uuid.uuid4().hex[:12]
    still, over, entity = f"ep-open-{tag}", f"ep-over-{tag}", f"it/pump-{tag}"
    with psycopg.connect(fresh_schema.conninfo, autocommit=True) as conn:
        for episode, status in ((still, "open"), (over, "resolved")):
            conn.execute(
                "INSERT INTO anomalies (id, entity, metric, kind, status, started_at, last_ts,"
                " score, peak_score, severity, detector, explanation)"
                " VALUES (%s, %s, 'temperature', 'value', %s, now() - interval '2 hours',"
                " now(), 0.999, 0.9999, 'high', 'robust_seasonal', 'stuck high')",
                (episode, entity, status),
            )
    told: list[str] = []
    async with _forwarding(s, alertmanager_url, report=told.append) as (producer, _):
        firing = await _poll(alertmanager_url, still, want_present=True)
        assert len(firing) == 1, (firing, told)
        assert firing[0]["labels"]["entity"] == entity
        assert firing[0]["annotations"]["explanation"] == "stuck high"
        assert epoch(firing[0]["startsAt"]) < time.time() - 7000  # when the episode began
        assert await _alerts(alertmanager_url, over) == []
        assert any("1 open episodes from the database" in line for line in told), told
        # its resolved, when the worker publishes it, ends the alert
        resolved = _event("resolved", still, entity, ended_at=iso(time.time()))
        await producer.send_and_wait(s.topic_anomalies, resolved, key=entity.encode())
        assert await _poll(alertmanager_url, still, want_present=False) == []


async def test_a_forwarder_started_while_kafka_is_away_waits_for_it(
    settings: Settings, fresh_topic: Any, alertmanager_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started while Kafka was away, the forwarder exited 1 at once (review rev66b),
    though a Kafka lost while it runs is waited for. Kafka's absence is simulated (the
    first two starts of its consumer fail as an unreachable bootstrap makes them)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaConnectionError

    real_start = AIOKafkaConsumer.start
    refused: list[int] = []

    async def start(self: AIOKafkaConsumer) -> None:
        if len(refused) < 2:
            refused.append(1)
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")
        await real_start(self)

    monkeypatch.setattr(AIOKafkaConsumer, "start", start)
    s = await private(settings, fresh_topic, "anomalies", "deadletter")
    episode, entity = f"ep-{uuid.uuid4().hex[:16]}", f"it/pump-{uuid.uuid4().hex[:6]}"
    told: list[str] = []
    async with _forwarding(s, alertmanager_url, backoff_s=0.05, report=told.append) as (
        producer,
        forwarder,
    ):
        await producer.send_and_wait(
            s.topic_anomalies, _event("opened", episode, entity), key=entity.encode()
        )
        firing = await _poll(alertmanager_url, episode, want_present=True)
        assert len(firing) == 1, (firing, told)
        assert not forwarder.done()
        assert len(refused) == 2 and any("Kafka unavailable" in line for line in told), told
