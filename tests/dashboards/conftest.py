"""Live fixtures for the dashboard tests: demo data through the real pipeline, live metrics.

``demo_db``: a private schema, migrated (with the read-only Grafana role), filled
by a real ``tsguard worker`` consuming generated readings from the real Kafka
(the lead's pipeline harness). Panels then query it as ``tsguard_ro``.

``live_metrics``: the Prometheus of the stack scraping the real worker of
``demo_db`` on 127.0.0.1:16067, the settings' worker port + 1 (``METRICS_FROM_WORKER``); with it off, the real
``stream_app.metrics`` registry is served from the test instead, with
observations recorded continuously (a fallback for debugging the dashboards
without a worker).
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, start_http_server
from psycopg import sql
from psycopg.conninfo import make_conninfo

from stream_app.demo import _stop
from stream_app.metrics import build_metrics
from stream_app.settings import Settings
from stream_app.storage import migrate
from tests.integration import conftest as _integration
from tests.integration.pipeline.harness import TSGUARD, make_pipeline, wait_for
from tests.integration.pipeline.streams import labelled_stream

# The integration fixtures, reused by name (pytest finds fixtures assigned here).
settings = _integration.settings
pg_conninfo = _integration.pg_conninfo
kafka_bootstrap = _integration.kafka_bootstrap
prometheus_url = _integration.prometheus_url
unreachable = _integration.unreachable


def metrics_port(settings: Settings) -> int:
    """The second worker port the stack's Prometheus scrapes (16067 by default)."""
    return settings.worker_web_port + 1


METRICS_FROM_WORKER = True
POINTS = 720  # 12 hours at one reading a minute: several 1 h and many 5 min buckets
ENTITIES = 4


@dataclass(frozen=True)
class DemoDb:
    schema: str
    conninfo: str  # tsguard_ro when it can log in (else the owner), schema on the search path
    readonly: str  # always the tsguard_ro role (test_grafana_role_* checks it separately)
    owner: str  # the schema's owner (what migrated it)
    start: datetime
    end: datetime
    points: int  # observations written
    garbage: int  # messages dead-lettered


