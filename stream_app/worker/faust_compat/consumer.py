"""Readings reach the batcher a fetch at a time, not an event at a time.

Faust hands every consumed record to its stream on its own: two tasks and an
``asyncio.wait`` per record in ``Consumer._drain_messages``, then the
conductor, the topic's queue and the stream iterator. In the worker that
was about a quarter of all CPU time, more than scoring. The worker never
needs one record at a time: it scores batches. So the fetch loop below passes
each fetch's readings to a :class:`RecordFeed` as one list, and every other
topic (feedback, the changelog during recovery) still goes through Faust's
per-record path. Group membership, table recovery, offsets and commits stay
Faust's: records are acked on Faust's consumer, which commits them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Mapping
from time import monotonic
from typing import Any, Protocol

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

from stream_app.kafka_batches import unreadable_detail
from stream_app.worker.feed import Record, RecordFeed

log = logging.getLogger(__name__)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):  # type: ignore[misc]
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust hard-codes fetch_max_wait_ms=1500. aiokafka leaves partitions
        # whose fetched records are still buffered out of its next fetch
        # request, so a request sent while the worker was busy (a checkpoint)
        # held only idle partitions and the broker kept it the full 1.5 s:
        # readings stalled for that long. The wait bounds that stall.
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 1500)
        return consumer


_NO_OFFSET = 2**63  # beyond any Kafka offset


def forget_gaps(gaps: Mapping[Any, Any], tp: Any, offset: int) -> None:
    """Offsets from ``offset`` on are read again (a seek): forget the gaps recorded over
    them. After a rebalance the first records handed over could come from before Faust's
    seek to the committed offset, and the jump was recorded as a gap over offsets that
    exist; read again and acked, each was in Faust's acked list twice, and its commits of
    the partition crawled about one offset a second (committed 2,459 behind what was
    stored, 41 s to catch up)."""
    tree = gaps.get(tp)
    if tree:
        tree.chop(offset, _NO_OFFSET)


async def rewind_unmoved(consumer: Any, dropped: Mapping[Any, tuple[int, int]]) -> dict[Any, int]:
    """Run in the consumer's thread: each partition still assigned whose position is right
    after the records dropped there (``first``, ``last``), so nothing moved it since, goes
    back to ``first``; the partitions rewound, with their offsets.

    No await between a check and its seek: a seek made meanwhile in this thread (the table
    recovery's, to where it starts reading) is never undone. aiokafka's own ``position``
    reads the same state, but waits where a partition has no position yet (a reset is due,
    and then nothing is to be rewound).
    """
    subscription = getattr(getattr(consumer, "_subscription", None), "subscription", None)
    assignment = getattr(subscription, "assignment", None)
    if assignment is None:
        return {}
    rewound = {}
    for tp, (first, last) in dropped.items():
        if tp not in assignment.tps:
            continue
        state = assignment.state_value(tp)
        if state is not None and state.has_valid_position and state.position == last + 1:
            consumer.seek(tp, first)
            rewound[tp] = first
    return rewound


class BatchingConsumer(faust_aiokafka.Consumer):  # type: ignore[misc]  # faust is untyped here
    """Faust's aiokafka consumer whose fetch loop hands the feed's topics over in lists."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per partition, the highest offset handed over since the assignment or the last
        # seek of ours. Faust's recovery seeks every partition back to its committed
        # offset (``perform_seek``) after records up to here were handed over, while the
        # consumer thread still returns records from its old position: the jump from the
        # committed offset to those is no gap, its offsets exist and are acked when
        # durable. As a gap, each was twice in Faust's acked list (its commits crawled
        # about one offset a second), and the gap stood in for records not durable yet,
        # which a commit could then pass. A gap is recorded above this offset only.
        self._handed: dict[Any, int] = {}
        # Faust's seeks of every partition to its committed offset under way (see
        # ``perform_seek``): the feed's records fetched meanwhile are not handed over.
        self._seeking_committed = 0

    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def seek(self, partition: Any, offset: int) -> None:  # pragma: no cover - broker
        await super().seek(partition, offset)
        # read again from ``offset`` (the guard's seek back): what lies above was not
        # handed over in this pass, and the gaps there are found again on the way
        forget_gaps(self._gap, partition, offset)
        self._handed.pop(partition, None)

    async def perform_seek(self) -> None:
        """Faust's seek of every partition to its committed offset (after each table
        recovery), with the stream partitions held back until it is done.

        Faust resumes the stream partitions first and then awaits one committed-offset
        look-up per partition, in turn. aiokafka had fetched the readings from the
        committed offsets during the recovery, and the fetch loop handed them over while
        those look-ups went on; the seek then put each partition back where they began,
        and every one of them came a second time, skipped as replayed (a restarted worker
        read its whole backlog of 30,000 readings twice in 1 of 5 SIGTERM restarts, in 4
        of 4 with a 1 ms fetch wait). Operators' labels came twice the same way, and a
        label is not idempotent: each was applied again (14 of 120 labels waiting at
        three restarts with a 1 ms fetch wait). Meanwhile the stream partitions (all but
        the tables' changelogs) are taken out of the partitions Faust drains (aiokafka
        keeps what it fetched for them, and a seek discards it), and a fetch drained just
        before is dropped and rewound (``_drop_and_rewind``): each record is read once,
        from the committed offset.
        """
        feed: RecordFeed | None = getattr(self.app, "batch_feed", None)
        active = self._get_active_partitions()
        stream = self._stream_topics(active) if feed is not None else set()
        held = {tp for tp in active if tp.topic in stream}
        generation = self.app.consumer_generation_id
        active.difference_update(held)
        self._seeking_committed += 1
        try:
            await super().perform_seek()
        finally:
            self._seeking_committed -= 1
            # Given back unless a rebalance began meanwhile: it pauses the assignment, and
            # the new generation's recovery resumes the stream partitions after its own
            # seek. Given back during that recovery, readings would meet half-restored
            # states.
            if self.app.consumer_generation_id == generation:
                self._get_active_partitions().update(held - self._paused_partitions)

    def _stream_topics(self, tps: Iterable[Any]) -> set[str]:
        """The topics of ``tps`` that the seek to the committed offsets moves: all but the
        tables' changelogs (the partitions Faust's recovery resumes before that seek)."""
        changelogs = self.app.tables.changelog_topics
        return {tp.topic for tp in tps if tp.topic not in changelogs}

    async def _drop_and_rewind(
        self, records: Any, topics: Collection[str] | None, why: str, level: int
    ) -> Any:
        """``records`` without those of ``topics`` (None: of every topic), which are
        dropped: each partition the fetch left where it was goes back to its first record
        dropped (a seek made since wins), so they are read again. Logged at ``level``
        when a partition was rewound, at DEBUG otherwise."""
        dropped = {
            tp: (fetched[0].offset, fetched[-1].offset)
            for tp, fetched in records.items()
            if fetched and (topics is None or tp.topic in topics)
        }
        if not dropped:
            return records
        try:
            rewound = await self._rewind_unmoved(dropped)
        except Exception as exc:  # a seek to the committed offsets still sees to them
            log.warning("%s: rewind of the dropped records failed: %s", why, exc)
        else:
            log.log(
                level if rewound else logging.DEBUG,
                "%s: %d fetched record(s) dropped, to be read again: %s",
                why,
                sum(len(records[tp]) for tp in dropped),
                ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in rewound.items())
                or "from where a seek since put them",
            )
        return {tp: fetched for tp, fetched in records.items() if tp not in dropped}

    async def _rewind_unmoved(  # pragma: no cover - broker
        self, dropped: Mapping[Any, tuple[int, int]]
    ) -> dict[Any, int]:
        if not dropped:
            return {}
        thread = self._thread
        rewound: dict[Any, int] = await thread.call_thread(
            rewind_unmoved, thread._ensure_consumer(), dropped
        )
        return rewound

    async def on_partitions_revoked(self, revoked: Any) -> None:  # pragma: no cover - broker
        # Faust forgets the acks of the partitions it gives up right below, before its
        # app hears of the revoke, and commits none of them. The app saves its models
        # and commits first, so the next owners go on from here.
        before = getattr(self.app, "before_revoke", None)
        if before is not None and not self.app.should_stop:
            await before()
        for tp in revoked:
            self._handed.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - needs a broker
        feed: RecordFeed | None = getattr(self.app, "batch_feed", None)
        if feed is None:
            await super()._drain_messages(fetcher)
            return
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                self.diag.set_flag(CONSUMER_FETCHING)
                await asyncio.sleep(0)
                if self.should_stop:
                    break
                records, active = await self._wait_next_records(1.0)
                if records and not self.should_stop:
                    await self._dispatch(feed, records, active)
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _dispatch(self, feed: RecordFeed, records: Any, active: Any) -> None:
        """One fetch: the feed's topics as one list of :class:`Record`, the rest per event.

        Faust's own path builds a message object and updates its monitor for
        every record, in a round robin over partitions; here that is done once
        per partition and fetch.
        """
        if not self.flow_active:
            # A rebalance began while fetching: what was fetched may belong to
            # revoked partitions, and is dropped. Faust seeks back to the committed
            # offsets here, which moves no partition without one: a changelog the
            # table recovery reads (it seeks there itself, and the fetch in flight
            # across the rebalance can return its records after that seek: dropped,
            # they were lost to it, and it waited for them until the watchdog's exit),
            # or a stream partition of a group that never committed. Each partition
            # the fetch left where it was is rewound to the first record dropped.
            await self._drop_and_rewind(records, None, "flow stopped", logging.INFO)
            try:
                await self.perform_seek()
            except Exception as exc:
                log.warning("seek to committed offsets after a stopped flow failed: %s", exc)
            return
        if self._seeking_committed:
            # the stream's records held back: the seek to the committed offsets under way
            # would put them back, and they would come twice (see ``perform_seek``)
            records = await self._drop_and_rewind(
                records,
                self._stream_topics(records),
                "seek to the committed offsets under way",
                logging.DEBUG,
            )
        generation = self.app.consumer_generation_id
        read_offset = self._read_offset
        handed_up_to = self._handed
        batch: list[Any] = []
        for tp, fetched in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            last = read_offset[tp]
            if tp.topic in feed.topics:
                gaps = self.app.topics.acks_enabled_for(tp.topic)
                handed = handed_up_to.get(tp)
                for record in fetched:
                    offset = record.offset
                    if last is not None:
                        if offset < last:
                            continue  # fetched before a seek back; it comes again
                        below = last if handed is None else max(last, handed)
                        if offset - below > 1 and gaps:
                            # Offsets that hold no record (compaction, transaction
                            # markers) must not block the commit of later ones. Faust's
                            # gap takes in its end: up to the offset before this record,
                            # which is acked itself (twice in the acked list, it held
                            # back every commit of the partition). Offsets handed over
                            # already are no gap (see ``_handed``).
                            await self._add_gap(tp, below + 1, offset - 1)
                    if handed is None or offset > handed:
                        handed = offset
                    value = record.value
                    batch.append(
                        Record(
                            value,
                            record.key,
                            record.topic,
                            record.partition,
                            offset,
                            tp,
                            generation,
                            None if value is not None else unreadable_detail(record.headers),
                        )
                    )
                    last = offset
                read_offset[tp] = last
                if handed is not None:
                    handed_up_to[tp] = handed
                monitor = self.app.monitor
                monitor.track_tp_end_offset(tp, self.highwater(tp))
                # what Faust's own stream path tells its monitor per event: without it,
                # Faust's check of the event path logged "Stream has not started
                # processing" as an ERROR (27 lines, each with its list of causes) while
                # a worker five minutes up caught up with a backlog
                inbound = getattr(monitor, "stream_inbound_time", None)
                if inbound is not None:
                    inbound[tp] = monotonic()
                continue
            for record in fetched:
                message = self._to_message(tp, record)
                if last is not None and message.offset < last:
                    continue
                last = read_offset[tp] = message.offset
                await self.wait_first(self.callback(message), self.suspend_flow.wait())
        if batch:
            # A rebalance (flow suspended) abandons the hand-over: the records
            # are fetched again from the committed offsets.
            await self.wait_first(feed.put(batch), self.suspend_flow.wait())


