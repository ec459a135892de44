"""EventBatcher in memory: acks follow durability and snapshots, events keep batch order."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from stream_app.worker.batching import EventBatcher
from stream_app.worker.feed import RecordFeed


@dataclass
class Rec:
    offset: int
    partition: int = 0
    generation_id: int = 1
    topic: str = "r"
    value: bytes | None = b"{}"
    key: bytes | None = None
    tp: Any = None


@dataclass
class Snap:
    partition: int
    upto: int  # batches scored when the snapshot was taken
    generation: int = 1


@dataclass
class FakePipeline:
    """Records the order of every step; each write waits for its own release."""

    due: list[int | None] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    releases: list[asyncio.Event] = field(default_factory=list)
    fail_write: int | None = None
    generation: int = 1
    scored: int = 0
    saved: list[Snap] = field(default_factory=list)
    discarded: int = 0

    def score(self, messages: list[Any]) -> int:
        self.scored += 1
        self.releases.append(asyncio.Event())
        self.log.append(f"score {self.scored}")
        return self.scored

    async def write(self, out: int) -> None:
        await self.releases[out - 1].wait()
        if out == self.fail_write:
            raise RuntimeError("database gone")
        self.log.append(f"write {out}")

    async def publish(self, out: int) -> None:
        self.log.append(f"publish {out}")

    def checkpoint_due(self, held: Iterable[int]) -> int | None:
        return self.due.pop(0) if self.due else None

    def pending(self, held: Iterable[int]) -> list[int]:
        return sorted(set(held))

    def snapshot(self, partition: int) -> Snap:
        return Snap(partition, self.scored, self.generation)

    def save(self, snapshot: Snap) -> bool:
        if snapshot.generation != self.generation:
            return False
        self.saved.append(snapshot)
        self.log.append(f"save p{snapshot.partition} upto {snapshot.upto}")
        return True

    def discard(self) -> None:
        self.discarded += 1


def _batcher(pipe: FakePipeline, acked: list[Rec], **kw: Any) -> EventBatcher:
    kw.setdefault("generation", lambda: 1)
    return EventBatcher(pipe, size=100, idle_every=10.0, ack=acked.append, **kw)


async def _until(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def test_writes_overlap_but_events_leave_in_batch_order() -> None:
    pipe, acked = FakePipeline(), list[Rec]()
    batcher = _batcher(pipe, acked, max_inflight=2)
    await batcher._flush([Rec(0)])
    await batcher._flush([Rec(1)])
    pipe.releases[1].set()  # the second write finishes first
    await _until(lambda: "write 2" in pipe.log)
    assert "publish 2" not in pipe.log
    pipe.releases[0].set()
    await batcher._settle()
    assert [s for s in pipe.log if s.startswith("publish")] == ["publish 1", "publish 2"]


async def test_no_more_than_max_inflight_writes_at_once() -> None:
    pipe, acked = FakePipeline(), list[Rec]()
    batcher = _batcher(pipe, acked, max_inflight=2)
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
    pipe, acked = FakePipeline(due=[None, 0]), list[Rec]()
    batcher = _batcher(pipe, acked)
    r0, r1, r2 = Rec(0, partition=0), Rec(0, partition=1), Rec(1, partition=0)
    await batcher._flush([r0, r1])
    for release in pipe.releases:
        release.set()
    await batcher._settle()
    assert acked == []  # durable, but no snapshot yet
    await batcher._flush([r2])  # partition 0 is due: snapshot after scoring batch 2
    assert acked == []  # snapshot taken, batch 2 not durable yet
    pipe.releases[1].set()
    await batcher._settle()
    assert pipe.saved == [Snap(0, 2)]
    assert acked == [r0, r2]  # partition 1 waits for its own checkpoint
    assert pipe.log.index("write 2") < pipe.log.index("save p0 upto 2")


async def test_a_snapshot_waits_for_every_earlier_write() -> None:
    pipe, acked = FakePipeline(due=[None, 0]), list[Rec]()
    batcher = _batcher(pipe, acked)
    await batcher._flush([Rec(0)])
    await batcher._flush([Rec(1)])
    pipe.releases[1].set()  # the snapshot's own batch is durable first
    await _until(lambda: "write 2" in pipe.log)
    assert pipe.saved == [] and acked == []
    pipe.releases[0].set()
    await batcher._settle()
    assert pipe.saved == [Snap(0, 2)] and [r.offset for r in acked] == [0, 1]


async def test_after_a_rebalance_nothing_of_the_old_generation_is_saved_or_acked() -> None:
    pipe, acked = FakePipeline(due=[0]), list[Rec]()
    current = [1]
    batcher = _batcher(pipe, acked, generation=lambda: current[0])
    await batcher._flush([Rec(0)])
    current[0] = pipe.generation = 2  # partitions revoked and assigned again
    batcher.revoked()
    pipe.releases[0].set()
    await batcher._settle()
    assert pipe.saved == [] and acked == []
    assert not await batcher._admit(Rec(1, generation_id=1))  # fetched before the rebalance
    assert await batcher._admit(Rec(1, generation_id=2))


async def test_a_failed_write_drops_the_models_and_calls_on_fatal() -> None:
    pipe, acked = FakePipeline(fail_write=1, due=[None, 0]), list[Rec]()
    fatal: list[BaseException] = []
    batcher = _batcher(pipe, acked, on_fatal=fatal.append)
    await batcher._flush([Rec(0)])
    await batcher._flush([Rec(1)])
    for release in pipe.releases:
        release.set()
    with pytest.raises(RuntimeError):
        await batcher._settle()
    assert pipe.discarded >= 1 and fatal and acked == [] and pipe.saved == []
    assert not any(s.startswith("publish") for s in pipe.log)


async def test_run_batches_what_is_queued_up_to_the_size() -> None:
    pipe, acked = FakePipeline(), list[Rec]()
    batcher = _batcher(pipe, acked)
    batcher._size = 3
    feed = RecordFeed({"r"})
    feed.offer_nowait([Rec(0), Rec(1)])
    feed.offer_nowait([Rec(2), Rec(3)])
    sizes: list[int] = []

    def score(messages: list[Any]) -> int:
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


async def test_drain_finishes_writes_saves_every_partition_and_takes_nothing_more() -> None:
    pipe, acked = FakePipeline(), list[Rec]()
    batcher = _batcher(pipe, acked)
    feed = RecordFeed({"r"})
    runner = asyncio.create_task(batcher.run(feed))
    r0, r1 = Rec(0, partition=0), Rec(0, partition=1)
    feed.offer_nowait([r0, r1])
    await _until(lambda: pipe.scored == 1)
    draining = asyncio.create_task(batcher.drain())
    await _until(lambda: batcher._closing)
    assert not draining.done()  # the write in flight is not durable yet
    pipe.releases[0].set()
    await draining
    assert [s.partition for s in pipe.saved] == [0, 1] and acked == [r0, r1]
    feed.offer_nowait([Rec(1, partition=0)])
    for _ in range(20):
        await asyncio.sleep(0)
    assert feed.take_nowait(10) == []  # the batcher took it from the feed ...
    assert pipe.scored == 1 and len(acked) == 2  # ... and left it for the next owner
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
