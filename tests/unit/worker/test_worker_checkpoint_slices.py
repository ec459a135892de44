"""Checkpoints of many entities: packed in slices, acked once their changelog is delivered.

A worker holding 20,000 entities packed a partition's 5,000 in one go (0.6-1.2 s of
event loop held per checkpoint), and wrote them into the Faust table a key at a time,
whose producer buffer sent one record per turn of the loop: slower than the
checkpoints came during a backlog, so every commit waited for it, and a SIGTERM after
the backlog ran out of time (a hard exit, nothing committed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from stream_app.metrics import build_metrics
from stream_app.worker.checkpoint import DUMP_SLICE, PACK_SHARE, Change, Checkpointer
from stream_app.worker.faust_compat import TableChangelog
from stream_app.worker.feed import Record


def _rec(offset: int, partition: int = 0) -> Record:
    return Record(b"{}", None, "r", partition, offset, None, 1)


class Dump:
    """Packs an entity as its name; logs each pack; forgotten entities pack empty."""

    def __init__(self, log: list[str], forgotten: frozenset[str] = frozenset()) -> None:
        self.log = log
        self.forgotten = forgotten

    def dump(self, entity: str) -> bytes:
        self.log.append(f"pack {entity}")
        return b"" if entity in self.forgotten else entity.encode()

    def deleted(self, entity: str) -> None:
        pass


def _checkpointer(log: list[str], table: dict[bytes, bytes], **kw: Any) -> Checkpointer:
    dump = Dump(log, kw.pop("forgotten", frozenset()))
    return Checkpointer(
        dump,
        table,
        build_metrics(),
        every_s=0.0,
        ack=kw.pop("ack", lambda r: None),
        generation=lambda: 1,
        **kw,
    )


async def test_a_snapshot_of_many_entities_lets_the_event_loop_run_between_slices() -> None:
    log: list[str] = []
    cp = _checkpointer(log, {})
    entities = [f"e{i}" for i in range(3 * DUMP_SLICE)]
    cp.touched((0, e) for e in entities)

    async def tick() -> None:
        while True:
            log.append("tick")
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    log.clear()
    snapshot = await cp.snapshot(0)
    ticker.cancel()
    assert set(snapshot.blobs) == set(entities)
    packs = [i for i, step in enumerate(log) if step.startswith("pack")]
    ticks = [i for i, step in enumerate(log) if step == "tick"]
    assert any(packs[0] < t < packs[-1] for t in ticks)  # the loop ran mid-snapshot


async def test_a_snapshot_is_given_up_when_the_models_are_dropped_while_it_packs() -> None:
    """A revoke between two slices drops the live models: packing on would load the
    dropped entities again, and nothing of that snapshot may be saved."""
    log: list[str] = []
    table: dict[bytes, bytes] = {}
    cp = _checkpointer(log, table)
    cp.touched((0, f"e{i}") for i in range(3 * DUMP_SLICE))
    taking = asyncio.create_task(cp.snapshot(0))
    await asyncio.sleep(0)  # the first slice is packed
    cp.revoked()
    snapshot = await taking
    assert len([s for s in log if s.startswith("pack")]) == DUMP_SLICE
    assert not await cp.save(snapshot)
    assert table == {}


async def test_records_are_acked_only_once_the_changelog_has_their_state() -> None:
    log: list[str] = []
    table: dict[bytes, bytes] = {b"gone": b"old"}
    sent: list[list[Change]] = []
    delivered = asyncio.Event()

    async def changelog(changes: list[Change], ours: Callable[[], bool]) -> None:
        sent.append(changes)
        await delivered.wait()

    acked: list[Record] = []
    cp = _checkpointer(
        log, table, ack=acked.append, changelog=changelog, forgotten=frozenset({"gone"})
    )
    cp.touched([(0, "e1"), (0, "gone")])
    cp.hold([_rec(7)])
    saving = asyncio.create_task(cp.save(await cp.snapshot(0)))
    await asyncio.sleep(0)
    assert sorted(sent[0], key=lambda c: c[0]) == [(b"e1", b"e1"), (b"gone", None)]
    assert acked == [] and not saving.done()  # the changelog has not got them yet
    delivered.set()
    assert await saving
    assert [r.offset for r in acked] == [7] and table == {b"e1": b"e1"}


async def test_a_save_whose_partitions_went_while_its_changelog_was_sent_acks_nothing() -> None:
    log: list[str] = []
    delivered = asyncio.Event()

    async def changelog(changes: list[Change], ours: Callable[[], bool]) -> None:
        await delivered.wait()

    acked: list[Record] = []
    cp = _checkpointer(log, {}, ack=acked.append, changelog=changelog)
    cp.touched([(0, "e1")])
    cp.hold([_rec(3)])
    saving = asyncio.create_task(cp.save(await cp.snapshot(0)))
    await asyncio.sleep(0)
    cp.revoked()
    delivered.set()
    assert not await saving
    assert acked == []


class FakeProducer:
    """The app's producer: each send returns its delivery, which the test completes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int | None]] = []
        self.deliveries: list[asyncio.Future[None]] = []

    async def send(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> asyncio.Future[None]:
        self.sent.append((topic, key, value, partition))
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery


class FakeApp:
    def __init__(self) -> None:
        self.producer = FakeProducer()

    async def maybe_start_producer(self) -> FakeProducer:
        return self.producer


class FakeTopic:
    def get_topic_name(self) -> str:
        return "g-series-state-changelog"


class FakeTable:
    changelog_topic = FakeTopic()


async def test_the_table_changelog_is_sent_by_key_and_waited_for() -> None:
    app = FakeApp()
    writing = asyncio.create_task(
        TableChangelog(app, FakeTable())([(b"a", b"1"), (b"b", None)], lambda: True)
    )
    await asyncio.sleep(0)
    assert app.producer.sent == [
        ("g-series-state-changelog", b"a", b"1", None),  # partitioned by key
        ("g-series-state-changelog", b"b", None, None),  # a tombstone
    ]
    assert not writing.done()  # sent, not delivered
    for delivery in app.producer.deliveries:
        delivery.set_result(None)
    await writing


async def test_a_snapshot_that_fails_while_it_packs_leaves_its_entities_to_the_next() -> None:
    """A pack that raises (the idle tick logs it and goes on) left every entity of the
    snapshot counted unsaved for good (never evicted again) and no longer changed: the
    next save acked the partition's records without their state."""
    log: list[str] = []
    table: dict[bytes, bytes] = {}
    acked: list[Record] = []
    cp = _checkpointer(log, table, ack=acked.append)
    entities = [f"e{i}" for i in range(2 * DUMP_SLICE)]
    cp.touched((0, e) for e in entities)
    cp.hold([_rec(5)])
    failing = cp._states
    real = failing.dump
    calls = 0

    def dump(entity: str) -> bytes:
        nonlocal calls
        calls += 1
        if calls == DUMP_SLICE + 1:  # in the second slice
            raise RuntimeError("pack failed")
        return real(entity)

    failing.dump = dump  # type: ignore[method-assign]
    try:
        await cp.snapshot(0)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the pack's error was swallowed")
    snapshot = await cp.snapshot(0)
    assert set(snapshot.blobs) == set(entities)  # still changed: packed by the next one
    assert await cp.save(snapshot)
    assert len(table) == len(entities) and [r.offset for r in acked] == [5]
    assert not any(cp.busy(e) for e in entities)  # saved: evictable again


async def test_checkpoints_are_spaced_out_while_packing_takes_more_than_its_share() -> None:
    """In a backlog a large fleet changes whole between two checkpoints: at the 2 s
    default a fleet of 20,000 entities spent 68 % of the worker's CPU packing. The
    next snapshot now waits at least the last one's packing time over ``PACK_SHARE``;
    once packing is cheap again, the partitions take their turns as configured."""
    now = [100.0]
    packing = [0.0]

    class SlowDump(Dump):
        def dump(self, entity: str) -> bytes:
            packing[0] += 0.01  # 10 ms an entity, on the packing clock
            return super().dump(entity)

    cp = Checkpointer(
        SlowDump([]),
        {},
        build_metrics(),
        every_s=2.0,
        ack=lambda r: None,
        generation=lambda: 1,
        clock=lambda: now[0],
        timer=lambda: packing[0],
    )
    cp.touched([(0, f"a{i}") for i in range(40)] + [(1, f"b{i}") for i in range(40)])
    assert cp.due() == 0
    await cp.save(await cp.snapshot(0))  # packed for 0.4 s
    assert cp.spacing(2) == pytest.approx(0.4 / PACK_SHARE)
    now[0] += 1.0  # every_s over two partitions: partition 1's turn, were packing cheap
    assert cp.due() is None
    now[0] += 0.4 / PACK_SHARE - 1.0 + 1e-6
    assert cp.due() == 1
    cp.touched([(0, "a0")])
    await cp.save(await cp.snapshot(1))
    cp.touched([(1, "b0")])
    now[0] += 0.4 / PACK_SHARE + 1e-6  # partition 1 packed 40 as well
    assert cp.due() == 0
    await cp.save(await cp.snapshot(0))  # one entity: 10 ms, and back to every_s
    assert (cp.spacing(2), cp.spacing(1)) == (1.0, 2.0)
    now[0] += 2.0
    assert cp.due() == 1
