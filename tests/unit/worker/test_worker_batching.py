"""EventBatcher and Checkpointer in memory: acks follow durability and saved
snapshots, events keep batch order. The pipeline (score, write, publish) is a
fake whose writes each wait for their own release."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from stream_app.metrics import build_metrics
from stream_app.worker import batching
from stream_app.worker.batching import EventBatcher
from stream_app.worker.checkpoint import Change, ChangelogSend, Checkpointer
from stream_app.worker.faust_compat import TableChangelog
from stream_app.worker.feed import Record, RecordFeed
from tests.unit.worker.test_worker_checkpoint_slices import FakeApp, FakeProducer, FakeTable


def Rec(offset: int, partition: int = 0, generation_id: int = 1) -> Record:
    return Record(b"{}", None, "r", partition, offset, None, generation_id)


class LoggedTable(dict[bytes, bytes]):
    """The state table; every save is logged in the pipeline's log."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self._log = log

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._log.append(f"save {key.decode()}")
        super().__setitem__(key, value)


class Dump:
    def dump(self, entity: str) -> bytes:
        return entity.encode()

    def deleted(self, entity: str) -> None:
        pass


@dataclass
class FakePipeline:
    """Records the order of every step; each write waits for its own release.

    Scoring a record of partition p changes entity "e<p>"; ``now`` is the
    checkpointer's clock (every 10 s: set it to 100 to make a partition due).
    """

    log: list[str] = field(default_factory=list)
    releases: list[asyncio.Event] = field(default_factory=list)
    fail_write: int | None = None
    scored: int = 0
    discarded: int = 0
    now: float = 0.0
    acked: list[Record] = field(default_factory=list)
    group_generation: int = 1
    slices: list[list[int]] = field(default_factory=list)  # the offsets of each slice scored
    finished: list[int] = field(default_factory=list)  # records scored, per batch finished
    after_slice: Callable[[int], None] | None = None  # called with the slices scored so far
    in_finish: Callable[[], None] | None = None  # called in ``finish`` (the silence scan)

    def __post_init__(self) -> None:
        self.table = LoggedTable(self.log)
        self.checkpointer = self.checkpointing()

    def checkpointing(self, changelog: ChangelogSend | None = None) -> Checkpointer:
        """A checkpointer into this pipeline's table and acks (and ``changelog``)."""
        return Checkpointer(
            Dump(),
            self.table,
            build_metrics(),
            every_s=10.0,
            ack=self.acked.append,
            generation=lambda: self.group_generation,
            clock=lambda: self.now,
            changelog=changelog,
        )

    def score(self, messages: list[Record], into: int | None = None) -> int:
        if into is None:
            self.scored += 1
            self.releases.append(asyncio.Event())
            self.log.append(f"score {self.scored}")
        self.slices.append([m.offset for m in messages])
        self.checkpointer.touched((m.partition or 0, f"e{m.partition}") for m in messages)
        if self.after_slice is not None:
            self.after_slice(len(self.slices))
        return self.scored

    async def finish(self, out: int, scored: int) -> int:
        self.finished.append(scored)
        if self.in_finish is not None:
            self.in_finish()
        return out

    async def write(self, out: int) -> None:
        await self.releases[out - 1].wait()
        if out == self.fail_write:
            raise RuntimeError("database gone")
        self.log.append(f"write {out}")

    async def publish(self, out: int) -> None:
        self.log.append(f"publish {out}")

    def discard(self) -> None:
        self.discarded += 1
        self.checkpointer.reset()


def _batcher(pipe: FakePipeline, **kw: Any) -> EventBatcher:
    kw.setdefault("generation", lambda: pipe.group_generation)
    return EventBatcher(pipe, pipe.checkpointer, size=100, idle_every=10.0, **kw)


