"""Batches of consumed readings, acked only after the batch is durable.

Records arrive from the fetch loop a fetch at a time (:class:`RecordFeed`).
A batch is whatever has arrived while the previous one was being handled, up
to ``size`` records: small and quick when the worker keeps up, large (fewer
database round trips per reading) under a backlog, with no timer to wait
for. Scoring goes on while earlier batches are written. A batch's records are
acked (so Faust may commit their offsets) only once the batch is durable and
a snapshot of the model state taken after it has been saved: the
:class:`~stream_app.worker.checkpoint.Checkpointer` decides when and acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from stream_app.worker.checkpoint import Checkpointer, Snapshot
from stream_app.worker.faust_compat.offset_guard import OffsetGuard
from stream_app.worker.feed import Record, RecordFeed

log = logging.getLogger(__name__)

Key = tuple[str, int]


# Readings scored between two returns to the event loop. Scoring one takes about 0.1 ms
# (pure-Python build, more on a busy CPU): a batch of 2,000 at once held the loop up to
# 0.67 s, and the consumer's heartbeats, commits, fetches, the timers and the writes of
# the batches before it waited behind it.
SCORE_SLICE = 200


class BatchPipeline(Protocol):
    """The two halves of processing a batch (:class:`WorkerRuntime` implements it)."""

    def score(self, messages: list[Record], into: Any = None) -> Any:
        """Score ``messages``: a new batch's first slice, or (``into``, what ``score``
        gave) the next slice of the same batch."""

    async def finish(self, out: Any, scored: int) -> Any:
        """The batch's last slice is scored (``scored`` records in all)."""

    async def write(self, out: Any) -> None: ...

    async def publish(self, out: Any) -> None: ...

    def discard(self) -> None: ...


