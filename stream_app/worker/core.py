"""Everything a worker does between a fetched record and an acked offset, without Faust.

:class:`WorkerCore` takes its dependencies in its constructor: the sink, the
state table (any mutable mapping) and, if the table's changes need making
durable apart from it, its changelog, a producer for events and dead letters, a
consumer handle (ack, group generation, seek), the metrics and a clock. The
Faust worker (:mod:`stream_app.worker.app`) passes adapters to its app; the
in-memory tests pass lists and a dict, and run the same code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, Protocol

from stream_app.core import EngineConfig
from stream_app.metrics import Metrics
from stream_app.settings import Settings
from stream_app.storage import Sink
from stream_app.worker.batching import EventBatcher
from stream_app.worker.checkpoint import ChangelogSend, Checkpointer
from stream_app.worker.decode import ReadingDecoder
from stream_app.worker.faust_compat.offset_guard import OffsetGuard
from stream_app.worker.feed import Record, RecordFeed
from stream_app.worker.runtime import WorkerRuntime
from stream_app.worker.scoring import ReadingScorer
from stream_app.worker.states import EntityStates

log = logging.getLogger(__name__)


class ConsumerHandle(Protocol):
    """What the core needs of the consumer."""

    def ack(self, record: Record) -> Any:
        """The record is done: its offset may be committed."""

    def generation(self) -> int:
        """The consumer group's current generation."""

    async def seek(self, tp: Any, offset: int) -> None:
        """Fetch ``tp`` from ``offset`` again."""


class EventProducer(Protocol):
    """Where anomaly events and dead letters go."""

    async def send_event(self, key: bytes | None, value: bytes) -> Any: ...

    async def send_deadletter(self, key: bytes | None, value: bytes) -> Any: ...


class WorkerCore:
    """Batches of records from :attr:`feed`: scored, stored, published, checkpointed, acked."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        base_rules: dict[str, Any],
        *,
        sink: Sink,
        table: MutableMapping[bytes, bytes],
        producer: EventProducer,
        consumer: ConsumerHandle,
        on_fatal: Callable[[BaseException], None],
        on_progress: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        feed: RecordFeed | None = None,
        changelog: ChangelogSend | None = None,
    ) -> None:
        self.feed = feed or RecordFeed({settings.topic_readings, settings.topic_feedback})
        self._table = table
        self._metrics = metrics
        self.scorer = ReadingScorer(
            EntityStates(
                EngineConfig.from_mapping(base_rules), self._load_state, self._unreadable_state
            ),
            ReadingDecoder(max_bytes=settings.max_message_bytes),
            max_deadletter_payload=settings.deadletter_max_payload_bytes,
            topic=settings.topic_readings,
            forget_after_s=settings.worker_forget_after_days * 86400.0,
            labels_topic=settings.topic_feedback,
        )
        self.scorer.saved_entities = self._saved_entities
        self.checkpointer = Checkpointer(
            self.scorer.states,
            table,
            metrics,
            every_s=settings.worker_checkpoint_s,
            ack=consumer.ack,
            generation=consumer.generation,
            clock=clock,
            changelog=changelog,
        )
        self.runtime = WorkerRuntime(
            self.scorer,
            sink,
            metrics,
            self.checkpointer,
            send_event=producer.send_event,
            send_deadletter=producer.send_deadletter,
            on_progress=on_progress,
            checkpoint_s=settings.worker_checkpoint_s,
            max_live_entities=settings.worker_max_live_entities,
            clock=clock,
        )
        self.guard = OffsetGuard()
        self.batcher = EventBatcher(
            self.runtime,
            self.checkpointer,
            size=settings.worker_batch_size,
            idle_every=settings.worker_idle_flush_s,
            generation=consumer.generation,
            guard=self.guard,
            seek=consumer.seek,
            on_fatal=on_fatal,
            max_inflight=settings.worker_max_inflight,
        )

    async def run(self) -> None:
        """Consume the feed until cancelled."""
        await self.batcher.run(self.feed)

    async def before_revoke(self, within_s: float) -> bool:
        """A rebalance is about to take the partitions: every batch durable, every
        partition's state saved and its records acked, within ``within_s`` (False if not)."""
        return await self.batcher.checkpoint(within_s)

    def revoked(self) -> None:
        """Partitions were taken away: live models, held records and queued fetches go,
        and nothing is scored until the next assignment (:meth:`assigned`)."""
        self.batcher.hold_off()
        self.runtime.forget()
        self.feed.clear()

    def assigned(self, partitions: Iterable[int] | None = None) -> None:
        """Partitions were assigned (the group's generation is the new one): score again.
        ``partitions``: the readings topic's partitions now this worker's."""
        self.scorer.partitions = None if partitions is None else set(partitions)
        self.guard.assigned()
        self.batcher.reopen()

    async def drain(self) -> None:
        """Stopping: the batch in hand durable, every partition's state saved and acked."""
        await self.batcher.drain()

    def _unreadable_state(self, entity: str, part: str, metric: str, exc: Exception) -> None:
        self._metrics.state_unreadable.labels(part).inc()
        log.warning(
            "saved state of %r (%s %s) unreadable, restarting it: %s: %s",
            entity,
            part,
            metric[:80],
            type(exc).__name__,
            exc,
        )

    def _saved_entities(self) -> list[str]:
        """The entities the state table holds (those of this worker's partitions, once
        Faust's table recovery is done)."""
        out = []
        for key in list(self._table.keys()):
            try:
                out.append(key.decode() if isinstance(key, bytes) else str(key))
            except UnicodeDecodeError:
                continue  # no entity: readings' entities are JSON text
        return out

    def _load_state(self, entity: str) -> bytes | None:
        blob = self._table.get(entity.encode())
        return blob if isinstance(blob, bytes) else None