@pytest.fixture(scope="session")
def demo_db(
    settings: Settings,
    pg_conninfo: str,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DemoDb]:
    schema = f"dash_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    owner = make_conninfo(pg_conninfo, options=f"-c search_path={schema}")
    password = settings.pg_readonly_password.get_secret_value()
    try:
        migrate(owner, readonly_password=password)
        yield _fill(settings, schema, owner, password, tmp_path_factory.mktemp("dash-pipeline"))
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _fill(settings: Settings, schema: str, owner: str, password: str, workdir: Path) -> DemoDb:
    """Generated readings ending ten minutes ago -> Kafka -> a real worker -> the schema."""
    end_ts = (int(time.time()) // 60) * 60 - 600
    start_ts = float(end_ts - (POINTS - 1) * 60)
    readings, _ = labelled_stream(entities=ENTITIES, points=POINTS, start_ts=start_ts)
    expected = sum(len(r["metrics"]) for r in readings)
    pipe = make_pipeline(settings, owner, workdir)
    try:
        worker = pipe.start_worker("dash-w1")
        pipe.produce_readings(readings)
        garbage = pipe.produce([(b"garbage", b"{not json"), (b"garbage", b'{"entity": 1}')])
        wait_for(
            lambda: (
                pipe.count("SELECT count(*) FROM observations") >= expected
                or (worker.log_tail() and not worker.alive())
            ),
            timeout=180,
            what=f"{expected} observations from the worker",
        )
        assert worker.alive(), worker.log_tail()
        assert pipe.count("SELECT count(*) FROM observations") == expected
        assert pipe.count("SELECT count(*) FROM anomalies") > 0, worker.log_tail()
        # What the API does when an operator acknowledges and labels an episode.
        pipe.sql(
            "UPDATE anomalies SET acknowledged_at = now(), acknowledged_by = 'ops',"
            " ack_comment = 'looking', label = 'true_positive', labelled_by = 'ops',"
            " labelled_at = now() WHERE id = (SELECT min(id) FROM anomalies) RETURNING id"
        )
        pipe.close()
    except BaseException:
        pipe.close()
        raise
    readonly = make_conninfo(
        owner, user="tsguard_ro", password=password, options=f"-c search_path={schema}"
    )
    try:
        psycopg.connect(readonly, connect_timeout=5).close()
        conninfo = readonly
    except psycopg.OperationalError:
        conninfo = owner  # queries still run read-only; the role test reports the gap
    return DemoDb(
        schema,
        conninfo,
        readonly,
        owner,
        datetime.fromtimestamp(start_ts, UTC),
        datetime.fromtimestamp(end_ts, UTC),
        expected,
        garbage,
    )


# --- metrics that the stack's Prometheus scrapes ---------------------------------


def _record_forever(stop: threading.Event, registry: CollectorRegistry) -> None:
    """A worker's worth of activity, recorded until ``stop``: every family gets samples."""
    m = build_metrics(registry)
    tick = 0
    while not stop.wait(0.1):
        tick += 1
        m.readings.labels(outcome="scored").inc(40)
        m.readings.labels(outcome="deadlettered").inc(1)
        m.points.labels(status="ok").inc(80)
        m.deadletters.labels(reason="invalid_json").inc(1)
        m.episode_events.labels(event="opened", severity="high", kind="value").inc()
        m.scoring_latency.observe(0.002 + (tick % 10) * 0.001)
        m.emit_latency.observe(0.01 + (tick % 5) * 0.01)
        m.batch_size.observe(40)
        m.sink_latency.observe(0.004)
        m.sink_rows.labels(table="observations").inc(80)
        m.sink_errors.labels(error="OperationalError").inc(tick % 2)
        m.series_tracked.set(8)
        m.state_bytes.set(8 * 1200)
        m.open_episodes.set(2)
        for partition in range(4):
            m.consumer_lag.labels(partition=str(partition)).set(tick % 7 * (partition + 1))


def _feed_live(stop: threading.Event, pipe: Any) -> None:
    """Live readings (event time = now, with ``ingested_at``) into the kept worker.

    Every rate and latency panel then has fresh observations of a real worker:
    a steady series with a spike every 40 readings, so episodes keep opening
    and resolving, plus now and then a message the worker dead-letters.
    """

    async def feed() -> None:
        producer = AIOKafkaProducer(**pipe.settings.kafka_client_kwargs())
        await producer.start()
        try:
            i = 0
            while not stop.is_set():
                now = time.time()
                value = 20.0 + (i % 5) * 0.1 + (30.0 if i > 60 and i % 40 == 0 else 0.0)
                reading = {
                    "entity": "live/dev-0",
                    "ts": now,
                    "ingested_at": now,
                    "metrics": {"x": value},
                }
                await producer.send(
                    pipe.settings.topic_readings, orjson.dumps(reading), key=b"live/dev-0"
                )
                if i % 25 == 0:
                    await producer.send(pipe.settings.topic_readings, b"{broken", key=b"live/dev-0")
                i += 1
                await asyncio.sleep(0.01 if i < 80 else 0.1)
        finally:
            await producer.stop()

    asyncio.run(feed())


def _start_connector(
    args: list[str], port: int, env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [TSGUARD, *args, "--metrics-port", str(port), "--metrics-host", "127.0.0.1"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _serves(port: int, connector: str) -> bool:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return False
    return f'tsguard_connector_messages_total{{connector="{connector}"' in text


@pytest.fixture(scope="module")  # the port is free again for later modules
def live_metrics(
    prometheus_url: str,
    settings: Settings,
    pg_conninfo: str,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A target on 127.0.0.1:<metrics_port> that Prometheus scrapes; yields the Prometheus URL."""
    port = metrics_port(settings)
    if METRICS_FROM_WORKER:
        # A real worker of its own (own topics and schema, so the SQL tests' counts
        # stay exact), fed live readings while the PromQL tests run.
        schema = f"dashlive_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        owner = make_conninfo(pg_conninfo, options=f"-c search_path={schema}")
        pipe = make_pipeline(settings, owner, tmp_path_factory.mktemp("dash-live"))
        stop = threading.Event()
        feeder = threading.Thread(target=_feed_live, args=(stop, pipe), daemon=True)
        connectors: list[subprocess.Popen[bytes]] = []
        try:
            worker = pipe.start_worker("dash-live", port=port)
            worker.wait_ready()
            # a real forwarder and a real MQTT bridge on the ports the stack's Prometheus
            # scrapes as the jobs tsguard-forwarder and tsguard-mqtt-bridge: the rules on
            # the connectors' counters read their series. The forwarder's Alertmanager is
            # nowhere (it retries), so no alert of it reaches the stack's, which other
            # tests read; the bridge listens on topics of its own under its own client id
            tag = uuid.uuid4().hex[:12]
            for args, metrics_port_, log in (
                (["forward", "alertmanager", "--url", "http://127.0.0.1:9"],
                 settings.stack_forwarder_metrics_port, "forwarder.log"),
                (["bridge", "mqtt", "--topic-pattern", f"dashlive-{tag}/+device/+metric",
                  "--client-id", f"dash-live-{tag}"],
                 settings.stack_bridge_metrics_port, "bridge.log"),
            ):  # fmt: skip
                connectors.append(
                    _start_connector(args, metrics_port_, pipe.env, pipe.workdir / log)
                )
            feeder.start()
            wait_for(
                lambda: worker.metric("tsguard_ingest_to_anomaly_seconds_count") > 0,
                timeout=60,
                what="the live worker emitting anomaly events",
            )
            wait_for(
                lambda: _serves(settings.stack_forwarder_metrics_port, "alertmanager-forwarder"),
                timeout=60,
                what="the live forwarder's /metrics",
            )
            wait_for(
                lambda: _serves(settings.stack_bridge_metrics_port, "mqtt-bridge"),
                timeout=60,
                what="the live MQTT bridge's /metrics",
            )
            yield prometheus_url
        finally:
            stop.set()
            for process in connectors:
                _stop(process)  # SIGTERM, then SIGKILL, as the demo stops its processes
            if feeder.is_alive():
                feeder.join(timeout=10)
            pipe.close()
            with psycopg.connect(pg_conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        return
    registry = CollectorRegistry()
    stop = threading.Event()
    recorder = threading.Thread(target=_record_forever, args=(stop, registry), daemon=True)
    try:
        server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    except OSError as exc:
        unreachable(f"port {port} for the metrics target", repr(exc))
    recorder.start()
    try:
        yield prometheus_url
    finally:
        stop.set()
        recorder.join(timeout=5)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