class EventBatcher:
    """Feeds the records of a :class:`RecordFeed` to a :class:`BatchPipeline` in batches.

    ``generation`` tells the consumer group's current generation, so records
    fetched before a rebalance are neither scored nor acked after it.
    """

    def __init__(
        self,
        pipeline: BatchPipeline,
        checkpointer: Checkpointer,
        *,
        size: int,
        idle_every: float,
        generation: Callable[[], int] = lambda: 0,
        guard: OffsetGuard | None = None,
        seek: Callable[[Any, int], Awaitable[None]] | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
        max_inflight: int = 2,
    ) -> None:
        self._pipeline = pipeline
        self._max_inflight = max_inflight
        self._checkpointer = checkpointer
        self._generation = generation
        self._on_fatal = on_fatal
        self._inflight: list[asyncio.Task[None]] = []  # oldest first
        self._guard = guard
        self._seek = seek
        self._size = size
        self._idle_every = idle_every
        self._lock = asyncio.Lock()
        self._closing = False
        # a rebalance is taking the partitions: nothing more is scored until it has
        self._revoking = False

    async def run(self, feed: RecordFeed) -> None:
        """Consume ``feed`` until cancelled; the caller is a Faust agent."""
        ticker = asyncio.create_task(self._tick())
        try:
            while True:
                records = await feed.get()
                if self._closing or self._revoking:
                    continue  # never acked: the partition's next owner reads them
                if len(records) < self._size:
                    records.extend(feed.take_nowait(self._size - len(records)))
                admitted = await self._admit(records)
                async with self._lock:
                    for start in range(0, len(admitted), self._size):
                        await self._flush(admitted[start : start + self._size])
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            with contextlib.suppress(Exception):
                await self._settle()

    async def drain(self) -> None:
        """Stop taking records (the rest of a fetch being scored too); finish the batch
        in hand and every write in flight, save a snapshot of every partition with
        changes and ack what it covers.

        Called when the worker stops, before the consumer commits for the last
        time. A write that fails here has already called ``on_fatal``.
        """
        self._closing = True
        async with self._lock:
            await self._settle()
            await self._save_every_partition()

    async def checkpoint(self, within_s: float) -> bool:
        """A rebalance is about to take every partition: finish every write in flight,
        save a snapshot of every partition with changes and ack what it covers, within
        ``within_s`` seconds, so the next owners go on from here. From now until
        :meth:`reopen` (the next assignment) no record is scored: the models go with the
        partitions, and what is not acked is read again by the next owner.

        False when the bound ran out (a write waiting for the database, a save for its
        changelog's delivery): nothing more is saved, and the next owners go on from the
        last checkpoint, publishing again the events sent since. A write that fails here has already called ``on_fatal``.
        """
        self._revoking = True
        try:
            return await self._checkpoint_all(within_s)
        finally:
            # Faust drops the acks of the partitions it gives up right after this, and an
            # ack that came later (a write done once the bound ran out) would sit in its
            # new list for the partition, below the offsets read after the assignment:
            # its commits stopped there for good. Nothing is acked from here on.
            self._checkpointer.reset()

    async def _checkpoint_all(self, within_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        try:
            async with asyncio.timeout(within_s):
                await self._lock.acquire()
        except TimeoutError:
            return False
        try:
            if self._inflight:
                # waited on, never cancelled: a write cut off would cost the models
                _, waiting = await asyncio.wait(
                    list(self._inflight), timeout=max(deadline - loop.time(), 0.0)
                )
                if waiting:
                    return False
            await self._settle()
            try:
                # The saves wait for their changelog records' delivery: bounded too. A save
                # cut off acks nothing; the states it wrote are of durable batches, so the
                # table may lead the committed offsets, never the database.
                async with asyncio.timeout_at(deadline):
                    await self._save_every_partition()
            except TimeoutError:
                return False
            return True
        finally:
            self._lock.release()

    async def _save_every_partition(self) -> None:
        """Every batch durable: snapshot and save each partition with changes, acking
        what the snapshots cover."""
        checkpointer = self._checkpointer
        for partition in checkpointer.pending():
            await checkpointer.save(await checkpointer.snapshot(partition))

    def hold_off(self) -> None:
        """Partitions were taken away: score nothing until :meth:`reopen`."""
        self._revoking = True

    def reopen(self) -> None:
        """Partitions were assigned, in a new group generation: score again. Not at the
        revoke: until the assignment the generation is still the old one, and a fetch
        admitted before the rebalance (waiting for the lock while a write waited for the
        database) would pass as this generation's, scored by the reloaded models."""
        self._revoking = False

    async def _admit(self, records: list[Any]) -> list[Any]:
        """The records to score: fetched in this group generation, none skipped.

        Every record is checked before any seek is awaited, so the generation
        cannot change in between and is read once.
        """
        # Records fetched before a rebalance are left out: replayed from the committed offset.
        admitted = self._of_this_generation(records)
        guard = self._guard
        if guard is None:
            return admitted
        kept: list[Any] = []
        seeks: list[tuple[Any, int]] = []
        for record in admitted:
            key = (record.topic, record.partition)
            guard.remember(key, record.tp)
            back_to = guard.check(key, record.offset)
            if back_to is None:
                kept.append(record)
            elif back_to >= 0 and self._seek is not None:
                log.warning(
                    "records before offset %d of %s[%d] were skipped by the consumer;"
                    " seeking back to %d",
                    record.offset,
                    record.topic,
                    record.partition,
                    back_to,
                )
                seeks.append((record.tp, back_to))
        for tp, offset in seeks:
            assert self._seek is not None
            await self._seek(tp, offset)
        return kept

    def _of_this_generation(self, records: list[Any]) -> list[Any]:
        """The records fetched in the consumer group's current generation (or untagged)."""
        generation = self._generation()
        return [r for r in records if getattr(r, "generation_id", None) in (None, generation)]

    async def _tick(self) -> None:
        """Retry overdue seeks; when idle, checkpoint a partition that is due."""
        while True:
            await asyncio.sleep(self._idle_every)
            try:
                if self._guard is not None and self._seek is not None:
                    for tp, offset in self._guard.overdue():
                        log.warning("seeking %s back to %d again", tp, offset)
                        await self._seek(tp, offset)
                if self._lock.locked() or self._closing:
                    continue  # busy; the batch loop checkpoints by itself
                async with self._lock:
                    if self._checkpointer.due() is not None:
                        await self._flush([])
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed commit has already called on_fatal
                log.exception("batch flush failed")

    async def _flush(self, records: list[Any]) -> None:
        """Score ``records`` as one batch and start writing it.

        Up to ``max_inflight`` batches are written at once while later ones are
        scored (the database round trip is the longest step); each publishes
        its events only after the batch before it did, so they leave in batch
        order. When a partition's checkpoint is due, a snapshot of its models
        is taken right after scoring and saved once this batch and every
        earlier one are durable; only then are that partition's records
        acked. Scoring never waits for a checkpoint's writes.
        """
        # Admitted in this generation, but a batch may wait for the lock (a checkpoint
        # held it while the database was away) while the group rebalances: the models
        # were then reloaded from their last save, and would score these records without
        # the ones acked since, which the next owner skips as already seen. Checked
        # again here, with no await before the scoring. Stopping (``drain``), the rest of
        # the fetch in hand is left as well: a fetch under a backlog holds tens of
        # thousands of readings, and a worker of 20,000 entities SIGTERMed mid-backlog
        # went on scoring one for 7.6 s of its 15 s shutdown timeout.
        if self._revoking or self._closing:
            return  # neither scored nor acked: the partitions' next owners read them
        records = self._of_this_generation(records)
        partition = self._checkpointer.due()
        if not records and partition is None:
            return
        models = self._checkpointer.models
        scored = await self._score(records, models)
        if scored is None:
            return  # the models were dropped meanwhile (a failed write, a revoke)
        records, out = scored
        # packed in slices with the lock held: the loop runs, no batch is scored
        snapshot = None if partition is None else await self._checkpointer.snapshot(partition)
        while len(self._inflight) >= self._max_inflight:
            await self._inflight.pop(0)
        after = self._inflight[-1] if self._inflight else None
        self._inflight.append(
            asyncio.create_task(self._commit(out, records, snapshot, after, models))
        )

    async def _score(self, records: list[Any], models: int) -> tuple[list[Any], Any] | None:
        """Score ``records`` ``SCORE_SLICE`` at a time, the event loop running between
        slices: the records scored (a prefix) and the batch's output.

        A stop or a rebalance that comes between slices leaves the rest unscored (never
        acked: the partitions' next owners read them), as it leaves the rest of a fetch;
        the prefix is written, saved and acked as a batch of its own. None when the
        models were dropped meanwhile (a failed write, a revoke): what they scored is
        neither reported to the checkpointer nor written.
        """
        pipeline = self._pipeline
        out = pipeline.score(records[:SCORE_SLICE])  # Faust consumer messages are Records
        done = min(len(records), SCORE_SLICE)
        while done < len(records):
            await asyncio.sleep(0)
            if self._checkpointer.models != models:
                return None
            if self._closing or self._revoking:
                break
            pipeline.score(records[done : done + SCORE_SLICE], out)
            done = min(len(records), done + SCORE_SLICE)
        out = await pipeline.finish(out, done)
        if self._checkpointer.models != models:
            return None
        return records[:done], out

    async def _commit(
        self,
        out: Any,
        records: list[Record],
        snapshot: Snapshot | None,
        after: asyncio.Task[None] | None,
        models: int,
    ) -> None:
        try:
            await self._pipeline.write(out)
            if after is not None:
                await after  # every earlier batch is durable (or this fails too)
            if self._checkpointer.models != models:
                # The models that scored this batch were dropped while it was written (a
                # revoke whose checkpoint ran out of time waiting for the database): its
                # records are not acked, and whoever owns their partitions now scores
                # them again from the last checkpoint and publishes their events, in
                # order. Published from here as well, they would land after that
                # owner's: an episode's `opened` after its `resolved`.
                log.warning(
                    "rebalance: a batch written after its models were dropped (%d"
                    " records); its events are left to the partitions' next owners",
                    len(records),
                )
                return
            # events and dead letters delivered before the state that reflects their
            # readings is saved: saved first, a kill -9 between the two lost them for
            # good (the next worker skips those readings as replayed)
            await self._pipeline.publish(out)
            if self._checkpointer.models != models:
                return  # dropped while they were delivered: nothing of it is acked
            self._checkpointer.hold(records)
            if snapshot is not None:
                await self._checkpointer.save(snapshot)
        except BaseException as exc:
            # Scored but not durable: the live models learned points the database
            # never got, and the consumer does not deliver unacked records again
            # by itself. Drop the models and let the process restart from the last
            # checkpoint and its offsets.
            self._pipeline.discard()
            if self._on_fatal is not None and not isinstance(exc, asyncio.CancelledError):
                self._on_fatal(exc)
            raise

    async def _settle(self) -> None:
        """Wait for every batch in flight (a failure surfaces here)."""
        while self._inflight:
            await self._inflight.pop(0)
