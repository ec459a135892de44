"""The worker's per-batch I/O: one object the Faust agents call into.

It owns the scorer, the sink and the metrics; the agents in :mod:`app` stay
a few lines each. A batch goes through :meth:`WorkerRuntime.score` (CPU
only), :meth:`~WorkerRuntime.write` (the sink, retrying until durable) and
:meth:`~WorkerRuntime.publish` (events and dead letters). Every
``checkpoint_s`` the batcher takes a :meth:`~WorkerRuntime.snapshot` of the
models right after scoring a batch and has it saved once that batch and all
before it are durable; it acks offsets only then, so a crash replays from the
saved state's position and never loses a reading.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from stream_app.metrics import Metrics
from stream_app.storage.sink import Sink
from stream_app.worker.feed import Record
from stream_app.worker.scoring import BatchOutput, ReadingScorer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Packed model state of one partition's changed entities, as of one batch."""

    partition: int
    blobs: dict[str, bytes]
    generation: int


Send = Callable[[bytes | None, bytes], Awaitable[Any]]


class WorkerRuntime:
    """Glue between Faust events and the pure batch step."""

    def __init__(
        self,
        scorer: ReadingScorer,
        sink: Sink,
        metrics: Metrics,
        *,
        table: MutableMapping[bytes, bytes] | None = None,
        send_event: Send | None = None,
        send_deadletter: Send | None = None,
        on_progress: Callable[[], None] | None = None,
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
        self._dirty: dict[int, set[str]] = {}  # partition -> entities changed since its snapshot
        self._checkpointed_at: dict[int, float] = {}
        self._last_checkpoint = 0.0
        self._series_at = 0.0
        self.table = table
        self.send_event = send_event
        self.send_deadletter = send_deadletter
        self.on_progress = on_progress
        self.sink_retrying = False
        self._generation = 0

    def score(self, messages: list[Record]) -> BatchOutput:
        """The CPU half of a batch: decode, clean, score; nothing is written yet."""
        now = self.clock()
        out = self.scorer.process(messages, now)
        if messages:
            self.metrics.batch_size.observe(len(messages))
        if now - self._last_silence_check >= self.silence_check_s:
            self._last_silence_check = now
            extra = self.scorer.advance(now)
            out.events.extend(extra.events)
            out.touched |= extra.touched
        for partition, entity in out.touched:
            self._dirty.setdefault(partition, set()).add(entity)
        return out

    def checkpoint_due(self, held: Iterable[int] = ()) -> int | None:
        """The partition to checkpoint now, if any.

        Partitions take turns, one every ``checkpoint_s`` / (number of
        partitions with changes or ``held`` records), so each is checkpointed
        about every ``checkpoint_s`` and the work (and the pause it makes) is
        spread out instead of coming all at once.
        """
        parts = {p for p in self._dirty if p >= 0} | set(held)
        if not parts and -1 not in self._dirty:
            return None
        if self.clock() - self._last_checkpoint < self.checkpoint_s / max(len(parts), 1):
            return None
        return min(parts, key=lambda p: self._checkpointed_at.get(p, 0.0)) if parts else -1

    def pending(self, held: Iterable[int] = ()) -> list[int]:
        """Every partition with changes not yet in a snapshot or records not yet acked."""
        return sorted(set(self._dirty) | set(held))

    def snapshot(self, partition: int) -> Snapshot:
        """The state, as of now, of every entity of ``partition`` changed since its last one.

        Taken right after scoring a batch, kept in memory, and saved to the
        table by :meth:`save` only once that batch and every one before it
        are durable, so scoring goes on while those writes finish. Entities
        changed outside any partition's records (partition -1: silence checks,
        operator feedback) go with whichever snapshot comes next.
        """
        dirty = self._dirty.pop(partition, set()) | self._dirty.pop(-1, set())
        states = self.scorer.states
        now = self.clock()
        self._last_checkpoint = self._checkpointed_at[partition] = now
        blobs = {entity: states.dump(entity) for entity in dirty}
        return Snapshot(partition, blobs, self._generation)

    def save(self, snapshot: Snapshot) -> bool:
        """Write a snapshot to the table; False if the models were dropped since it was taken."""
        if snapshot.generation != self._generation:
            return False  # a rebalance: these entities may not be ours any more
        if self.table is not None:
            for entity, blob in snapshot.blobs.items():
                self.table[entity.encode()] = blob
                self._state_total += len(blob) - self._state_sizes.get(entity, 0)
                self._state_sizes[entity] = len(blob)
            self.metrics.state_bytes.set(self._state_total)
        return True

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
        for row in out.rows:
            self.sink.add_point(row)
        for event in out.events:
            self.sink.add_episode(event)
        batch = self.sink.take()  # before any await: overlapping writes keep their own rows
        try:
            stats = await self.sink.flush_with_retry(batch, all_series=all_series)
        finally:
            self.sink_retrying = False
        if stats.points or stats.episodes:
            self.metrics.sink_latency.observe(stats.seconds)
            self.metrics.sink_rows.labels("observations").inc(stats.points_inserted)
            self.metrics.sink_rows.labels("anomalies").inc(stats.episodes)

    async def publish(self, out: BatchOutput) -> None:
        """Episode events and dead letters out (in batch order: the caller's job), counted."""
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
        m.readings.labels("replayed").inc(out.replayed)
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
        # Saved with the next snapshot, like every other change to the models.
        self._dirty.setdefault(-1, set()).add(entity)
        self.metrics.feedback.labels(label).inc()

    def record_sink_error(self, exc: BaseException) -> None:
        self.sink_retrying = True
        self.metrics.sink_errors.labels(type(exc).__name__).inc()
