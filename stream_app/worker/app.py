"""The streaming worker: one object that owns the Faust app and what it drives.

:class:`Worker` builds everything from the settings in its constructor (the
Faust app, the state table, the scorer, the sink, the batcher, the guards,
the control watcher); nothing is attached from outside afterwards. The Faust
agents only move records between Kafka and :class:`WorkerRuntime`. The app
calls back into the worker when it starts (the sink opens before any record
is read) and when it stops (the batch in hand is finished and made durable,
the state saved, the offsets committed, then the sink and the watcher are
closed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.sink.postgres import PostgresSink
from stream_app.core import EngineConfig
from stream_app.metrics import Metrics
from stream_app.settings import Settings
from stream_app.worker.batching import EventBatcher
from stream_app.worker.control import ControlWatcher
from stream_app.worker.decode import ReadingDecoder
from stream_app.worker.faust_compat import (
    STALL_EXIT_CODE,
    OffsetGuard,
    StallWatchdog,
    WorkerApp,
    end_offsets,
    start_offsets,
)
from stream_app.worker.feed import RecordFeed
from stream_app.worker.runtime import WorkerRuntime
from stream_app.worker.scoring import EntityStates, ReadingScorer

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


def _faust_app(settings: Settings, feed: RecordFeed, lifecycle: Any) -> WorkerApp:
    brokers = [f"kafka://{h.strip()}" for h in settings.kafka_bootstrap_servers.split(",")]
    datadir = Path(settings.worker_data_dir or (settings.stack_dir / "worker-data"))
    datadir.mkdir(parents=True, exist_ok=True)
    return WorkerApp(
        settings.consumer_group,
        feed=feed,
        fetch_max_wait_ms=settings.worker_fetch_max_wait_ms,
        lifecycle=lifecycle,
        broker=brokers,
        broker_credentials=broker_credentials(settings),
        store=settings.worker_store,
        datadir=str(datadir / settings.worker_id),
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


def _hard_exit() -> None:
    log.error("shutdown: Faust did not stop in time; exiting")
    logging.shutdown()
    os._exit(0)  # offsets are committed only for durable batches: nothing is lost


class Worker:
    """One streaming worker; ``tsguard worker`` runs :attr:`app` with ``faust.Worker``."""

    def __init__(self, settings: Settings, metrics: Metrics, base_rules: dict[str, Any]) -> None:
        self.settings = settings
        self.metrics = metrics
        # The readings topic's records bypass Faust's per-event stream: the
        # consumer hands each fetch to the feed (see faust_compat/consumer.py).
        self.feed = RecordFeed({settings.topic_readings})
        self.app = app = _faust_app(settings, self.feed, self)
        self.readings = app.topic(
            settings.topic_readings, key_serializer="raw", value_serializer="raw"
        )
        self.feedback = app.topic(
            settings.topic_feedback, key_serializer="raw", value_serializer="raw"
        )
        anomalies = app.topic(
            settings.topic_anomalies, key_serializer="raw", value_serializer="raw"
        )
        deadletters = app.topic(
            settings.topic_deadletter, key_serializer="raw", value_serializer="raw"
        )
        self.table = app.Table(
            STATE_TABLE,
            default=None,
            key_type=bytes,  # raw bytes in the store and in changelog recovery too
            value_type=bytes,
            schema=faust.Schema(
                key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
            ),
            partitions=settings.topic_partitions,
            use_partitioner=True,  # written from a batch; keys hash like the readings'
        )
        self.sink = PostgresSink(
            settings.pg_conninfo(),
            min_size=settings.pg_pool_min,
            max_size=settings.pg_pool_max,
            on_error=self._sink_error,
        )
        self.scorer = ReadingScorer(
            EntityStates(EngineConfig.from_mapping(base_rules), self._load_state),
            ReadingDecoder(max_bytes=settings.max_message_bytes),
            max_deadletter_payload=settings.deadletter_max_payload_bytes,
            topic=settings.topic_readings,
        )
        self.watchdog = StallWatchdog(settings.worker_stall_timeout_s, self._end_offsets)
        self.runtime = WorkerRuntime(
            self.scorer,
            self.sink,
            metrics,
            table=self.table,
            send_event=lambda key, value: anomalies.send(key=key, value=value),
            send_deadletter=lambda key, value: deadletters.send(key=key, value=value),
            on_progress=self.watchdog.progressed,
            checkpoint_s=settings.worker_checkpoint_s,
        )
        self.guard = OffsetGuard()
        self.batcher = EventBatcher(
            self.runtime,
            size=settings.worker_batch_size,
            idle_every=settings.worker_idle_flush_s,
            ack=lambda record: app.consumer.ack(record),
            generation=lambda: int(app.consumer_generation_id),
            guard=self.guard,
            seek=lambda tp, offset: app.consumer.seek(tp, offset),
            on_fatal=self._fatal,
            max_inflight=settings.worker_max_inflight,
        )
        self.control = ControlWatcher(
            settings, base_rules, on_change=self.scorer.states.reconfigure
        )
        self._lookups: set[asyncio.Task[None]] = set()
        self._register()

    # --- wiring into Faust ------------------------------------------------

    def _register(self) -> None:
        app = self.app
        app.agent(self.readings, name="score-readings")(self._score_readings)
        app.agent(self.feedback, name="operator-feedback")(self._operator_feedback)
        app.timer(interval=5.0)(self._watch_for_stall)
        app.timer(interval=5.0)(self._report_lag)
        if self.settings.retention_interval_s > 0:
            app.timer(interval=self.settings.retention_interval_s)(self._apply_retention)
        registry = self.metrics.registry

        async def metrics_page(view: Any, request: Any) -> Any:
            # aiohttp wants the charset apart from the media type.
            media_type = CONTENT_TYPE_LATEST.split(";")[0]
            return view.bytes(generate_latest(registry), content_type=media_type)

        app.page("/metrics")(metrics_page)  # a function: Faust makes it a view's method
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    async def _score_readings(self, stream: Any) -> None:
        # Subscribes the topic (and co-partitions the state table with it);
        # its records arrive through the feed, never through this stream.
        await self.batcher.run(self.feed)

    async def _operator_feedback(self, stream: Any) -> None:
        async for value in stream:
            await self.runtime.handle_feedback(value)

    # --- lifecycle (called by WorkerApp) ----------------------------------

    async def on_app_start(self) -> None:
        # Faust's terminal spinner leaves the root logger at DEBUG, so every
        # per-message debug call of aiokafka and Faust built a log record.
        for name in ("aiokafka", "faust", "mode"):
            logging.getLogger(name).setLevel(self.settings.log_level)
        await self.sink.open()
        await self.control.start()

    async def on_app_stop(self) -> None:
        """Before Faust stops its consumer: the batch in hand durable, state saved, committed.

        Bounded by ``worker_shutdown_timeout_s``; when that runs out, what is not
        committed is read again by the next owner (nothing is lost).
        """
        # A backstop in its own thread: Faust's shutdown after the drain has been
        # seen to hang (faust issues #175, #532), and a stopping worker must end.
        backstop = threading.Timer(self.settings.worker_shutdown_timeout_s + 10, _hard_exit)
        backstop.daemon = True
        backstop.start()
        try:
            await asyncio.wait_for(self._drain(), self.settings.worker_shutdown_timeout_s)
        except TimeoutError:
            log.warning(
                "shutdown: not drained within %.0f s; uncommitted readings will be read again",
                self.settings.worker_shutdown_timeout_s,
            )

    async def _drain(self) -> None:
        await self.batcher.drain()
        # The state's changelog records out before the offsets they cover.
        await self.app.producer.flush()
        for _ in range(3):
            # False when a periodic commit was under way (Faust then only waits
            # for it) or when there is nothing left to commit.
            if await self.app.consumer.commit():
                break
        log.info("shutdown: batches durable, state saved, offsets committed")

    async def on_app_stopped(self) -> None:
        await self.control.stop()
        await self.sink.close()

    # --- callbacks ----------------------------------------------------------

    def _load_state(self, entity: str) -> bytes | None:
        blob = self.table.get(entity.encode())
        return blob if isinstance(blob, bytes) else None

    def _sink_error(self, exc: BaseException) -> None:
        self.runtime.record_sink_error(exc)

    async def _end_offsets(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return await end_offsets(self.settings, keys)

    def _fatal(self, exc: BaseException) -> None:
        log.error(
            "batch failed after scoring (%r); exiting (code %d) to restart", exc, STALL_EXIT_CODE
        )
        logging.shutdown()
        os._exit(STALL_EXIT_CODE)

    async def _on_revoked(self, sender: Any, *args: Any, signal: Any = None, **kw: Any) -> None:
        self.runtime.forget()
        self.batcher.revoked()
        self.feed.clear()

    async def _on_assigned(
        self, sender: Any, assigned: Any, signal: Any = None, **kwargs: Any
    ) -> None:
        topic = self.settings.topic_readings
        mine = [(tp.topic, tp.partition) for tp in assigned if tp.topic == topic]
        self.metrics.assigned_partitions.set(len(mine))
        self.guard.assigned()
        self.watchdog.progressed()
        # Looked up outside the rebalance callback, which should stay short; the
        # records the guard protects arrive only after table recovery anyway.
        task = asyncio.create_task(self._expect(mine))
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _expect(self, mine: list[tuple[str, int]]) -> None:
        try:
            self.guard.expect(await start_offsets(self.settings, mine))
        except Exception as exc:  # the guard then only admits; the watchdog still watches
            log.warning("could not read committed offsets: %s", exc)

    async def _watch_for_stall(self) -> None:
        if self.settings.worker_stall_timeout_s <= 0:
            return
        if self.runtime.sink_retrying:
            self.watchdog.progressed()  # waiting for the database is backpressure, not a stall
            return
        reason = await self.watchdog.stalled(self.guard.next_offsets())
        if reason is not None:
            log.error(
                "worker stalled: %s; exiting (code %d) to be restarted", reason, STALL_EXIT_CODE
            )
            logging.shutdown()
            # A hard exit: Faust's own shutdown can hang in this state, and nothing
            # is lost since offsets are committed only after a batch is durable.
            os._exit(STALL_EXIT_CODE)

    async def _apply_retention(self) -> None:
        days = self.settings.retention_days
        try:
            removed = await self.sink.apply_retention(days)
        except Exception as exc:  # the next round tries again; ingest goes on meanwhile
            log.warning("retention: failed (%s: %s)", type(exc).__name__, exc)
            return
        if removed is not None:
            log.info("retention: %d observations older than %d days deleted", removed, days)

    async def _report_lag(self) -> None:
        consumer = self.app.consumer
        for tp in consumer.assignment():
            if tp.topic != self.settings.topic_readings:
                continue
            position = await consumer.position(tp)
            highwater = consumer.highwater(tp)
            if position is not None and highwater is not None:
                lag = max(highwater - position, 0)
                self.metrics.consumer_lag.labels(str(tp.partition)).set(lag)
