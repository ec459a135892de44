"""Micro-batches of stream events, acked only after the batch is durable.

Faust's ``Stream.take_events`` was seen to stop delivering after a
rebalance that followed a killed worker (the long-standing take()/rebalance
hangs of faust issues #262 and #532), so batches are built here instead:
events are read one by one with acks disabled, a batch is handed over when it
is full or, by a small timer task, when its oldest event has waited
``within`` seconds; its events are acked only once the batch is durable and the
model state has been checkpointed after it, and so only then can their offsets
be committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from stream_app.worker.scoring import Message

log = logging.getLogger(__name__)

Key = tuple[str, int]


class BatchPipeline(Protocol):
    """The two halves of processing a batch (:class:`WorkerRuntime` implements it)."""

    def score(self, messages: list[Message]) -> Any: ...

    async def commit(self, out: Any, *, checkpoint: bool) -> None: ...

    def checkpoint_due(self) -> bool: ...

    def discard(self) -> None: ...


class EventBatcher:
    """Collects events of one stream and feeds them to a :class:`BatchPipeline` in batches."""

    def __init__(
        self,
        pipeline: BatchPipeline,
        *,
        size: int,
        within: float,
        guard: OffsetGuard | None = None,
        seek: Callable[[Any, int], Awaitable[None]] | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pipeline = pipeline
        self._on_fatal = on_fatal
        self._inflight: asyncio.Task[None] | None = None
        self._guard = guard
        self._seek = seek
        self._size = size
        self._within = within
        self._clock = clock
        self._pending: list[Any] = []
        self._held: list[Any] = []  # durable, acked at the next state checkpoint
        self._first_at = 0.0
        self._lock = asyncio.Lock()

    async def run(self, stream: Any) -> None:
        """Consume ``stream`` until it ends; the caller is a Faust agent."""
        quiet = stream.noack()
        ticker = asyncio.create_task(self._tick(quiet))
        try:
            async for event in quiet.events():
                if not await self._admit(event):
                    continue
                async with self._lock:
                    if not self._pending:
                        self._first_at = self._clock()
                    self._pending.append(event)
                    if len(self._pending) >= self._size:
                        await self._flush(quiet)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            with contextlib.suppress(Exception):
                await self._settle()

    async def _admit(self, event: Any) -> bool:
        if self._guard is None:
            return True
        message = event.message
        key = (message.topic, message.partition)
        self._guard.remember(key, message.tp)
        back_to = self._guard.check(key, message.offset)
        if back_to is None:
            return True
        if back_to >= 0 and self._seek is not None:
            log.warning(
                "records before offset %d of %s[%d] were skipped by the consumer;"
                " seeking back to %d",
                message.offset,
                message.topic,
                message.partition,
                back_to,
            )
            await self._seek(message.tp, back_to)
        return False

    async def _tick(self, stream: Any) -> None:
        while True:
            await asyncio.sleep(self._within / 2)
            try:
                if self._guard is not None and self._seek is not None:
                    for tp, offset in self._guard.overdue():
                        log.warning("seeking %s back to %d again", tp, offset)
                        await self._seek(tp, offset)
                async with self._lock:
                    if self._pending and self._clock() - self._first_at >= self._within:
                        await self._flush(stream)
                    elif not self._pending and (self._held or self._inflight is not None):
                        await self._flush(stream)  # idle: settle, checkpoint when due
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed commit has already called on_fatal
                log.exception("batch flush failed")

    async def _flush(self, stream: Any) -> None:
        """Hand the pending events over as one batch.

        Scoring batch N+1 overlaps with writing batch N (the database round
        trip was a quarter of the worker's time). A batch that is due to
        checkpoint the model state waits until nothing else is in flight, so
        the saved state matches exactly what is durable; only then are the
        held events acked.
        """
        events, self._pending = self._pending, []
        due = self._pipeline.checkpoint_due()
        if not events and not due:
            return
        if due:
            await self._settle()
        messages = [
            Message(e.value, e.key, e.message.topic, e.message.partition, e.message.offset)
            for e in events
        ]
        out = self._pipeline.score(messages)
        await self._settle()
        if due:
            await self._commit(out, events, checkpoint=True)
            held, self._held = self._held, []
            for event in held:
                await stream.ack(event)
        else:
            self._inflight = asyncio.create_task(self._commit(out, events, checkpoint=False))

    async def _commit(self, out: Any, events: list[Any], *, checkpoint: bool) -> None:
        try:
            await self._pipeline.commit(out, checkpoint=checkpoint)
        except BaseException as exc:
            # Scored but not durable: the live models learned points the database
            # never got, and a Faust stream does not deliver unacked events again
            # by itself. Drop the models and let the process restart from the last
            # checkpoint and its offsets.
            self._pipeline.discard()
            if self._on_fatal is not None and not isinstance(exc, asyncio.CancelledError):
                self._on_fatal(exc)
            raise
        self._held.extend(events)

    async def _settle(self) -> None:
        """Wait for the batch in flight, if any (its failure surfaces here)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task


class OffsetGuard:
    """Makes sure no offset of an assigned partition is skipped.

    faust-streaming 0.15 resumes fetching before it seeks a newly assigned
    partition to its committed offset; records fetched in between are dropped
    while the fetch position and Faust's read offset move past them, so a
    batch of readings silently vanishes (seen after a rebalance with two
    workers, always at the start of a partition). The guard knows, per
    partition, the next offset the worker must see: the committed offset at
    assignment, then one past each record handed over. A record beyond it
    means records were lost; the guard asks to seek back and refuses records
    until the missing one arrives again. A record before it (a replay) is
    admitted: every write downstream is idempotent.
    """

    def __init__(
        self, *, retry_after_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._next: dict[Key, int] = {}
        self._first: dict[Key, int] = {}
        self._seeking: dict[Key, float] = {}
        self._tps: dict[Key, Any] = {}
        self._retry_after_s = retry_after_s
        self._clock = clock
        self.seeks = 0

    def assigned(self) -> None:
        """A new assignment: forget everything until :meth:`expect` is told the offsets."""
        self._next = {}
        self._first = {}
        self._seeking.clear()

    def expect(self, committed: dict[Key, int]) -> None:
        """Where the group resumes each assigned partition (committed, else earliest).

        Records admitted before this arrived are checked now: if the first one
        of a partition lies beyond its committed offset, records were skipped.
        """
        for key, offset in committed.items():
            first = self._first.get(key)
            if first is None:
                self._next[key] = offset
            elif first > offset:
                self._next[key] = offset
                self._seeking[key] = float("-inf")  # overdue: seek on the next tick

    def overdue(self) -> list[tuple[Any, int]]:
        """Seeks asked for more than ``retry_after_s`` ago with nothing back yet.

        The consumer's fetch loop can still be handing over records of the old
        position when a seek lands, and move its read offset past the seek
        target again; asking again once that loop has drained fixes it.
        """
        now = self._clock()
        due = []
        for key, asked in self._seeking.items():
            if now - asked >= self._retry_after_s and key in self._tps:
                self._seeking[key] = now
                self.seeks += 1
                due.append((self._tps[key], self._next[key]))
        return due

    def next_offsets(self) -> dict[Key, int]:
        """The next offset to process of every assigned partition."""
        return dict(self._next)

    def remember(self, key: Key, tp: Any) -> None:
        self._tps[key] = tp

    def check(self, key: Key, offset: int) -> int | None:
        """None to admit the record; else the offset to seek back to (record refused).

        >>> g = OffsetGuard(clock=lambda: 0.0)
        >>> g.assigned()
        >>> g.expect({("r", 0): 5})
        >>> g.check(("r", 0), 5), g.check(("r", 0), 9), g.check(("r", 0), 10), g.check(("r", 0), 6)
        (None, 6, -1, None)
        """
        expected = self._next.get(key)
        if expected is None:
            self._first.setdefault(key, offset)
        if expected is None or offset <= expected:
            self._seeking.pop(key, None)
            if expected is None or offset == expected:
                self._next[key] = offset + 1
            return None
        asked = self._seeking.get(key)
        now = self._clock()
        if asked is not None and now - asked < self._retry_after_s:
            return -1  # refused; the seek asked for is under way
        self._seeking[key] = now
        self.seeks += 1
        return expected