async def _until(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def test_writes_overlap_but_events_leave_in_batch_order() -> None:
    pipe = FakePipeline()
    batcher = _batcher(pipe, max_inflight=2)
    await batcher._flush([Rec(0)])
    await batcher._flush([Rec(1)])
    pipe.releases[1].set()  # the second write finishes first
    await _until(lambda: "write 2" in pipe.log)
    assert "publish 2" not in pipe.log
    pipe.releases[0].set()
    await batcher._settle()
    assert [s for s in pipe.log if s.startswith("publish")] == ["publish 1", "publish 2"]


async def test_no_more_than_max_inflight_writes_at_once() -> None:
    pipe = FakePipeline()
    batcher = _batcher(pipe, max_inflight=2)
    await batcher._flush([Rec(0)])
    await batcher._flush([Rec(1)])
    third = asyncio.create_task(batcher._flush([Rec(2)]))
    await asyncio.sleep(0.01)
    assert pipe.scored == 3 and not third.done()  # scored, waiting for a slot
    pipe.releases[0].set()
    await third
    for release in pipe.releases:
        release.set()
    await batcher._settle()


async def test_records_are_acked_only_when_durable_and_their_partitions_snapshot_saved() -> None:
    pipe = FakePipeline()
    acked = pipe.acked
    batcher = _batcher(pipe)
    r0, r1, r2 = Rec(0, partition=0), Rec(0, partition=1), Rec(1, partition=0)
    await batcher._flush([r0, r1])
    for release in pipe.releases:
        release.set()
    await batcher._settle()
    assert acked == []  # durable, but no snapshot yet
    pipe.now = 100.0
    await batcher._flush([r2])  # partition 0 is due: snapshot after scoring batch 2
    assert acked == []  # snapshot taken, batch 2 not durable yet
    pipe.releases[1].set()
    await batcher._settle()
    assert dict(pipe.table) == {b"e0": b"e0"}
    assert acked == [r0, r2]  # partition 1 waits for its own checkpoint
    assert pipe.log.index("write 2") < pipe.log.index("save e0")


async def test_a_snapshot_waits_for_every_earlier_write() -> None:
    pipe = FakePipeline()
    acked = pipe.acked
    batcher = _batcher(pipe)
    await batcher._flush([Rec(0)])
    pipe.now = 100.0
    await batcher._flush([Rec(1)])
    pipe.releases[1].set()  # the snapshot's own batch is durable first
    await _until(lambda: "write 2" in pipe.log)
    assert not pipe.table and acked == []
    pipe.releases[0].set()
    await batcher._settle()
    assert dict(pipe.table) == {b"e0": b"e0"} and [r.offset for r in acked] == [0, 1]


async def test_after_a_rebalance_nothing_of_the_old_generation_is_saved_or_acked() -> None:
    pipe = FakePipeline(now=100.0)
    batcher = _batcher(pipe)
    await batcher._flush([Rec(0)])  # due: a snapshot is taken after scoring
    pipe.group_generation = 2  # partitions revoked and assigned again
    pipe.checkpointer.revoked()
    pipe.releases[0].set()
    await batcher._settle()
    assert not pipe.table and pipe.acked == []
    old, new = Rec(1, generation_id=1), Rec(1, generation_id=2)  # fetched before / after it
    assert await batcher._admit([old, new]) == [new]


async def test_a_failed_write_drops_the_models_and_calls_on_fatal() -> None:
    pipe = FakePipeline(fail_write=1)
    fatal: list[BaseException] = []
    batcher = _batcher(pipe, on_fatal=fatal.append)
    await batcher._flush([Rec(0)])
    pipe.now = 100.0
    await batcher._flush([Rec(1)])
    for release in pipe.releases:
        release.set()
    with pytest.raises(RuntimeError):
        await batcher._settle()
    assert pipe.discarded >= 1 and fatal and pipe.acked == [] and not pipe.table
    assert not any(s.startswith("publish") for s in pipe.log)


async def test_run_batches_what_is_queued_up_to_the_size() -> None:
    pipe = FakePipeline()
    batcher = _batcher(pipe)
    batcher._size = 3
    feed = RecordFeed({"r"})
    await feed.put([Rec(0), Rec(1)])
    await feed.put([Rec(2), Rec(3)])
    sizes: list[int] = []

    def score(messages: list[Record], into: int | None = None) -> int:
        sizes.append(len(messages))
        pipe.releases.append(asyncio.Event())
        pipe.releases[-1].set()
        pipe.scored += 1
        return pipe.scored

    pipe.score = score  # type: ignore[method-assign]
    task = asyncio.create_task(batcher.run(feed))
    await _until(lambda: sum(sizes) == 4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sizes == [3, 1]  # both queued lists in one go, cut at the size


async def test_drain_leaves_the_rest_of_a_large_fetch_unscored_and_unacked() -> None:
    """A fetch under a backlog is scored a batch at a time; a stop that came meanwhile
    waited for all of it (7.6 s of a 15 s shutdown timeout at 20,000 entities)."""
    pipe = FakePipeline()
    batcher = _batcher(pipe, max_inflight=1)
    batcher._size = 1
    feed = RecordFeed({"r"})
    runner = asyncio.create_task(batcher.run(feed))
    fetch = [Rec(0), Rec(1), Rec(2)]
    await feed.put(fetch)
    await _until(lambda: pipe.scored == 2)  # the second waits for the first's write
    draining = asyncio.create_task(batcher.drain())
    await _until(lambda: batcher._closing)
    for release in pipe.releases:
        release.set()
    await _until(lambda: draining.done() or pipe.scored == 3)
    for release in pipe.releases:  # a third batch's write too, had it been scored
        release.set()
    await draining
    assert pipe.scored == 2 and pipe.acked == fetch[:2]  # the third is the next owner's
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_drain_finishes_writes_saves_every_partition_and_takes_nothing_more() -> None:
    pipe = FakePipeline()
    acked = pipe.acked
    batcher = _batcher(pipe)
    feed = RecordFeed({"r"})
    runner = asyncio.create_task(batcher.run(feed))
    r0, r1 = Rec(0, partition=0), Rec(0, partition=1)
    await feed.put([r0, r1])
    await _until(lambda: pipe.scored == 1)
    draining = asyncio.create_task(batcher.drain())
    await _until(lambda: batcher._closing)
    assert not draining.done()  # the write in flight is not durable yet
    pipe.releases[0].set()
    await draining
    assert sorted(pipe.table) == [b"e0", b"e1"] and acked == [r0, r1]
    await feed.put([Rec(1, partition=0)])
    for _ in range(20):
        await asyncio.sleep(0)
    assert feed.take_nowait(10) == []  # the batcher took it from the feed ...
    assert pipe.scored == 1 and len(acked) == 2  # ... and left it for the next owner
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_a_revoke_checkpoint_waiting_for_its_changelog_keeps_to_its_bound() -> None:
    """The revoke's last save waits for its changelog records' delivery: a broker slow
    to deliver them held the rebalance past the bound (half the session timeout),
    where Faust's flush of its table's changelog had been bounded by it before."""
    pipe = FakePipeline()
    sent: list[list[Change]] = []

    async def changelog(changes: list[Change], ours: Callable[[], bool]) -> None:
        sent.append(changes)
        await asyncio.Event().wait()  # never delivered

    pipe.checkpointer = pipe.checkpointing(changelog)
    batcher = _batcher(pipe)
    await batcher._flush([Rec(0)])
    pipe.releases[0].set()
    await batcher._settle()
    saved = await asyncio.wait_for(batcher.checkpoint(0.05), timeout=2.0)
    assert sent and not saved  # sent, not delivered within the bound: nothing acked
    assert pipe.acked == []


async def test_a_batch_is_scored_in_slices_each_record_once_in_order_the_loop_running_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scoring a batch of 2,000 at once held the event loop up to 0.67 s (heartbeats,
    commits, fetches and timers waiting); it is scored a slice at a time."""
    monkeypatch.setattr(batching, "SCORE_SLICE", 2)
    pipe = FakePipeline()
    batcher = _batcher(pipe)
    seen: list[int] = []  # slices scored, as another task saw them at each of its turns

    async def other() -> None:
        while True:
            seen.append(len(pipe.slices))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(other())
    await asyncio.sleep(0)
    batch = [Rec(i) for i in range(5)]
    await batcher._flush(batch)
    watcher.cancel()
    assert pipe.slices == [[0, 1], [2, 3], [4]] and pipe.finished == [5]
    assert {1, 2} <= set(seen)  # it ran between the slices
    pipe.releases[0].set()
    await batcher.drain()
    assert pipe.acked == batch and pipe.log == ["score 1", "write 1", "publish 1", "save e0"]


async def test_a_stop_between_slices_leaves_the_rest_of_the_batch_unscored_and_unacked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batching, "SCORE_SLICE", 2)
    pipe = FakePipeline()
    batcher = _batcher(pipe)
    draining: list[asyncio.Task[None]] = []

    def stop(slices: int) -> None:  # SIGTERM right after the first slice
        if slices == 1:
            draining.append(asyncio.create_task(batcher.drain()))

    pipe.after_slice = stop
    batch = [Rec(i) for i in range(5)]

    async def flush() -> None:
        async with batcher._lock:  # as the batch loop holds it
            await batcher._flush(batch)

    flushing = asyncio.create_task(flush())
    await _until(lambda: bool(pipe.releases))
    pipe.releases[0].set()
    await flushing
    await draining[0]
    # the first slice is a batch of its own: written, saved, acked; the rest is the
    # partition's next owner's
    assert pipe.slices == [[0, 1]] and pipe.finished == [2]
    assert pipe.acked == batch[:2] and pipe.table == {b"e0": b"e0"}


async def test_models_dropped_between_slices_leave_the_batch_unwritten_and_unacked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An earlier batch's write failed (or a revoke dropped the models) while this one was
    being scored: what the dropped models scored is neither reported, written nor acked."""
    monkeypatch.setattr(batching, "SCORE_SLICE", 2)
    pipe = FakePipeline()
    batcher = _batcher(pipe)
    pipe.after_slice = lambda slices: pipe.discard() if slices == 1 else None
    pipe.now = 100.0
    await batcher._flush([Rec(i) for i in range(5)])
    for release in pipe.releases:  # a write, had one been started
        release.set()
    await batcher._settle()
    assert pipe.slices == [[0, 1]] and pipe.finished == [] and pipe.discarded == 1
    assert pipe.log == ["score 1"] and not pipe.acked and not pipe.table
    assert pipe.checkpointer.pending() == []  # nothing of the dropped models left to save


async def test_models_dropped_during_the_silence_scan_leave_the_batch_unwritten() -> None:
    """``finish`` awaits (the silence scan judges a slice of the live entities at a time):
    models dropped meanwhile drop the batch, as between slices."""
    pipe = FakePipeline()
    batcher = _batcher(pipe)
    pipe.in_finish = pipe.discard
    await batcher._flush([Rec(0), Rec(1)])
    for release in pipe.releases:  # a write, had one been started
        release.set()
    await batcher._settle()
    assert pipe.finished == [2] and pipe.log == ["score 1"] and not pipe.acked


class FullProducer(FakeProducer):
    """The app's producer whose buffer is full after ``room`` records, until ``freed``."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room
        self.freed = asyncio.Event()

    async def send(self, *args: Any) -> asyncio.Future[None]:
        if len(self.sent) >= self.room:
            await self.freed.wait()
        return await super().send(*args)


async def test_a_batch_mid_save_when_a_revoke_runs_out_of_time_sends_no_more_states() -> None:
    """A batch written before the revoke, still handing its snapshot's states to the
    producer when the revoke's bound ran out (the producer's buffer full), went on sending
    them afterwards: states of partitions given away, which could land after their next
    owner's own and be what the changelog holds last (what the next recovery loads). The
    one the producer is taking when the bound runs out still goes."""
    pipe = FakePipeline()
    app = FakeApp()
    app.producer = FullProducer(room=2)
    pipe.checkpointer = pipe.checkpointing(TableChangelog(app, FakeTable()))
    batcher = _batcher(pipe)
    pipe.checkpointer.touched((0, f"x{i}") for i in range(8))
    pipe.now = 100.0  # partition 0 due: the batch's snapshot is saved once it is durable
    await batcher._flush([Rec(0)])
    pipe.releases[0].set()
    await _until(lambda: len(app.producer.sent) == 2)  # durable; its save waits for room
    assert not await batcher.checkpoint(0.05)  # the bound ran out
    app.producer.freed.set()
    for _ in range(50):
        await asyncio.sleep(0)
    for delivery in app.producer.deliveries:
        delivery.set_result(None)
    await batcher._settle()
    # the two sent before, and the one the producer was taking when the bound ran out
    # (of 9: the snapshot's 8 entities and the batch's)
    assert len(app.producer.sent) == 3, [key for _, key, _, _ in app.producer.sent]
    assert pipe.acked == []
