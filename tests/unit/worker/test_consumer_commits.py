"""What the batching consumer's fetch loop leaves Faust to commit (no broker).

The real ``BatchingConsumer._dispatch``, ``seek`` and ``perform_seek`` and Faust's real
``ack``, ``_add_gap`` and ``_new_offset`` run on a consumer whose broker side
(``seek_to_committed``, ``_seek``, ``highwater``) is faked; the tests count the commits
Faust's periodic commit needs until the committed offset reaches what was acked. A gap
recorded over offsets that are also acked puts them twice in Faust's acked list, and every
commit then moves one offset on (the crawl a drill on the stack showed after rebalances
with a fetched backlog: 5,665 offsets behind, 5,545 still left when the workers stopped).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import defaultdict
from collections.abc import Coroutine
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP as FaustTP
from intervaltree import IntervalTree

from stream_app.worker.faust_compat.consumer import BatchingConsumer
from stream_app.worker.feed import Record

TOPIC = "readings"
TP = TopicPartition(TOPIC, 4)
# a topic on Faust's per-record path (operators' labels took it until 2026-12-06; they
# now come through the feed with the readings, see stream_app/worker/labels.py)
LABELS = TopicPartition("feedback", 4)
CHANGELOG = "state-changelog"


class _Feed:
    topics = frozenset({TOPIC})

    def __init__(self) -> None:
        self.batches: list[list[Record]] = []

    async def put(self, batch: list[Record]) -> None:
        self.batches.append(batch)

    def offsets(self) -> list[int]:
        return [r.offset for batch in self.batches for r in batch]


class _Log:
    def dev(self, *args: object) -> None:
        pass


class _Consumer(BatchingConsumer):
    """The real class without its service set-up; only what talks to the broker is faked."""

    log = _Log()

    def __init__(self, committed: int) -> None:
        self.broker_committed = committed
        self.calls: list[str] = []
        self.flow_active = True
        self.suspend_flow = asyncio.Event()
        self._handed = {}
        self._read_offset = defaultdict(lambda: None)
        self._gap = defaultdict(IntervalTree)
        self._acked = defaultdict(list)
        self._acked_index = defaultdict(set)
        self._committed_offset = defaultdict(lambda: None)
        self._unacked_messages = weakref.WeakSet()
        self._n_acked = 0
        self._waiting_for_ack = None
        self._buffered_partitions = set()
        self._active_partitions = {FaustTP(TOPIC, TP.partition)}  # Faust's own type
        self._paused_partitions = set()
        self._seeking_committed = 0
        self.seek_gate: asyncio.Event | None = None  # set: the committed offsets arrive
        self.streamed: list[int] = []  # the offsets handed to Faust's per-record path
        self.app = SimpleNamespace(
            batch_feed=_Feed(),
            consumer_generation_id=3,
            topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
            tables=SimpleNamespace(changelog_topics={CHANGELOG}),
            monitor=SimpleNamespace(
                track_tp_end_offset=lambda tp, offset: None, stream_inbound_time={}
            ),
        )

    async def callback(self, message: Any) -> None:
        self.streamed.append(message.offset)

    def _to_message(self, tp: Any, record: Any) -> Any:
        return record

    async def seek_to_committed(self) -> dict[Any, int]:
        self.calls.append("seek to committed")
        if self.seek_gate is not None:
            await self.seek_gate.wait()
        return {TP: self.broker_committed}

    async def _rewind_unmoved(self, dropped: Any) -> dict[Any, int]:
        self.calls.append(f"rewind {sorted(dropped.items())}")
        return {}

    async def _seek(self, partition: Any, offset: int) -> None:
        pass

    def highwater(self, tp: Any) -> int:
        return 10**6

    async def wait_first(self, *coros: Coroutine[Any, Any, Any]) -> Any:
        first, *rest = coros
        for coro in rest:
            coro.close()
        return await first

    async def hand_over(
        self, feed: _Feed, first: int, last: int, holes: frozenset[int] = frozenset()
    ) -> None:
        """A fetch of ``first``..``last`` returned to the fetch loop (as drained, whatever
        the partitions Faust drains now)."""
        fetched = [
            SimpleNamespace(offset=o, value=b"v", key=b"k", topic=TOPIC, partition=TP.partition)
            for o in range(first, last + 1)
            if o not in holes
        ]
        await self._dispatch(feed, {TP: fetched}, None)

    def draining(self) -> bool:
        """Whether Faust's fetch would hand the readings partition's records over now."""
        return TP in self._get_active_partitions()

    def durable(self, offsets: list[int]) -> None:
        for offset in offsets:
            self.ack(Record(b"v", b"k", TOPIC, TP.partition, offset, TP, 3))

    def commit_until_still(self, limit: int = 5000) -> list[int]:
        """Commit as Faust's periodic commit does until nothing moves: the offsets."""
        committed: list[int] = []
        for _ in range(limit):
            offset = FaustConsumer._new_offset(self, TP)
            if offset is None or not self._should_commit(TP, offset):
                break
            self._committed_offset[TP] = offset
            committed.append(offset)
        return committed