class BatchingTransport(faust_aiokafka.Transport):  # type: ignore[misc]
    Consumer = BatchingConsumer


class Lifecycle(Protocol):
    """What the app calls back into (the :class:`~stream_app.worker.app.Worker`)."""

    async def on_app_start(self) -> None: ...

    async def on_app_stop(self) -> None: ...

    async def on_app_stopped(self) -> None: ...

    async def on_before_revoke(self) -> None: ...


class WorkerApp(faust.App):  # type: ignore[misc]
    """A Faust app whose consumer hands ``feed``'s topics over in lists.

    ``lifecycle`` is told when the app has started (before any record is
    read), when it begins to stop (before Faust stops its consumer, so the
    batch in hand can be finished and committed), when it has stopped, and when
    a rebalance is about to take its partitions (before Faust forgets their acks).
    """

    def __init__(
        self,
        id: str,
        *,
        feed: RecordFeed,
        fetch_max_wait_ms: int,
        lifecycle: Lifecycle,
        **options: Any,
    ) -> None:
        self.batch_feed = feed
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self._lifecycle = lifecycle
        super().__init__(id, **options)

    def _new_transport(self) -> Any:
        return BatchingTransport(self.conf.broker_consumer, self)

    async def on_start(self) -> None:
        await super().on_start()
        await self._lifecycle.on_app_start()

    async def on_stop(self) -> None:
        await self._lifecycle.on_app_stop()
        await super().on_stop()

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        await self._lifecycle.on_app_stopped()

    async def before_revoke(self) -> None:
        """A rebalance is about to take the partitions (the consumer calls this)."""
        await self._lifecycle.on_before_revoke()
