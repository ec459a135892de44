"""The Faust application: topics, the state table and short agents.

Built by :func:`create_app` from the settings; there is no global app. The
agents only move records between Kafka and :class:`WorkerRuntime`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.sink.postgres import PostgresSink
from stream_app.core import EngineConfig
from stream_app.metrics import Metrics
from stream_app.settings import Settings
from stream_app.worker.batching import EventBatcher, OffsetGuard
from stream_app.worker.consumer import RecordFeed, WorkerApp
from stream_app.worker.control import ControlWatcher
from stream_app.worker.decode import ReadingDecoder
from stream_app.worker.runtime import WorkerRuntime
from stream_app.worker.scoring import EntityStates, ReadingScorer
from stream_app.worker.topics import end_offsets, start_offsets
from stream_app.worker.watchdog import STALL_EXIT_CODE, StallWatchdog

log = logging.getLogger(__name__)

STATE_TABLE = "series-state"


def broker_credentials(settings: Settings) -> Any:
    """Faust credentials from the same settings every other Kafka client uses."""
    kwargs = settings.kafka_client_kwargs()
    ssl_context = kwargs.get("ssl_context")
    if settings.kafka_security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kwargs["sasl_plain_username"],
            password=kwargs["sasl_plain_password"],
            ssl_context=ssl_context,
            mechanism=kwargs["sasl_mechanism"],
        )
    if ssl_context is not None:
        return faust.SSLCredentials(ssl_context)
    return None


def create_app(settings: Settings, metrics: Metrics, base_rules: dict[str, Any]) -> faust.App:
    """A worker app; ``tsguard worker`` runs it, tests run it in a subprocess."""
    brokers = [f"kafka://{h.strip()}" for h in settings.kafka_bootstrap_servers.split(",")]
    datadir = Path(settings.worker_data_dir or (settings.stack_dir / "worker-data"))
    datadir.mkdir(parents=True, exist_ok=True)
    app = WorkerApp(
        settings.consumer_group,
        broker=brokers,
        broker_credentials=broker_credentials(settings),
        store=settings.worker_store,
        datadir=str(Path(datadir) / settings.worker_id),
        web_enabled=True,
        web_host=settings.worker_web_host,
        web_bind=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_tables_enabled=False,  # it would serve model state to anyone
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=settings.worker_session_timeout_s / 10,
        consumer_group_instance_id=settings.worker_group_instance_id or None,
        # Standby copies were seen to leave a worker that takes over a killed
        # peer's partitions recovered but not consuming; recovery replays the
        # changelog instead.
        table_standby_replicas=0,
        consumer_max_fetch_size=8 * 1024 * 1024,
    )
    readings = app.topic(settings.topic_readings, key_serializer="raw", value_serializer="raw")
    feedback = app.topic(settings.topic_feedback, key_serializer="raw", value_serializer="raw")
    anomalies = app.topic(settings.topic_anomalies, key_serializer="raw", value_serializer="raw")
    deadletters = app.topic(settings.topic_deadletter, key_serializer="raw", value_serializer="raw")
    table = app.Table(
        STATE_TABLE,
        default=None,
        key_type=bytes,  # raw bytes in the store and in changelog recovery too
        value_type=bytes,
        schema=faust.Schema(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        ),
        partitions=settings.topic_partitions,
        use_partitioner=True,  # written from a take() batch; keys hash like the readings'
    )

    def load(entity: str) -> bytes | None:
        blob = table.get(entity.encode())
        return blob if isinstance(blob, bytes) else None

    config = EngineConfig.from_mapping(base_rules)
    sink = PostgresSink(
        settings.pg_conninfo(), min_size=settings.pg_pool_min, max_size=settings.pg_pool_max
    )
    scorer = ReadingScorer(
        EntityStates(config, load),
        ReadingDecoder(max_bytes=settings.max_message_bytes),
        max_deadletter_payload=settings.deadletter_max_payload_bytes,
        topic=settings.topic_readings,
    )
    runtime = WorkerRuntime(scorer, sink, metrics, checkpoint_s=settings.worker_checkpoint_s)
    runtime.table = table
    sink._on_error = runtime.record_sink_error  # wired after construction

    async def send_event(key: bytes | None, value: bytes) -> None:
        await anomalies.send(key=key, value=value)

    async def send_deadletter(key: bytes | None, value: bytes) -> None:
        await deadletters.send(key=key, value=value)

    runtime.send_event = send_event
    runtime.send_deadletter = send_deadletter
    guard = OffsetGuard()
    lookups: set[asyncio.Task[None]] = set()

    async def ends(keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return await end_offsets(settings, keys)

    watchdog = StallWatchdog(settings.worker_stall_timeout_s, ends)
    runtime.on_progress = watchdog.progressed
    control = ControlWatcher(settings, base_rules, on_change=scorer.states.reconfigure)

    def fatal(exc: BaseException) -> None:
        log.error(
            "batch failed after scoring (%r); exiting (code %d) to restart", exc, STALL_EXIT_CODE
        )
        logging.shutdown()
        os._exit(STALL_EXIT_CODE)

    # The readings topic's records bypass Faust's per-event stream: the
    # consumer hands each fetch to the feed (see consumer.py).
    feed = RecordFeed({settings.topic_readings})
    app.tsguard_feed = feed
    app.tsguard_fetch_max_wait_ms = settings.worker_fetch_max_wait_ms

    async def seek(tp: Any, offset: int) -> None:
        await app.consumer.seek(tp, offset)

    batcher = EventBatcher(
        runtime,
        size=settings.worker_batch_size,
        idle_every=settings.worker_idle_flush_s,
        ack=lambda record: app.consumer.ack(record),
        generation=lambda: int(app.consumer_generation_id),
        guard=guard,
        seek=seek,
        on_fatal=fatal,
        max_inflight=settings.worker_max_inflight,
    )

    @app.agent(readings, name="score-readings")
    async def score_readings(stream: Any) -> None:
        # Subscribes the topic (and co-partitions the state table with it);
        # its records arrive through the feed, never through this stream.
        await batcher.run(feed)

    @app.agent(feedback, name="operator-feedback")
    async def operator_feedback(stream: Any) -> None:
        async for value in stream:
            await runtime.handle_feedback(value)

    async def on_revoked(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        runtime.forget()
        batcher.revoked()
        feed.clear()

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]  # mode types sync receivers only

    async def on_assigned(sender: Any, assigned: Any, signal: Any = None, **kwargs: Any) -> None:
        mine = [(tp.topic, tp.partition) for tp in assigned if tp.topic == settings.topic_readings]
        metrics.assigned_partitions.set(len(mine))
        guard.assigned()
        watchdog.progressed()
        # Looked up outside the rebalance callback, which should stay short; the
        # records the guard protects arrive only after table recovery anyway.
        lookups.add(asyncio.create_task(_expect(mine)))

    async def _expect(mine: list[tuple[str, int]]) -> None:
        try:
            guard.expect(await start_offsets(settings, mine))
        except Exception as exc:  # the guard then only admits; the watchdog still watches
            log.warning("could not read committed offsets: %s", exc)
        finally:
            lookups.discard(asyncio.current_task())  # type: ignore[arg-type]

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def watch_for_stall() -> None:
        if settings.worker_stall_timeout_s <= 0:
            return
        if runtime.sink_retrying:
            watchdog.progressed()  # waiting for the database is backpressure, not a stall
            return
        reason = await watchdog.stalled(guard.next_offsets())
        if reason is not None:
            log.error(
                "worker stalled: %s; exiting (code %d) to be restarted", reason, STALL_EXIT_CODE
            )
            logging.shutdown()
            # A hard exit: Faust's own shutdown can hang in this state, and nothing
            # is lost since offsets are committed only after a batch is durable.
            os._exit(STALL_EXIT_CODE)

    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]

    @app.task  # type: ignore[untyped-decorator]
    async def start_io() -> None:
        # Faust's terminal spinner leaves the root logger at DEBUG, so every
        # per-message debug call of aiokafka and Faust built a log record.
        for name in ("aiokafka", "faust", "mode"):
            logging.getLogger(name).setLevel(settings.log_level)
        await sink.open()
        await control.start()

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def report_lag() -> None:
        for tp in app.consumer.assignment():
            if tp.topic != settings.topic_readings:
                continue
            position = await app.consumer.position(tp)
            highwater = app.consumer.highwater(tp)
            if position is not None and highwater is not None:
                metrics.consumer_lag.labels(str(tp.partition)).set(max(highwater - position, 0))

    @app.page("/metrics")
    async def metrics_page(self: Any, request: Any) -> Any:
        # aiohttp wants the charset apart from the media type.
        media_type = CONTENT_TYPE_LATEST.split(";")[0]
        return self.bytes(generate_latest(metrics.registry), content_type=media_type)

    app.tsguard_runtime = runtime  # type: ignore[attr-defined]
    app.tsguard_close = (control.stop, sink.close)  # type: ignore[attr-defined]
    _ = (score_readings, operator_feedback, start_io, report_lag, metrics_page, watch_for_stall)
    return app