async def test_records_after_the_recovery_seek_to_the_committed_offset_are_no_gap() -> None:
    """The order the drills logged: 100..199 handed over after the assignment, then
    Faust's recovery seeks back to the committed 100, while the consumer thread still
    returns 200.. from its old position; 100..199 come again and are dropped."""
    consumer, feed = _Consumer(100), _Feed()
    await consumer.perform_seek()  # the assignment
    await consumer.hand_over(feed, 100, 199)
    await consumer.perform_seek()  # the recovery's "seek to committed offsets"
    await consumer.hand_over(feed, 200, 209)
    await consumer.hand_over(feed, 100, 209)
    assert sorted(set(feed.offsets())) == list(range(100, 210))
    consumer.durable(list(range(100, 210)))
    committed = consumer.commit_until_still()
    assert committed[-1] == 210
    assert len(committed) == 1, f"{len(committed)} commits to reach 210: {committed[:4]}"


async def test_a_commit_never_passes_records_handed_over_and_not_yet_durable() -> None:
    """The same order with only the first records durable: the gap over 101..199 stood in
    for records still being written, and the commit went past them to 200 (a crash then
    would have lost them)."""
    consumer, feed = _Consumer(100), _Feed()
    await consumer.perform_seek()
    await consumer.hand_over(feed, 100, 199)
    await consumer.perform_seek()
    await consumer.hand_over(feed, 200, 209)
    consumer.durable(list(range(100, 121)))
    committed = consumer.commit_until_still()
    assert committed == [121]


async def test_records_fetched_before_the_assignment_seek_then_read_again_are_no_gap() -> None:
    """200.. fetched from the old position arrive first (a gap over 101..199 is
    recorded), then the offset guard seeks back to 100 and 100..209 are read again."""
    consumer, feed = _Consumer(100), _Feed()
    await consumer.perform_seek()
    await consumer.hand_over(feed, 200, 209)
    await consumer.seek(TP, 100)
    await consumer.hand_over(feed, 100, 209)
    consumer.durable(list(range(100, 210)))
    committed = consumer.commit_until_still()
    assert committed[-1] == 210 and len(committed) <= 2, committed[:4]


async def test_offsets_without_records_do_not_hold_the_commit_back() -> None:
    """Compaction or transaction markers leave offsets with no record; across a seek
    back over them, and across the recovery's seek, too."""
    holes = {105, 106, 150}
    for again in ("none", "seek", "recovery"):
        consumer, feed = _Consumer(100), _Feed()
        await consumer.perform_seek()
        await consumer.hand_over(feed, 100, 199, holes)
        if again == "seek":
            await consumer.seek(TP, 100)
        elif again == "recovery":
            await consumer.perform_seek()
        if again != "none":
            await consumer.hand_over(feed, 100, 199, holes)
        consumer.durable(sorted(set(feed.offsets())))
        committed = consumer.commit_until_still()
        assert committed and committed[-1] == 200, (again, committed[-4:])


async def test_records_dropped_while_the_flow_is_stopped_are_rewound_before_the_seek() -> None:
    """A fetch returned while a rebalance has stopped the flow is dropped, and Faust seeks
    back to the committed offsets, which moves no partition without one. A changelog's
    records fetched after the table recovery's own seek were lost to it that way: in a
    rebalance drill, changelog partition 3's records 0..415 were dropped right after the
    recovery seeked there, and it waited for them (``at -1 of 415``) until the watchdog
    exited the worker. Every partition of the dropped fetch is offered for a rewind now,
    before the seek to the committed offsets (which wins where there is one)."""
    consumer, feed = _Consumer(100), _Feed()
    changelog = TopicPartition(CHANGELOG, 3)
    fetched = [
        SimpleNamespace(offset=o, value=b"v", key=b"k", topic=changelog.topic, partition=3)
        for o in range(416)
    ]
    consumer.flow_active = False
    await consumer._dispatch(feed, {changelog: fetched}, None)
    await consumer.hand_over(feed, 100, 119)
    assert feed.batches == []  # nothing handed over while the flow is stopped
    assert consumer.calls == [
        f"rewind {[(changelog, (0, 415))]}",
        "seek to committed",
        f"rewind {[(TP, (100, 119))]}",
        "seek to committed",
    ]


