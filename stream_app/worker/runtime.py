"""The worker's per-batch I/O: one object the Faust agents call into.

It owns the scorer, the sink and the metrics; the agents in :mod:`app` stay
a few lines each. A batch goes through :meth:`WorkerRuntime.score` (CPU
only), :meth:`~WorkerRuntime.write` (the sink, retrying until durable) and
:meth:`~WorkerRuntime.publish` (events and dead letters). The models it
changes are reported to the :class:`~stream_app.worker.checkpoint.Checkpointer`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from stream_app.metrics import Metrics, observe_many
from stream_app.storage.sink import Sink
from stream_app.wire.event import resolved_without_model
from stream_app.worker.checkpoint import Checkpointer
from stream_app.worker.feed import Record
from stream_app.worker.scoring import BatchOutput, ReadingScorer

log = logging.getLogger(__name__)


Send = Callable[[bytes | None, bytes], Awaitable[Any]]


class WorkerRuntime:
    """Glue between Faust events and the pure batch step."""

    def __init__(
        self,
        scorer: ReadingScorer,
        sink: Sink,
        metrics: Metrics,
        checkpointer: Checkpointer,
        *,
        send_event: Send | None = None,
        send_deadletter: Send | None = None,
        on_progress: Callable[[], None] | None = None,
        silence_check_s: float = 5.0,
        checkpoint_s: float = 0.0,
        max_live_entities: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.scorer = scorer
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        self.silence_check_s = silence_check_s
        self._last_silence_check = 0.0
        self.open_episodes: set[str] = set()
        # Changed models are reported to the checkpointer, which saves them and
        # acks the records they cover (see checkpoint.py).
        self.checkpointer = checkpointer
        self.checkpoint_s = checkpoint_s  # also how often every series' last time is written
        self._series_at = 0.0
        self.send_event = send_event
        self.send_deadletter = send_deadletter
        self.on_progress = on_progress
        self.sink_retrying = False
        self.max_live_entities = max_live_entities
        self._evicted_at = 0.0

    def score(self, messages: list[Record], into: BatchOutput | None = None) -> BatchOutput:
        """The CPU half of a batch, or of a slice of one: decode, clean, score; nothing is
        written yet. ``into``: the output of the batch's slices so far, continued (all
        scored at the clock of the first). :meth:`finish` ends the batch."""
        if into is None:
            return self.scorer.process(messages, self.clock())
        return self.scorer.process(messages, into.at, into)

    async def finish(self, out: BatchOutput, scored: int) -> BatchOutput:
        """A batch's last slice is scored (``scored`` readings in all): the silence scan
        when one is due (a slice of the live entities at a time, the event loop running
        in between), the changed models reported to the checkpointer, eviction. Models
        dropped during the scan (a failed write, a revoke) end it: nothing is reported,
        and the batcher drops the batch."""
        now = out.at
        if scored:
            self.metrics.batch_size.observe(scored)
        if now - self._last_silence_check >= self.silence_check_s:
            self._last_silence_check = now
            models = self.checkpointer.models
            judged = BatchOutput()
            for _ in self.scorer.judging(now, judged):
                await asyncio.sleep(0)
                if self.checkpointer.models != models:
                    return out
            out.add_judgement(judged)
        self.checkpointer.touched(out.touched)
        if self.max_live_entities and now - self._evicted_at >= self.checkpoint_s:
            # at most one scan of the live entities per checkpoint interval
            self._evicted_at = now
            evicted = self.scorer.evict(self.max_live_entities, self.checkpointer.busy)
            if evicted:
                self.metrics.evicted.inc(evicted)
        return out

    async def write(self, out: BatchOutput, *, all_series: bool | None = None) -> None:
        """Rows and episodes durable (retrying until they are).

        Writes of several batches may overlap. Every series' last time in the
        ``series`` table is brought up to date about every ``checkpoint_s``
        (or when ``all_series`` says so); new series are written at once.
        """
        now = self.clock()
        if all_series is None:
            all_series = now - self._series_at >= self.checkpoint_s
        if all_series:
            self._series_at = now
        add_point = self.sink.add_point
        for row in out.rows:
            add_point(row)
        for event in out.events:
            self.sink.add_episode(event)
        batch = self.sink.take()  # before any await: overlapping writes keep their own rows
        batch.orphans = out.orphans
        if all_series:
            # with every series' last time: the sources whose clocks moved, seen now
            batch.sources = self.scorer.source_marks()
            batch.seen_at = datetime.fromtimestamp(now, UTC)
        try:
            stats = await self.sink.flush_with_retry(batch, all_series=all_series)
        finally:
            self.sink_retrying = False
        if stats.resolved:
            # stored open, with no model left to resolve them: resolved by the sink, and
            # published with this batch's events so that their alerts resolve too
            now = self.clock()
            out.events.extend(resolved_without_model(row, now) for row in stats.resolved)
            log.warning(
                "resolved %d open episode(s) whose model was lost (entities: %s)",
                len(stats.resolved),
                ", ".join(sorted({repr(row["entity"])[:80] for row in stats.resolved})[:5]),
            )
        if stats.points or stats.episodes:
            self.metrics.sink_latency.observe(stats.seconds)
            self.metrics.sink_rows.labels("observations").inc(stats.points_inserted)
            self.metrics.sink_rows.labels("anomalies").inc(stats.episodes)

    async def publish(self, out: BatchOutput) -> None:
        """Episode events and dead letters out (in batch order: the caller's job), counted,
        once the broker has them all: the state that reflects their readings is saved only
        after this returns, or a kill -9 between the two lost them for good (the restarted
        worker skips those readings as replayed)."""
        await self._send(out)
        self._count(out)
        if self.on_progress is not None:
            self.on_progress()

    def discard(self) -> None:
        """Drop live models without saving them: a batch failed after being scored,
        so the table's last checkpoint (and a replay from its offsets) is the truth."""
        self.checkpointer.reset()
        self.scorer.forget()

    def forget(self) -> None:
        """After a rebalance: drop live models; the table (changelog) is the truth.

        No checkpoint here: a batch may be scored but not yet durable (the
        batcher overlaps writing one batch with scoring the next), and saving
        its state would make the replayed points look like duplicates to the
        partition's next owner. The batcher checkpoints before the revoke
        (``EventBatcher.checkpoint``), once every write is durable; where it
        could not, unacked events are replayed from the last checkpoint, which
        re-learns exactly what was lost.
        """
        self.checkpointer.revoked()
        self.scorer.forget()
        # Their updates and resolution now reach the partitions' next owner: kept
        # here, each would be counted by two workers, and by this one for good.
        self.open_episodes.clear()
        self.metrics.open_episodes.set(0)
        self.metrics.series_tracked.set(len(self.scorer.states))

    async def _send(self, out: BatchOutput) -> None:
        # a send hands the record to the producer's buffer; what it returns, when
        # anything, is its delivery (Faust's FutureMessage), awaited once all are handed
        deliveries: list[Awaitable[Any]] = []
        if self.send_event is not None:
            for event in out.events:
                sent = await self.send_event(event["entity"].encode(), orjson.dumps(event))
                if inspect.isawaitable(sent):
                    deliveries.append(sent)
        if self.send_deadletter is not None:
            for letter in out.deadletters:
                key = letter["origin"].get("key")
                sent = await self.send_deadletter(
                    key.encode() if key else None, orjson.dumps(letter)
                )
                if inspect.isawaitable(sent):
                    deliveries.append(sent)
        if deliveries:
            await asyncio.gather(*deliveries)

    def _count(self, out: BatchOutput) -> None:
        m = self.metrics
        m.readings.labels("scored").inc(out.readings_ok)
        m.readings.labels("replayed").inc(out.replayed)
        for status, n in out.statuses.items():
            m.points.labels(status).inc(n)
        for letter in out.deadletters:
            m.deadletters.labels(letter["reason"]).inc()
        # a label that is none is a dead letter, not a reading
        read = sum(letter["reason"] != "rejected_point" for letter in out.deadletters)
        if read - out.bad_labels:
            m.readings.labels("deadlettered").inc(read - out.bad_labels)
        for label, n in out.labels.items():
            m.feedback.labels(label).inc(n)
        if out.labels_replayed:
            log.info(
                "%d operator label(s) read again skipped: the saved state already has them",
                out.labels_replayed,
            )
        observe_many(m.scoring_latency, out.event_to_scored)
        observe_many(m.ingest_latency, out.ingest_to_scored)
        observe_many(m.emit_latency, out.ingest_to_event)
        for _entity, _ts, known in out.orphans:
            # open in the models just loaded (after a restart or a rebalance): counted
            # again, as the revoke that gave them up stopped counting them
            self.open_episodes.update(known)
        for event in out.events:
            m.episode_events.labels(event["event"], event["severity"], event["kind"]).inc()
            if event["event"] == "resolved":
                self.open_episodes.discard(event["episode_id"])
            else:
                self.open_episodes.add(event["episode_id"])
        m.open_episodes.set(len(self.open_episodes))
        m.series_tracked.set(len(self.scorer.states))
        if out.forgotten:
            m.forgotten.inc(out.forgotten)

    def record_sink_error(self, exc: BaseException) -> None:
        self.sink_retrying = True
        self.metrics.sink_errors.labels(type(exc).__name__).inc()
