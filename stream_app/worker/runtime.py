"""The worker's per-batch I/O: one object the Faust agents call into.

It owns the scorer, the sink and the metrics; the agents in :mod:`app` stay
a few lines each. A batch is handled in two halves: :meth:`WorkerRuntime.score`
(CPU only) and :meth:`WorkerRuntime.commit`, which writes the sink (retrying
until durable), saves the model state when a checkpoint is due, then publishes
events and dead letters. The batcher acks a batch's offsets only at the
checkpoint after it, so a crash replays from the saved state's position but
never loses a reading.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from connectors.sink.postgres import PostgresSink
from stream_app.metrics import Metrics
from stream_app.worker.scoring import BatchOutput, ReadingScorer, Record

log = logging.getLogger(__name__)

Send = Callable[[bytes | None, bytes], Awaitable[Any]]


class WorkerRuntime:
    """Glue between Faust events and the pure batch step."""

    def __init__(
        self,
        scorer: ReadingScorer,
        sink: PostgresSink,
        metrics: Metrics,
        *,
        silence_check_s: float = 5.0,
        checkpoint_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.scorer = scorer
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        self.silence_check_s = silence_check_s
        self._last_silence_check = 0.0
        self.open_episodes: set[str] = set()
        self._state_sizes: dict[str, int] = {}
        self._state_total = 0
        # Model state is checkpointed to the table at most every checkpoint_s:
        # one changelog record per touched entity per batch cost a third of the
        # worker's time. Offsets are acked only at checkpoints (the batcher
        # holds them), so a restart replays from the state's own position: the
        # state never leads the database, and never lags the committed offsets.
        self.checkpoint_s = checkpoint_s
        self._dirty: set[str] = set()
        self._last_checkpoint = 0.0
        self.table: MutableMapping[bytes, bytes] | None = None
        self.send_event: Send | None = None
        self.send_deadletter: Send | None = None
        self.on_progress: Callable[[], None] | None = None
        self.sink_retrying = False
        self._generation = 0

    def score(self, messages: list[Record]) -> BatchOutput:
        """The CPU half of a batch: decode, clean, score; nothing is written yet."""
        now = self.clock()
        out = self.scorer.process(messages, now)
        out.generation = self._generation
        if messages:
            self.metrics.batch_size.observe(len(messages))
        if now - self._last_silence_check >= self.silence_check_s:
            self._last_silence_check = now
            extra = self.scorer.advance(now)
            out.events.extend(extra.events)
            out.touched |= extra.touched
        return out

    def checkpoint_due(self) -> bool:
        return self.clock() - self._last_checkpoint >= self.checkpoint_s

    async def commit(self, out: BatchOutput, *, checkpoint: bool) -> None:
        """The I/O half: rows and episodes durable, then (optionally) state, then events.

        The state is saved only after the rows are durable, and only by a caller
        that has no later batch scored yet: were it saved first, a crash in
        between would make replayed points look like duplicates of points the
        database never got.
        """
        for row in out.rows:
            self.sink.add_point(row)
        for event in out.events:
            self.sink.add_episode(event)
        try:
            stats = await self.sink.flush_with_retry(all_series=checkpoint)
        finally:
            self.sink_retrying = False
        if stats.points or stats.episodes:
            self.metrics.sink_latency.observe(stats.seconds)
            self.metrics.sink_rows.labels("observations").inc(stats.points_inserted)
            self.metrics.sink_rows.labels("anomalies").inc(stats.episodes)
        if out.generation == self._generation:
            # Else the models were dropped while this batch was written (a
            # rebalance): its entities may not be ours to checkpoint any more.
            self._dirty |= out.touched
        out.checkpointed = checkpoint
        if checkpoint:
            self.checkpoint()
            self._last_checkpoint = self.clock()
        await self._send(out)
        self._count(out)
        if self.on_progress is not None:
            self.on_progress()

    def discard(self) -> None:
        """Drop live models without saving them: a batch failed after being scored,
        so the table's last checkpoint (and a replay from its offsets) is the truth."""
        self._dirty.clear()
        self._generation += 1
        self.scorer.states.forget()

    def _save_state(self, entities: set[str]) -> None:
        if self.table is None:
            return
        states = self.scorer.states
        for entity in entities:
            blob = states.dump(entity)
            self.table[entity.encode()] = blob
            self._state_total += len(blob) - self._state_sizes.get(entity, 0)
            self._state_sizes[entity] = len(blob)
        self.metrics.state_bytes.set(self._state_total)

    def checkpoint(self) -> None:
        """Save the state of every entity changed since the last checkpoint."""
        dirty, self._dirty = self._dirty, set()
        self._save_state(dirty)

    def forget(self) -> None:
        """After a rebalance: drop live models; the table (changelog) is the truth.

        No checkpoint here: a batch may be scored but not yet durable (the
        batcher overlaps writing one batch with scoring the next), and saving
        its state would make the replayed points look like duplicates to the
        partition's next owner. Unacked events are replayed from the last
        checkpoint instead, which re-learns exactly what was lost.
        """
        self.discard()
        self._state_sizes.clear()
        self._state_total = 0

    async def _send(self, out: BatchOutput) -> None:
        if self.send_event is not None:
            for event in out.events:
                await self.send_event(event["entity"].encode(), orjson.dumps(event))
        if self.send_deadletter is not None:
            for letter in out.deadletters:
                key = letter["origin"].get("key")
                await self.send_deadletter(key.encode() if key else None, orjson.dumps(letter))

    def _count(self, out: BatchOutput) -> None:
        m = self.metrics
        m.readings.labels("scored").inc(out.readings_ok)
        for status, n in out.statuses.items():
            m.points.labels(status).inc(n)
        for letter in out.deadletters:
            m.deadletters.labels(letter["reason"]).inc()
            if letter["reason"] != "rejected_point":
                m.readings.labels("deadlettered").inc()
        for lag in out.event_to_scored:
            m.scoring_latency.observe(max(lag, 0.0))
        for lag in out.ingest_to_event:
            m.emit_latency.observe(max(lag, 0.0))
        for event in out.events:
            m.episode_events.labels(event["event"], event["severity"], event["kind"]).inc()
            if event["event"] == "resolved":
                self.open_episodes.discard(event["episode_id"])
            else:
                self.open_episodes.add(event["episode_id"])
        m.open_episodes.set(len(self.open_episodes))
        m.series_tracked.set(len(self.scorer.states))

    async def handle_feedback(self, raw: bytes | None) -> None:
        """An operator's label of an episode, published by the API (tsguard.feedback)."""
        try:
            doc = orjson.loads(raw or b"")
            entity, metric, label = str(doc["entity"]), str(doc["metric"]), str(doc["label"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("feedback: ignored malformed message: %s", exc)
            self.metrics.deadletters.labels("bad_payload").inc()
            return
        proc = self.scorer.states.processor(entity, metric)
        try:
            proc.apply_feedback(label=label)
        except ValueError as exc:
            log.warning("feedback: %s", exc)
            self.metrics.deadletters.labels("bad_payload").inc()
            return
        self._save_state({entity})
        self.metrics.feedback.labels(label).inc()

    def record_sink_error(self, exc: BaseException) -> None:
        self.sink_retrying = True
        self.metrics.sink_errors.labels(type(exc).__name__).inc()
