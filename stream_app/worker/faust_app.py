"""The Faust app of a worker: broker options, topics, the state table, adapters.

Everything here is plain Faust configuration; the workarounds for Faust's
bugs are in :mod:`stream_app.worker.faust_compat`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from stream_app.settings import Settings
from stream_app.worker.faust_compat import WorkerApp
from stream_app.worker.feed import Record, RecordFeed

STATE_TABLE = "series-state"
# How often Faust commits the offsets acked (a record is acked once the state that
# reflects it is saved): with the checkpoint interval, what a kill -9 reads again.
COMMIT_INTERVAL_S = 1.0


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


def build_faust_app(settings: Settings, feed: RecordFeed, lifecycle: Any) -> WorkerApp:
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
        broker_commit_interval=COMMIT_INTERVAL_S,
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=settings.worker_session_timeout_s / 10,
        # Standby copies were seen to leave a worker that takes over a killed
        # peer's partitions recovered but not consuming; recovery replays the
        # changelog instead.
        table_standby_replicas=0,
        consumer_max_fetch_size=8 * 1024 * 1024,
        # Records handed over per poll (a fetch's rest waits in the client, unpacked
        # no further than the records taken): without a cap a poll took a whole fetch,
        # and 2,000,000 empty records in a few compressed batches held 470 MB at once.
        broker_max_poll_records=max_poll_records(settings),
        # Events, dead letters and the state changelog share the app's producer: with
        # Kafka's 16 kB batches sent as soon as they were made, a flood of malformed
        # readings was dead-lettered at 3,000 a second (7,700 now), the readings behind
        # it waiting. 512 kB stays under a topic's default 1 MB message limit.
        producer_max_batch_size=512 * 1024,
        producer_linger=0.005,
    )


def max_poll_records(settings: Settings) -> int:
    """Five batches' worth, at least 10,000: polls stay large enough not to cost."""
    return max(10_000, 5 * settings.worker_batch_size)


def raw_topic(app: faust.App, name: str) -> Any:
    """A topic of raw bytes (keys and values are decoded by tsguard, not Faust)."""
    return app.topic(name, key_serializer="raw", value_serializer="raw")


def state_table(app: faust.App, settings: Settings) -> Any:
    """The model-state table: entity -> packed state, changelog-backed."""
    return app.Table(
        STATE_TABLE,
        default=None,
        key_type=bytes,  # raw bytes in the store and in changelog recovery too
        value_type=bytes,
        schema=faust.Schema(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        ),
        partitions=settings.topic_partitions,
        use_partitioner=True,  # written from a batch; keys hash like the readings'
        extra_topic_configs=changelog_configs(settings),
    )


def changelog_configs(settings: Settings) -> dict[str, str]:
    """Topic configs of the state changelog (Faust makes it compacted).

    Every checkpoint writes each changed entity's state again, and Kafka compacts
    only closed segments once their dirty share passes ``min.cleanable.dirty.ratio``:
    with Kafka's default segments (1 GiB or 7 days) a worker restarted with the
    memory store replays up to a GiB of superseded states. Small segments that roll
    at least hourly and a lower dirty ratio keep the replay near one record per entity.
    """
    return {
        "segment.bytes": str(settings.worker_changelog_segment_bytes),
        "segment.ms": str(settings.worker_changelog_segment_ms),
        "min.cleanable.dirty.ratio": "0.2",
    }


class FaustConsumer:
    """The core's consumer handle on the app's consumer."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    def ack(self, record: Record) -> Any:
        # Faust's ack takes its own Message type; it only reads the fields
        # Record has (see faust_compat/consumer.py).
        return self._app.consumer.ack(record)  # type: ignore[arg-type]

    def generation(self) -> int:
        return int(self._app.consumer_generation_id)

    async def seek(self, tp: Any, offset: int) -> None:
        await self._app.consumer.seek(tp, offset)


class FaustProducer:
    """Events and dead letters through the app's producer."""

    def __init__(self, anomalies: Any, deadletters: Any) -> None:
        self._anomalies = anomalies
        self._deadletters = deadletters

    async def send_event(self, key: bytes | None, value: bytes) -> Any:
        return await self._anomalies.send(key=key, value=value)

    async def send_deadletter(self, key: bytes | None, value: bytes) -> Any:
        return await self._deadletters.send(key=key, value=value)