async def test_each_hand_over_tells_faust_s_monitor_the_stream_took_events() -> None:
    """Faust's check of the event path reads when a stream last took an event of each
    partition; the batches never told it, and it logged "Stream has not started
    processing" as an ERROR while a worker caught up with a backlog."""
    consumer, feed = _Consumer(committed=0), _Feed()
    inbound = consumer.app.monitor.stream_inbound_time
    before = time.monotonic()
    await consumer.hand_over(feed, 0, 9)
    assert before <= inbound[TP] <= time.monotonic()


async def test_readings_fetched_while_faust_seeks_to_the_committed_offsets_come_once() -> None:
    """Faust's recovery resumes the stream partitions, then awaits a committed-offset
    look-up per partition before it seeks each there. The readings aiokafka had fetched
    from the committed offsets were handed over meanwhile, the seek put the partitions
    back, and a restarted worker read its whole backlog twice (30,000 readings skipped as
    replayed, in 1 of 5 SIGTERM restarts on the stack, 4 of 4 with a 1 ms fetch wait).
    During the seek the partition is not drained, a fetch drained just before is dropped
    and offered for a rewind, and afterwards the partition is drained again."""
    consumer, feed = _Consumer(100), _Feed()
    consumer.seek_gate = asyncio.Event()
    seeking = asyncio.create_task(consumer.perform_seek())
    await asyncio.sleep(0)
    assert not consumer.draining()
    await consumer.hand_over(feed, 100, 199)  # drained just before the seek began
    assert feed.batches == []
    consumer.seek_gate.set()
    await seeking
    assert consumer.draining()
    await consumer.hand_over(feed, 100, 199)  # read again from the committed offset
    assert feed.offsets() == list(range(100, 200))
    assert consumer.calls == ["seek to committed", f"rewind {[(TP, (100, 199))]}"]


async def test_labels_fetched_while_faust_seeks_to_the_committed_offsets_come_once() -> None:
    """Operators' labels take Faust's per-record path; fetched during the seek they were
    handed to the stream, and again once the seek put their partition back (a label
    applied twice: 14 of 120 labels waiting at three restarts on the stack). Held back
    as the readings are; a changelog's records (the table recovery's own) are not."""
    consumer, feed = _Consumer(100), _Feed()
    consumer._active_partitions.add(FaustTP(LABELS.topic, LABELS.partition))
    changelog = TopicPartition(CHANGELOG, 3)
    consumer.seek_gate = asyncio.Event()
    seeking = asyncio.create_task(consumer.perform_seek())
    await asyncio.sleep(0)
    assert FaustTP(LABELS.topic, LABELS.partition) not in consumer._get_active_partitions()

    def fetch(tp: TopicPartition, first: int, last: int) -> list[Any]:
        return [
            SimpleNamespace(offset=o, value=b"v", key=b"k", topic=tp.topic, partition=tp.partition)
            for o in range(first, last + 1)
        ]

    await consumer._dispatch(
        feed, {LABELS: fetch(LABELS, 7, 9), changelog: fetch(changelog, 0, 2)}, None
    )
    assert consumer.streamed == [0, 1, 2]  # the changelog's, passed on; no label
    assert consumer.calls == ["seek to committed", f"rewind {[(LABELS, (7, 9))]}"]
    consumer.seek_gate.set()
    await seeking
    assert FaustTP(LABELS.topic, LABELS.partition) in consumer._get_active_partitions()
    await consumer._dispatch(feed, {LABELS: fetch(LABELS, 7, 9)}, None)
    assert consumer.streamed == [0, 1, 2, 7, 8, 9]  # each label once


async def test_a_rebalance_during_the_seek_leaves_the_readings_to_the_next_recovery() -> None:
    """A rebalance that begins while the seek awaits pauses the assignment; the new
    generation's recovery resumes the stream partitions after its own seek. Given back
    here, they would be drained while that recovery still restores the states."""
    for change in ("paused", "new generation"):
        consumer = _Consumer(100)
        consumer.seek_gate = asyncio.Event()
        seeking = asyncio.create_task(consumer.perform_seek())
        await asyncio.sleep(0)
        if change == "paused":  # Faust's revoke: the flow stopped, every partition paused
            consumer.flow_active = False
            consumer.pause_partitions({FaustTP(TOPIC, TP.partition)})
        else:
            consumer.app.consumer_generation_id += 1
        consumer.seek_gate.set()
        await seeking
        assert not consumer.draining(), change


async def test_a_seek_made_while_the_flow_is_stopped_gives_the_readings_back() -> None:
    """Faust's recovery of an app without tables seeks, then resumes the flow: the flow
    stopped alone is no rebalance, and the partitions kept back would never be drained."""
    consumer = _Consumer(100)
    consumer.flow_active = False
    await consumer.perform_seek()
    assert consumer.draining()
