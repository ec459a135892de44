"""The whole worker in memory: a list-backed feed, sink and producer, a dict as the
state table and a fresh metrics registry; the same code the Faust worker runs."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry

from stream_app.core import SeriesProcessor
from stream_app.metrics import build_metrics
from stream_app.resources import data_file
from stream_app.settings import load_settings
from stream_app.storage import ObservationRow, SinkBatch, SinkStats
from stream_app.wire.event import LOST_MODEL, iso_millis
from stream_app.worker import scoring
from stream_app.worker.core import WorkerCore
from stream_app.worker.feed import Record
from stream_app.worker.states import compress_blob, decompress_blob, pack_entity, unpack_entity

T0 = 1_790_000_000.0
TOPIC = "readings"


class ListSink:
    """Keeps every written batch; a write waits while ``paused`` is clear, or raises ``fail``."""

    def __init__(self) -> None:
        self._buffer = SinkBatch()
        self.rows: dict[tuple[str, str, float], ObservationRow] = {}
        self.episodes: dict[str, dict[str, Any]] = {}
        self.writes = 0
        self.paused = asyncio.Event()
        self.paused.set()
        self.fail: BaseException | None = None

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def add_point(self, row: ObservationRow) -> None:
        self._buffer.points.append(row)

    def add_episode(self, event: Mapping[str, Any]) -> None:
        self._buffer.episodes[str(event["episode_id"])] = dict(event)

    def take(self) -> SinkBatch:
        batch, self._buffer = self._buffer, SinkBatch()
        return batch

    async def flush_with_retry(
        self, batch: SinkBatch | None = None, *, all_series: bool = True
    ) -> SinkStats:
        await self.paused.wait()
        if self.fail is not None:
            raise self.fail
        batch = batch if batch is not None else self.take()
        for row in batch.points:  # idempotent on (entity, metric, ts), like the database
            self.rows.setdefault((row.entity, row.metric, row.ts.timestamp()), row)
        self.episodes.update(batch.episodes)
        self.writes += 1
        stats = SinkStats(points=len(batch.points), episodes=len(batch.episodes))
        for entity, cutoff, known in batch.orphans:  # as PostgresSink resolves them
            for episode_id, event in sorted(self.episodes.items()):
                last = datetime.fromisoformat(event["ts"]).timestamp()
                mine = episode_id in known or episode_id in batch.episodes
                if event["entity"] != entity or last >= cutoff or mine:
                    continue
                ended = iso_millis(cutoff)
                if event["event"] != "resolved":
                    self.episodes[episode_id] = {**event, "event": "resolved", "ended_at": ended}
                elif event["ended_at"] != ended:
                    continue  # resolved by its model, or as lost at another time
                stats.resolved.append(_stored(event, cutoff))
        return stats

    async def apply_retention(self, days: int) -> int | None:
        return 0


def _stored(event: dict[str, Any], ended: float) -> dict[str, Any]:
    """An episode as the anomalies table holds it once resolved at ``ended``."""
    row = {k: event[k] for k in ("entity", "metric", "kind", "value", "expected", "lower")}
    row.update({k: event[k] for k in ("upper", "score", "peak_score", "severity", "direction")})
    return {
        **row,
        "id": event["episode_id"],
        "detector": event["detector"],
        "explanation": event["explanation"],
        "started_at": datetime.fromisoformat(event["started_at"]),
        "ended_at": datetime.fromtimestamp(ended, UTC),
    }


class ListProducer:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.deadletters: list[dict[str, Any]] = []

    async def send_event(self, key: bytes | None, value: bytes) -> None:
        self.events.append(orjson.loads(value))

    async def send_deadletter(self, key: bytes | None, value: bytes) -> None:
        self.deadletters.append(orjson.loads(value))


class ListConsumer:
    def __init__(self) -> None:
        self.acked: list[Record] = []
        self.group_generation = 1
        self.seeks: list[tuple[Any, int]] = []

    def ack(self, record: Record) -> None:
        self.acked.append(record)

    def generation(self) -> int:
        return self.group_generation

    async def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))


class Harness:
    def __init__(self, table: dict[bytes, bytes] | None = None, **overrides: Any) -> None:
        self.settings = load_settings(
            topic_readings=TOPIC,
            worker_batch_size=overrides.pop("batch_size", 50),
            # every batch checkpoints its partition, unless told otherwise
            worker_checkpoint_s=overrides.pop("checkpoint_s", 0.0),
            worker_idle_flush_s=0.01,
            worker_max_live_entities=overrides.pop("max_live", 0),
            worker_forget_after_days=overrides.pop("forget_after_days", 30.0),
        )
        self.registry = CollectorRegistry()
        self.sink, self.consumer = ListSink(), ListConsumer()
        self.producer: ListProducer = overrides.pop("producer", None) or ListProducer()
        self.table = table if table is not None else {}
        self.fatal: list[BaseException] = []
        self.core = WorkerCore(
            self.settings,
            build_metrics(self.registry),
            overrides.pop("rules", {}),
            sink=self.sink,
            table=self.table,
            producer=self.producer,
            consumer=self.consumer,
            on_fatal=self.fatal.append,
            clock=overrides.pop("clock", time.time),
        )
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.core.run())

    async def stop(self) -> None:
        await self.core.drain()
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    def count(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def readings(entities: int, points: int, *, spike_at: int = -1) -> list[Record]:
    """``points`` readings per entity; entity e on partition e % 2, offsets per partition."""
    out: list[Record] = []
    next_offset = [0, 0]
    for i in range(points):
        for e in range(entities):
            value = 20 + math.sin(i / 10) + (25.0 if i == spike_at and e == 0 else 0.0)
            doc = {"entity": f"site/dev-{e}", "ts": T0 + 60 * i, "metrics": {"t": value}}
            p = e % 2
            out.append(Record(orjson.dumps(doc), doc["entity"].encode(), TOPIC, p, next_offset[p]))
            next_offset[p] += 1
    return out


async def until(condition: Any, what: str) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never: {what}")


async def offered(h: Harness, records: list[Record], per_fetch: int = 37) -> None:
    for i in range(0, len(records), per_fetch):
        await h.core.feed.put(records[i : i + per_fetch])


async def test_every_point_stored_once_events_in_order_acked_after_durable() -> None:
    h = Harness()
    records = readings(4, 150, spike_at=120)
    h.start()
    for i in range(0, len(records), 60):  # fetches arrive while earlier batches are written
        await offered(h, records[i : i + 60])
        await asyncio.sleep(0)
    await until(lambda: len(h.sink.rows) == len(records), "every point stored")
    await h.stop()
    assert h.sink.writes > 1  # in batches, not all at once
    assert h.count("tsguard_readings_total", outcome="scored") == len(records)
    assert h.count("tsguard_deadletters_total", reason="rejected_point") == 0
    assert not h.producer.deadletters and not h.fatal
    opened = [e for e in h.producer.events if e["event"] == "opened"]
    assert "site/dev-0" in {e["entity"] for e in opened}  # the spike
    ids = [e["episode_id"] for e in h.producer.events]
    assert ids.index(opened[0]["episode_id"]) == 0 or h.producer.events[0]["event"] == "opened"
    assert set(h.sink.episodes) == {e["episode_id"] for e in h.producer.events}
    assert sorted((r.partition, r.offset) for r in h.consumer.acked) == sorted(
        (r.partition, r.offset) for r in records
    )  # the drain saved and acked everything it had
    assert set(h.table) == {f"site/dev-{e}".encode() for e in range(4)}


async def _saved_after(records: list[Record], n: int) -> dict[bytes, bytes]:
    """The state table a worker leaves after storing the first ``n`` records and stopping."""
    first = Harness()
    first.start()
    await offered(first, records[:n])
    await until(lambda: len(first.sink.rows) == n, "the first part stored")
    await first.stop()
    return dict(first.table)


async def test_a_restart_from_the_saved_state_skips_what_it_learned() -> None:
    records = readings(2, 100)
    again = Harness(table=await _saved_after(records, 150))  # the restored state table
    again.start()
    await offered(again, records[100:])  # the committed offsets were behind the saved state
    await until(lambda: len(again.consumer.acked) == 100, "the rest acked")
    await again.stop()
    assert again.count("tsguard_readings_total", outcome="replayed") == 50
    assert again.count("tsguard_readings_total", outcome="scored") == 50
    assert not again.producer.deadletters
    reference = Harness()
    reference.start()
    await offered(reference, records)
    await until(lambda: len(reference.sink.rows) == 200, "the reference run")
    await reference.stop()
    resumed = {k: r.score for k, r in again.sink.rows.items()}
    assert resumed == {k: reference.sink.rows[k].score for k in resumed}


async def test_a_saved_state_nobody_can_read_restarts_that_model_and_blocks_nothing() -> None:
    records = readings(2, 100)
    table = await _saved_after(records, 150)
    table[b"site/dev-0"] = b"\x00 not a state at all"  # the whole blob: offset lost too
    saved = unpack_entity(decompress_blob(table[b"site/dev-1"]))
    saved["t"] = b"TS\x00truncated"  # one series; the saved offset still reads
    table[b"site/dev-1"] = compress_blob(pack_entity(saved))
    again = Harness(table=table)
    again.start()
    await offered(again, records[100:])
    await until(lambda: len(again.consumer.acked) == 100, "the rest acked")
    await again.stop()
    assert not again.fatal and not again.producer.deadletters
    assert again.count("tsguard_state_unreadable_total", part="entity") == 1
    assert again.count("tsguard_state_unreadable_total", part="series") == 1
    # dev-0 starts afresh from the committed offset; dev-1 still skips what it had saved
    assert again.count("tsguard_readings_total", outcome="scored") == 75
    assert again.count("tsguard_readings_total", outcome="replayed") == 25
    for entity in (b"site/dev-0", b"site/dev-1"):  # and both are saved readable again
        blob = unpack_entity(decompress_blob(again.table[entity]))
        assert SeriesProcessor.from_bytes(blob["t"]).entity == entity.decode()


def _shifted(points: int, shift_at: int) -> list[Record]:
    """One entity's readings, a steady wave that moves up 25 from ``shift_at`` on."""
    out = []
    for i in range(points):
        value = 20 + math.sin(i / 10) + (25.0 if i >= shift_at else 0.0)
        doc = {"entity": "site/dev-0", "ts": T0 + 60 * i, "metrics": {"t": value}}
        out.append(Record(orjson.dumps(doc), b"site/dev-0", TOPIC, 0, i))
    return out


async def _run(h: Harness, records: list[Record]) -> None:
    h.start()
    await offered(h, records)
    await until(lambda: len(h.consumer.acked) == len(records), "every record acked")
    await h.stop()


@pytest.mark.parametrize("state", ["unreadable", "from before the episode", "missing", "readable"])
async def test_an_episode_whose_model_was_lost_is_resolved_and_published(state: str) -> None:
    """An episode stored open when its entity's state is lost (unreadable, saved before
    the episode opened, gone) has no model left to resolve it: before, it stayed open for
    good, with its alert firing and no retention. The sink resolves it at the first
    reading after the load, and the event goes out; a readable state keeps its own."""
    records = _shifted(400, 150)
    before = Harness()
    await _run(before, records[:140])  # the state saved before the shift
    early = dict(before.table)
    first = Harness(table=dict(early))
    await _run(first, records[140:160])  # the shift: an episode opens and stays open
    (opened,) = [e for e in first.producer.events if e["event"] == "opened"]
    assert first.sink.episodes[opened["episode_id"]]["event"] != "resolved"
    table = {
        "unreadable": {b"site/dev-0": b"\x00 not a state at all"},
        "from before the episode": early,
        "missing": {},
        "readable": first.table,
    }[state]
    again = Harness(table=dict(table))
    again.sink.episodes = dict(first.sink.episodes)  # the same database
    await _run(again, records[160:])
    lost = [e for e in again.producer.events if e["explanation"] == LOST_MODEL]
    stored = again.sink.episodes[opened["episode_id"]]
    if state == "readable":
        assert not lost  # its model resolves it, or keeps it open, itself
        return
    assert [e["episode_id"] for e in lost] == [opened["episode_id"]]
    assert stored["event"] == "resolved"
    (event,) = lost
    assert event["event"] == "resolved" and event["started_at"] == opened["started_at"]
    assert event["ts"] == event["ended_at"] == iso_millis(T0 + 60 * 160)  # the first reading
    # what the fresh models opened themselves is theirs to resolve
    others = {e["episode_id"] for e in again.producer.events} - {opened["episode_id"]}
    assert all(again.sink.episodes[i]["explanation"] != LOST_MODEL for i in others)
    assert not again.fatal and not again.producer.deadletters


def _one_goes_quiet(points: int, quiet_from: int) -> list[Record]:
    """Readings of an entity with two series, ``t`` and ``u``; ``u`` sends nothing from
    ``quiet_from`` on."""
    out = []
    for i in range(points):
        metrics = {"t": 20 + math.sin(i / 10)}
        if i < quiet_from:
            metrics["u"] = 5 + math.cos(i / 9)
        doc = {"entity": "site/dev-0", "ts": T0 + 60 * i, "metrics": metrics}
        out.append(Record(orjson.dumps(doc), b"site/dev-0", TOPIC, 0, i))
    return out


@pytest.mark.parametrize("how", ["stopped", "crashed"])
async def test_an_episode_the_loaded_model_opens_dated_before_its_first_reading_is_its_own(
    how: str,
) -> None:
    """A silence episode starts at the series' last point, before the reading that opens
    it: one the loaded models open (at their first readings, or again while replaying what
    a crash lost) is theirs, not one whose model was lost. It was resolved as lost at once,
    its alert with it, while the silence went on."""
    records = _one_goes_quiet(300, 135)
    before = Harness()
    await _run(before, records[:138])  # u's silence not judged yet
    if how == "stopped":
        table, episodes, resume = dict(before.table), {}, 138
    else:  # u's silence opened, then a crash before its state was saved: replayed
        first = Harness()
        await _run(first, records[:150])
        assert [e["kind"] for e in first.producer.events] == ["silence"]
        table, episodes, resume = dict(before.table), dict(first.sink.episodes), 138
    again = Harness(table=table)
    again.sink.episodes = episodes
    await _run(again, records[resume:])
    (silence,) = {e["episode_id"] for e in again.producer.events}
    assert [e["explanation"] for e in again.producer.events if e["event"] == "resolved"] == []
    assert again.sink.episodes[silence]["event"] == "opened"
    assert not again.fatal and not again.producer.deadletters


async def test_an_episode_a_late_point_opens_after_the_load_is_its_models_own() -> None:
    """A point within the cleaner's allowed lateness, right after the entity's first
    reading since its load, can open an episode that ends before that reading: the
    loaded model's own, left open, not resolved at once as one whose model was lost."""
    records = _shifted(150, 1000)
    rules = {"defaults": {"cleaning": {"allowed_lateness_s": 600}}}
    before = Harness(rules=rules)
    await _run(before, records[:140])
    late = _shifted(145, 140)  # the wave moves up 25 from point 140 on
    again = Harness(table=dict(before.table), rules=rules)
    again.sink.episodes = dict(before.sink.episodes)
    # point 141 first, as it was, then 140, late, with the jump that opens the episode
    arrived = [records[141], late[140], *late[142:]]
    await _run(again, [Record(r.value, r.key, TOPIC, 0, 140 + n) for n, r in enumerate(arrived)])
    (opened,) = again.producer.events
    assert opened["event"] == "opened" and opened["ts"] == iso_millis(T0 + 60 * 140)
    assert again.sink.episodes[opened["episode_id"]]["event"] == "opened"


async def test_an_episode_resolved_as_lost_is_told_again_after_a_crash_before_its_event() -> None:
    """The worker dies after the batch that resolved an episode whose model was lost is
    durable, before its event is sent (the broker away): the replay reaches the same
    first reading and sends the event. It found the episode resolved already and sent
    nothing, and its alert fired for ever."""
    records = _shifted(400, 150)
    first = Harness()
    await _run(first, records[:160])  # an episode opens and stays open
    (opened,) = [e for e in first.producer.events if e["event"] == "opened"]
    lost_state = {b"site/dev-0": b"\x00 not a state at all"}
    dying = Harness(table=dict(lost_state))
    dying.sink.episodes = dict(first.sink.episodes)
    dying.core.runtime.send_event = _broker_away
    dying.start()
    await offered(dying, records[160:200])
    await until(lambda: dying.fatal, "the worker failing")
    assert dying.task is not None
    dying.task.cancel()
    assert dying.sink.episodes[opened["episode_id"]]["event"] == "resolved"
    assert not dying.consumer.acked
    again = Harness(table=dict(lost_state))  # restarted: replayed from the same offset
    again.sink.episodes = dict(dying.sink.episodes)
    await _run(again, records[160:200])
    lost = [e for e in again.producer.events if e["explanation"] == LOST_MODEL]
    assert [(e["episode_id"], e["ts"]) for e in lost] == [
        (opened["episode_id"], iso_millis(T0 + 60 * 160))
    ]


async def _broker_away(key: bytes | None, value: bytes) -> None:
    raise ConnectionError("broker away")


def _schedule(plan: list[tuple[range, range]]) -> list[Record]:
    """Readings of entity e at point i for each (entities, points) block, in that order."""
    out: list[Record] = []
    next_offset = [0, 0]
    for entities, points in plan:
        for i in points:
            for e in entities:
                doc = {"entity": f"site/dev-{e}", "ts": T0 + 60 * i, "metrics": {"t": 20 + e % 7}}
                doc["metrics"]["t"] += math.sin(i / 5)
                p = e % 2
                out.append(
                    Record(orjson.dumps(doc), doc["entity"].encode(), TOPIC, p, next_offset[p])
                )
                next_offset[p] += 1
    return out


async def test_idle_entities_leave_memory_and_come_back_with_the_same_scores() -> None:
    # 60 young entities, then only 10 of them go on (the other 50 idle, too young to
    # be watched for silence), then all 60 again: with a limit of 20 live entities the
    # idle ones are dropped and later loaded from the table, scoring exactly as if
    # they had stayed
    first = _schedule([(range(60), range(0, 20)), (range(10), range(20, 80))])
    again = _schedule([(range(60), range(0, 20)), (range(10), range(20, 80)),
                       (range(60), range(80, 90))])[len(first):]  # fmt: skip
    runs = {}
    for limit in (0, 20):
        h = Harness(max_live=limit)
        h.start()
        await offered(h, first)
        await until(lambda h=h: len(h.consumer.acked) == len(first), "the first part acked")
        live = len(list(h.core.scorer.states.entities()))
        await offered(h, again)
        await until(lambda h=h: len(h.consumer.acked) == len(first) + len(again), "all acked")
        await h.stop()
        assert not h.fatal and not h.producer.deadletters
        runs[limit] = (h, live)
    (unlimited, all_live), (limited, live) = runs[0], runs[20]
    assert all_live == 60 and live <= 20  # the busy ones and those under the limit stay
    assert limited.count("tsguard_entities_evicted_total") >= 40
    assert unlimited.count("tsguard_entities_evicted_total") == 0
    scores = {k: r.score for k, r in limited.sink.rows.items()}
    assert scores == {k: r.score for k, r in unlimited.sink.rows.items()}  # every point
    assert limited.producer.events == unlimited.producer.events
    assert limited.table == unlimited.table  # and the same saved states


async def test_an_entity_whose_silence_is_still_watched_is_not_evicted() -> None:
    # 30 entities warm up, then 25 of them stop while 5 go on: each stopped one must
    # get its silence episode as if every entity had stayed live; only once it is
    # silent (nothing left to watch) may it leave memory
    records = _schedule([(range(30), range(0, 40)), (range(5), range(40, 200))])
    runs = {}
    for limit in (0, 10):
        ticks = itertools.count()
        # a clock that moves 10 s a call: the silence check (every 5 s) runs each batch
        h = Harness(
            max_live=limit, batch_size=5, clock=lambda ticks=ticks: T0 + 1e6 + 10.0 * next(ticks)
        )
        h.start()
        await offered(h, records)
        await until(lambda h=h: len(h.consumer.acked) == len(records), "all acked")
        await h.stop()
        runs[limit] = h
    unlimited, limited = runs[0], runs[10]
    silences = {e["entity"] for e in unlimited.producer.events if e["kind"] == "silence"}
    assert silences == {f"site/dev-{e}" for e in range(5, 30)}
    strip = [{k: v for k, v in e.items() if k != "emitted_at"} for e in limited.producer.events]
    assert strip == [
        {k: v for k, v in e.items() if k != "emitted_at"} for e in unlimited.producer.events
    ]
    assert limited.count("tsguard_entities_evicted_total") >= 20


async def test_entities_that_left_are_forgotten_their_episodes_resolved_and_state_deleted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Devices that stop for good: their silence episodes resolve once they have sent
    nothing for the forget period, and their states leave the table (before, the episode
    stayed open, its alert fired and its state stayed, for good)."""
    from stream_app.worker import scoring

    monkeypatch.setattr(scoring, "WAKE_EVERY_S", 0.0)
    # 4 entities warm up; 2 stop and 2 go on for 3 hours; forgotten after 1.2 hours
    records = _schedule([(range(4), range(0, 40)), (range(2), range(40, 220))])
    ticks = itertools.count()
    h = Harness(
        batch_size=5,
        forget_after_days=0.05,
        clock=lambda: T0 + 1e6 + 100.0 * next(ticks),  # a sweep about every 36 calls
    )
    h.start()
    await offered(h, records)
    await until(lambda: len(h.consumer.acked) == len(records), "all acked")
    await h.stop()
    gone = {"site/dev-2", "site/dev-3"}
    events = [(e["entity"], e["kind"], e["event"]) for e in h.producer.events]
    assert sorted(e for e in events if e[0] in gone) == sorted(
        [(g, "silence", "opened") for g in gone] + [(g, "silence", "resolved") for g in gone]
    )
    resolved = [e for e in h.producer.events if e["entity"] in gone and e["event"] == "resolved"]
    assert all(e["explanation"].startswith("forgotten: no data for 0.") for e in resolved)
    assert set(h.table) == {b"site/dev-0", b"site/dev-1"}
    assert h.count("tsguard_entities_forgotten_total") == 2
    assert all(h.sink.episodes[e["episode_id"]]["event"] == "resolved" for e in resolved)


async def test_records_of_an_earlier_generation_are_neither_scored_nor_acked() -> None:
    h = Harness()
    records = readings(2, 20)
    h.start()
    h.consumer.group_generation = 2  # a rebalance after these were fetched
    for r in records:
        r.generation_id = 1
    await offered(h, records)
    for _ in range(50):
        await asyncio.sleep(0)
    assert h.core.feed.take_nowait(len(records)) == []  # the batcher took them all
    h.core.revoked()
    await h.stop()
    assert not h.sink.rows and not h.consumer.acked
    assert h.count("tsguard_readings_total", outcome="scored") == 0


def _generation(records: list[Record], generation: int) -> list[Record]:
    for r in records:
        r.generation_id = generation
    return records


async def test_records_admitted_before_a_rebalance_that_wait_for_the_lock_are_not_scored() -> None:
    """The database is away, a due checkpoint holds the batch lock, a fetch is admitted
    and waits for it; then the group rebalances. Scored after it by the models reloaded
    from the table, those records left the models without the ones acked since, which
    the next owner then skips as already seen: every later score differed (the workers
    review's drill, 150 of 300)."""
    records = readings(2, 150)
    h = await _a_fetch_waits_for_the_lock(records)
    for _ in range(20):
        await asyncio.sleep(0)
    h.consumer.group_generation = 2  # the group rebalances; this worker keeps both
    h.core.revoked()
    h.core.assigned()
    h.sink.paused.set()
    await until(lambda: not h.core.batcher._lock.locked(), "the lock let go")
    assert await _read_again_differ(h, records) == []


async def _a_fetch_waits_for_the_lock(records: list[Record]) -> Harness:
    """100 records stored and acked, then the database away: two batches in flight, and
    a third fetch admitted, waiting for the batch lock a checkpoint holds."""
    h = Harness()
    h.start()
    await offered(h, _generation(records[:100], 1), per_fetch=50)
    await until(lambda: len(h.consumer.acked) == 100, "the first 100 stored and acked")
    h.sink.paused.clear()  # PostgreSQL goes away
    await offered(h, _generation(records[100:200], 1), per_fetch=50)  # two batches in flight
    await until(lambda: h.core.batcher._lock.locked(), "a checkpoint waits for a write slot")
    await offered(h, _generation(records[200:250], 1), per_fetch=50)  # admitted, waits
    await until(lambda: h.core.feed.waiting() == 0, "the batch loop took the fetch")
    return h


async def _read_again_differ(h: Harness, records: list[Record]) -> list[Any]:
    """After the rebalance, the records from the committed offsets read again in the new
    generation (2); the points whose scores then differ from an uninterrupted run's."""
    committed = _committed(h.consumer.acked)
    again = [copy.copy(r) for r in records if r.offset >= committed[r.partition]]
    await offered(h, _generation(again, 2), per_fetch=50)
    await until(lambda: len(h.sink.rows) == len(records), "every point stored")
    await h.stop()
    assert not h.fatal
    reference = await _uninterrupted(records, per_fetch=50)
    return [k for k, row in reference.sink.rows.items() if h.sink.rows[k].score != row.score]


def _committed(acked: list[Record]) -> dict[int, int]:
    committed = {0: 0, 1: 0}
    for r in acked:
        committed[r.partition] = max(committed[r.partition], r.offset + 1)
    return committed


def _keys(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["episode_id"], e["event"], e["ts"]) for e in events]


async def _uninterrupted(records: list[Record], per_fetch: int = 37) -> Harness:
    """A reference run: every record, from a fresh table, without a stop."""
    reference = Harness()
    reference.start()
    await offered(reference, _generation([copy.copy(r) for r in records], 1), per_fetch)
    await until(lambda: len(reference.sink.rows) == len(records), "the reference stored")
    await reference.stop()
    return reference


async def _next_owner(h: Harness, records: list[Record], **overrides: Any) -> Harness:
    """The partitions' next owner: from ``h``'s table, it reads ``records`` again from the
    offsets ``h`` acked, in the group's generation 2, and stops."""
    committed = _committed(h.consumer.acked)
    nxt = Harness(table=h.table, **overrides)
    nxt.consumer.group_generation = 2
    nxt.start()
    again = [copy.copy(r) for r in records if r.offset >= committed[r.partition]]
    await offered(nxt, _generation(again, 2))
    await until(lambda: len(nxt.sink.rows) == len(again), "the next owner stored the rest")
    await nxt.stop()
    return nxt


async def test_a_rebalance_saves_the_models_and_acks_so_the_next_owner_repeats_no_event() -> None:
    """Before, a rebalance (a worker joining or leaving gracefully) dropped the models
    without a checkpoint: the next owners read again everything since the last one and
    published its events a second time (the workers review: 26 of 399 events)."""
    records = readings(4, 300, spike_at=150)
    h = Harness(checkpoint_s=3600.0)  # one checkpoint at the start, then none for an hour
    h.start()
    await offered(h, _generation(records[:800], 1))
    await until(lambda: len(h.sink.rows) == 800, "800 points stored")
    assert len(h.consumer.acked) < 800 and h.producer.events  # the spike's episode opened
    assert await h.core.before_revoke(5.0)
    assert len(h.consumer.acked) == 800  # every stored record acked with its state saved
    await offered(h, _generation(records[800:900], 1))  # fetched during the rebalance
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(h.sink.rows) == 800 and len(h.consumer.acked) == 800  # neither scored nor acked
    h.consumer.group_generation = 2
    h.core.revoked()
    await h.stop()
    nxt = await _next_owner(h, records, checkpoint_s=3600.0)
    reference = await _uninterrupted(records)
    assert _keys(h.producer.events + nxt.producer.events) == _keys(reference.producer.events)
    rows = {**h.sink.rows, **nxt.sink.rows}
    assert {k: r.score for k, r in rows.items()} == {
        k: r.score for k, r in reference.sink.rows.items()
    }
    assert not h.fatal and not nxt.fatal


async def test_a_rebalance_while_the_database_is_away_gives_up_within_its_bound() -> None:
    """A write that waits for the database is waited on for the bound, never cut off
    (that would cost the models): the revoke then goes on as before, and the write
    completes once the database is back."""
    records = readings(2, 100)
    h = Harness(checkpoint_s=3600.0)
    h.start()
    await offered(h, _generation(records[:100], 1), per_fetch=50)
    await until(lambda: len(h.sink.rows) == 100, "the first 100 stored")
    acked = len(h.consumer.acked)
    h.sink.paused.clear()  # PostgreSQL goes away
    await offered(h, _generation(records[100:150], 1), per_fetch=50)
    inflight = h.core.batcher._inflight
    await until(lambda: any(not t.done() for t in inflight), "a write waits for the database")
    started = time.monotonic()
    assert not await h.core.before_revoke(0.2)
    assert time.monotonic() - started < 2.0
    assert len(h.consumer.acked) == acked
    h.core.revoked()
    h.consumer.group_generation = 2
    h.core.assigned()
    h.sink.paused.set()
    await until(lambda: len(h.sink.rows) == 150, "the write in flight completes")
    assert not h.fatal
    await offered(h, _generation([copy.copy(r) for r in records[150:]], 2), per_fetch=50)
    await until(lambda: len(h.sink.rows) == 200, "scoring goes on after the rebalance")
    await h.stop()
    assert not h.fatal


async def test_a_write_done_after_the_bound_ran_out_leaves_its_events_to_the_next_owner() -> None:
    """The database is away through a rebalance, with an episode's opening in the batch
    being written. The next owner scores that batch again from the last checkpoint and
    publishes its events, the episode's resolution among them; then the database comes
    back and the old owner's write completes. It published that batch's events then,
    after the next owner's: the topic's last event for the episode was `opened` (the
    rebalance drills: 8 of 15 runs, one episode resolved in the database and open on the
    topic). It publishes nothing once its models are gone now."""
    records = readings(2, 200, spike_at=120)  # the spike: record 240 (entity 0, step 120)
    h = Harness()
    h.start()
    await offered(h, _generation(records[:220], 1), per_fetch=50)
    await until(lambda: len(h.sink.rows) == 220, "the first 220 stored")
    h.sink.paused.clear()  # PostgreSQL goes away
    await offered(h, _generation(records[220:260], 1), per_fetch=40)
    inflight = h.core.batcher._inflight
    await until(lambda: any(not t.done() for t in inflight), "a write waits for the database")
    assert not await h.core.before_revoke(0.05)
    h.core.revoked()
    before = list(h.producer.events)
    assert not any(e["event"] == "opened" for e in before)  # the spike is in the batch waiting
    nxt = await _next_owner(h, records)
    h.sink.paused.set()  # the database is back: the old owner's write completes
    await until(lambda: len(h.sink.rows) == 260, "the write in flight completed")
    for _ in range(50):
        await asyncio.sleep(0)
    assert h.producer.events == before
    h.consumer.group_generation = 2
    await h.stop()
    assert not h.fatal and not nxt.fatal
    reference = await _uninterrupted(records)
    assert any(e["event"] == "resolved" for e in reference.producer.events)
    topic = before + nxt.producer.events  # in the order they were published
    assert list(dict.fromkeys(_keys(topic))) == _keys(reference.producer.events)
    last = {e["episode_id"]: e["event"] for e in topic}
    assert last == {e["episode_id"]: e["event"] for e in reference.producer.events}


async def test_a_write_done_after_the_bound_ran_out_acks_nothing() -> None:
    """The database is back while Faust still runs its revoke, after dropping the acks of
    the partitions it gives up: the write in flight completes, and its checkpoint acked
    its records into Faust's new list for the partition, below every offset read after
    the assignment, where its commits stopped for good (the review's drill: committed
    offsets stuck at 1,591 of 4,680). It acks nothing now."""
    records = readings(2, 100)
    h = Harness()  # a checkpoint at every batch
    h.start()
    await offered(h, _generation(records[:100], 1), per_fetch=50)
    await until(lambda: len(h.consumer.acked) == 100, "the first 100 stored and acked")
    h.sink.paused.clear()
    # two batches in flight; the second took the checkpoint that covers the first
    await offered(h, _generation(records[100:200], 1), per_fetch=50)
    inflight = h.core.batcher._inflight
    await until(lambda: sum(not t.done() for t in inflight) == 2, "two writes wait")
    assert not await h.core.before_revoke(0.05)
    h.sink.paused.set()  # back before Faust's revoke has reached the worker's
    await until(lambda: len(h.sink.rows) == 200, "the writes in flight complete")
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(h.consumer.acked) == 100
    h.core.revoked()
    await h.stop()
    assert not h.fatal


async def test_a_fetch_waiting_for_the_lock_is_not_scored_between_revoke_and_assignment() -> None:
    """Faust's order: the revoke (the group's generation still the old one), then the
    assignment that bumps it. A fetch admitted before the rebalance, waiting for the lock
    while writes wait for the database, was scored in between by the models reloaded
    from the table, which lacked the records acked since: every later score of those
    entities differed (the session's review, 100 of 250). Nothing is scored until the
    assignment now."""
    records = readings(2, 150)
    h = await _a_fetch_waits_for_the_lock(records)
    assert not await h.core.before_revoke(0.05)  # the bound runs out
    h.core.revoked()  # still generation 1
    h.sink.paused.set()
    await until(lambda: not h.core.batcher._lock.locked(), "the lock let go")
    for _ in range(50):
        await asyncio.sleep(0)
    h.consumer.group_generation = 2
    h.core.assigned()
    assert await _read_again_differ(h, records) == []


async def test_a_failed_write_is_fatal_and_nothing_of_it_is_published_or_acked() -> None:
    h = Harness()
    h.sink.fail = RuntimeError("disk full")
    h.start()
    await offered(h, readings(2, 30, spike_at=25))
    await until(lambda: bool(h.fatal), "on_fatal called")
    assert isinstance(h.fatal[0], RuntimeError)
    assert not h.consumer.acked and not h.producer.events
    assert not h.table  # the models were dropped, never saved
    assert h.task is not None
    h.task.cancel()
    with pytest.raises((asyncio.CancelledError, RuntimeError)):
        await h.task


async def test_records_after_a_skipped_offset_wait_for_a_seek_back() -> None:
    h = Harness()
    records = [r for r in readings(2, 10) if r.partition == 0]  # offsets 0..9
    h.start()
    await offered(h, records[:3] + records[6:])  # the consumer skipped offsets 3..5
    await until(lambda: len(h.sink.rows) == 3, "the records before the gap stored")
    assert h.consumer.seeks == [(None, 3)]  # asked once, then refused while under way
    await offered(h, records[3:])  # fetched again from the seek target
    await until(lambda: len(h.sink.rows) == len(records), "every record stored")
    await h.stop()
    assert h.count("tsguard_readings_total", outcome="scored") == len(records)
    assert sorted(r.offset for r in h.consumer.acked) == list(range(10))


async def test_a_state_too_large_to_save_is_counted_and_the_worker_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A rule's forest of 50 trees of height 12 packs to 3 MB: the changelog record failed
    the producer and the worker crashed on it at every restart. Now such an entity is
    not checkpointed (said once, counted), and every point is still stored and acked."""
    from stream_app.worker import checkpoint

    monkeypatch.setattr(checkpoint, "MAX_STATE_BLOB", 0)  # every state "too large"
    h = Harness()
    records = readings(2, 60)
    h.start()
    await offered(h, records)
    await until(lambda: len(h.sink.rows) == len(records), "every point stored")
    await h.stop()
    assert not h.fatal
    assert h.table == {}
    assert len(h.consumer.acked) == len(records)
    assert h.count("tsguard_state_unsaved_total") >= 2
    said = [r.getMessage() for r in caplog.records if "not checkpointed" in r.getMessage()]
    assert sorted(m.split("'")[1] for m in said) == ["site/dev-0", "site/dev-1"]


async def test_episodes_of_partitions_given_away_leave_the_open_episodes_gauge() -> None:
    """Their updates and resolution go to the next owner; kept here, every rebalance
    left them counted twice in sum(tsguard_open_episodes), and here for good."""
    h = Harness()
    records = readings(2, 121, spike_at=120)  # the last reading opens an episode
    h.start()
    await offered(h, records)
    await until(lambda: len(h.sink.rows) == len(records), "every point stored")
    await h.stop()
    events = [e for e in h.producer.events if e["entity"] == "site/dev-0"]
    assert events and events[-1]["event"] != "resolved"
    assert h.count("tsguard_open_episodes") >= 1
    h.core.revoked()
    assert h.count("tsguard_open_episodes") == 0


async def test_the_open_episodes_of_models_loaded_after_a_rebalance_are_counted_again() -> None:
    """Cleared when partitions go, the gauge stayed at 0 after a rebalance that gave them
    back (or to another worker) while the database still had the episodes open: the
    models loaded have them open, and count again at their entity's first reading."""
    records = readings(2, 122, spike_at=120)  # reading 120 opens an episode of dev-0
    late = records[242]  # dev-0's reading 121: still as far off, so the episode goes on
    doc = {"entity": "site/dev-0", "ts": T0 + 60 * 121, "metrics": {"t": 45 + math.sin(12.1)}}
    records[242] = Record(orjson.dumps(doc), late.key, late.topic, late.partition, late.offset)
    first = Harness()
    first.start()
    await offered(first, records[:242])
    await until(lambda: len(first.sink.rows) == 242, "the first part stored")
    await first.stop()
    assert first.count("tsguard_open_episodes") == 1
    again = Harness(table=dict(first.table))  # the next owner, from the saved state
    again.start()
    await offered(again, records[242:])
    await until(lambda: len(again.sink.rows) == 2, "the rest stored")
    await again.stop()
    still_open = not any(e["event"] == "resolved" for e in again.producer.events)
    assert still_open and again.count("tsguard_open_episodes") == 1


def labels(h: Harness, docs: list[Any], *, partition: int = 0, first: int = 0) -> list[Record]:
    """Operators' labels as the feedback topic delivers them (key = entity), from offset
    ``first`` of ``partition``; a doc that is bytes (or None) is sent as it is."""
    out = []
    for i, doc in enumerate(docs):
        value = doc if doc is None or isinstance(doc, bytes) else orjson.dumps(doc)
        entity = doc.get("entity") if isinstance(doc, dict) else None
        key = entity.encode() if isinstance(entity, str) else None
        out.append(Record(value, key, h.settings.topic_feedback, partition, first + i))
    return out


async def test_malformed_feedback_is_counted_and_dead_lettered() -> None:
    """A bad message on the feedback topic was counted as a dead letter (bad_payload)
    that never reached the dead-letter topic, and logged as "ignored malformed message:
    'entity'". Acked once dead-lettered, and counted as no reading."""
    h = Harness()
    bad = [b"not json", b"[1, 2]", b'{"metric": "m", "label": "false_positive"}', None]
    bad.append(b'{"entity": "a/b", "metric": "m", "label": "maybe"}')
    h.start()
    await offered(h, labels(h, bad))
    await until(lambda: len(h.producer.deadletters) == len(bad), "every label dead-lettered")
    await h.stop()
    letters = h.producer.deadletters
    assert [letter["reason"] for letter in letters] == ["bad_payload"] * len(bad)
    assert {letter["origin"]["topic"] for letter in letters} == {h.settings.topic_feedback}
    assert [letter["origin"]["offset"] for letter in letters] == list(range(len(bad)))
    schema = json.loads(data_file("schemas", "deadletter.schema.json").read_text("utf-8"))
    for letter in letters:
        Draft202012Validator(schema).validate(letter)
    details = [letter["detail"] for letter in letters]
    assert details[1] == "feedback: not a JSON object" and details[2] == "feedback: no entity"
    assert "maybe" in details[4]
    assert h.count("tsguard_deadletters_total", reason="bad_payload") == len(bad)
    assert h.count("tsguard_readings_total", outcome="deadlettered") == 0
    assert [r.offset for r in h.consumer.acked] == list(range(len(bad)))


async def test_feedback_applies_only_to_a_series_the_worker_has_scored() -> None:
    """Any message on the feedback topic naming an entity made it a live series, its
    state saved for good (a way to grow every worker's table without a reading). A label
    for a series never scored is dead-lettered and makes nothing; one for a scored
    series, live or only in the saved table, moves its margin and is saved."""
    h = Harness()
    h.start()
    records = readings(1, 40)
    await offered(h, records)
    await until(lambda: len(h.sink.rows) == len(records), "every point stored")
    docs = [{"entity": e, "metric": m, "label": "false_positive"} for e, m in (("a/b", "m"),)]
    docs.append({"entity": "site/dev-0", "metric": "nope", "label": "false_positive"})
    await offered(h, labels(h, docs))
    await until(lambda: len(h.producer.deadletters) == 2, "both dead-lettered")
    assert [letter["detail"] for letter in h.producer.deadletters] == [
        "feedback: no model of 'a/b' 'm' here",
        "feedback: no model of 'site/dev-0' 'nope' here",
    ]
    assert list(h.core.scorer.states.entities()) == ["site/dev-0"]
    label = {"entity": "site/dev-0", "metric": "t", "label": "false_positive"}
    await offered(h, labels(h, [label], first=2))
    await until(lambda: h.count("tsguard_feedback_total", label="false_positive"), "applied")
    assert h.core.scorer.states.processor("site/dev-0", "t").policy.margin == 2.0
    await h.stop()
    assert len(h.producer.deadletters) == 2
    assert b"a/b" not in h.table
    again = Harness(table=dict(h.table))  # the next owner: the model only in the table
    again.start()
    await offered(again, labels(again, [label], first=3))
    await until(lambda: again.count("tsguard_feedback_total", label="false_positive"), "taken")
    await again.stop()
    assert again.core.scorer.states.processor("site/dev-0", "t").policy.margin == 4.0
    assert not again.producer.deadletters


def _margin(table: dict[bytes, bytes], entity: str, metric: str) -> float:
    """The margin of a series as the saved state holds it."""
    state = unpack_entity(decompress_blob(table[entity.encode()]))[metric]
    return float(SeriesProcessor.from_bytes(state).policy.margin)


async def test_a_label_is_acked_only_once_the_state_that_took_it_is_saved() -> None:
    """A label was acked as soon as it was applied (Faust committed it within a second)
    while the state holding it was saved at the next checkpoint: a kill -9 in between
    lost it. Its record now waits for its partition's save, as a batch's readings do."""
    h = Harness(checkpoint_s=3600.0)  # no checkpoint but the first and the drain's
    h.start()
    records = readings(1, 20)
    await offered(h, records)
    await until(lambda: len(h.consumer.acked) == len(records), "the readings acked")
    label = {"entity": "site/dev-0", "metric": "t", "label": "false_positive"}
    await offered(h, labels(h, [label]))
    await until(lambda: h.count("tsguard_feedback_total", label="false_positive"), "applied")
    for _ in range(50):
        await asyncio.sleep(0.001)
    assert len(h.consumer.acked) == len(records)  # applied, not saved: not acked
    assert _margin(h.table, "site/dev-0", "t") == 1.0
    await h.stop()  # the drain saves the state and acks what it covers
    assert h.consumer.acked[-1].topic == h.settings.topic_feedback
    assert _margin(h.table, "site/dev-0", "t") == 2.0


async def test_a_label_read_again_after_its_state_was_saved_is_skipped() -> None:
    """After a crash between a save and the commit of its offsets, a label is read again
    onto a state that already has it: applied again, a false positive quadrupled the
    margin. The saved state records the last label it took; one at or below is skipped,
    a later one (or one of another partition) is applied."""
    h = Harness()
    h.start()
    await offered(h, readings(1, 20))
    label = {"entity": "site/dev-0", "metric": "t", "label": "false_positive"}
    await offered(h, labels(h, [label, label], first=7))
    await until(lambda: h.count("tsguard_feedback_total", label="false_positive") == 2, "both")
    await h.stop()
    assert _margin(h.table, "site/dev-0", "t") == 4.0
    again = Harness(table=dict(h.table))  # restarted from the committed offsets
    again.start()
    await offered(again, labels(again, [label, label, label], first=7))  # 7, 8 again; 9 new
    await until(lambda: len(again.consumer.acked) == 3 or again.fatal, "the labels acked")
    await again.stop()
    assert again.count("tsguard_feedback_total", label="false_positive") == 1
    assert _margin(again.table, "site/dev-0", "t") == 8.0
    elsewhere = Harness(table=dict(again.table))
    elsewhere.start()
    await offered(elsewhere, labels(elsewhere, [label], partition=1, first=9))
    await until(lambda: elsewhere.count("tsguard_feedback_total", label="false_positive"), "new")
    await elsewhere.stop()
    assert _margin(elsewhere.table, "site/dev-0", "t") == 16.0


async def test_the_silence_scan_lets_the_loop_run_and_stops_when_the_models_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wall-clock silence scan judged 20,000 live entities in one callback (0.16-0.31
    s); it judges a slice at a time, and models dropped during it (a failed write, a
    revoke) end it, reporting nothing of theirs to the checkpointer."""
    monkeypatch.setattr(scoring, "JUDGE_SLICE", 2)
    h = Harness(checkpoint_s=1000.0)
    runtime = h.core.runtime
    runtime.silence_check_s = math.inf  # no scan while the fleet is scored
    runtime.scorer.silence_every_s = math.inf
    records = readings(6, 80)  # then only dev-0 and dev-1 go on: 4 silent for 40 minutes
    records = [
        r for i, r in enumerate(records) if i < 6 * 40 or r.key in (b"site/dev-0", b"site/dev-1")
    ]
    out = runtime.score(records)
    await runtime.finish(out, len(records))
    runtime.silence_check_s = 0.0
    turns: list[int] = []

    async def other() -> None:
        while True:
            turns.append(1)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(other())
    h.core.checkpointer.reset()  # nothing pending from the scoring
    scan = asyncio.create_task(runtime.finish(runtime.score([]), 0))
    await asyncio.sleep(0)  # the scan's first slice is judged
    await asyncio.sleep(0)
    h.core.checkpointer.reset()  # the models dropped (by a failed write's discard)
    await scan
    assert turns and h.core.checkpointer.pending() == []  # the silent ones: not reported
    turns.clear()
    await runtime.finish(runtime.score([]), 0)  # a whole scan now
    watcher.cancel()
    assert len(turns) >= 2  # between the slices of 6 live entities
    assert h.core.checkpointer.pending() == [0, 1]  # its silences: 2 partitions' entities


class HeldProducer(ListProducer):
    """A producer that takes each record at once and delivers it only when told (its
    send returns the delivery, as Faust's ``topic.send`` does)."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries: list[asyncio.Future[None]] = []

    async def send_event(self, key: bytes | None, value: bytes) -> Any:
        await super().send_event(key, value)
        self.deliveries.append(asyncio.get_running_loop().create_future())
        return self.deliveries[-1]


async def test_a_batch_state_is_saved_only_once_its_events_are_delivered() -> None:
    """The state that reflects a batch was saved (and its records acked) before its episode
    events were delivered: a kill -9 between the two lost the events for good, as the next
    worker skips the readings its saved state learned (the kill -9 drill found an episode
    in the database with no event on the topic)."""
    producer = HeldProducer()
    h = Harness(batch_size=1000, producer=producer)
    records = readings(1, 150, spike_at=120)
    h.start()
    await offered(h, records, per_fetch=150)
    await until(lambda: h.producer.events, "the spike's event handed to the producer")
    for _ in range(50):
        await asyncio.sleep(0.002)
    assert not h.table and not h.consumer.acked  # nothing saved or acked meanwhile
    for delivery in producer.deliveries:
        delivery.set_result(None)
    await until(lambda: len(h.consumer.acked) == len(records), "acked once delivered")
    assert set(h.table) == {b"site/dev-0"}
    await h.stop()


async def test_a_label_not_keyed_by_its_entity_is_dead_lettered_and_changes_nothing() -> None:
    """A label with another key, or none, came through another partition than its
    entity's and was applied: the entity's record of the last label it took moved to
    that partition, and a label of its own partition read again after a crash (saved,
    not committed) was applied a second time (8x where 4x was saved). It is dead-lettered
    as ``wrong_key``, as a reading is."""
    h = Harness()
    h.start()
    await offered(h, readings(1, 20))
    label = {"entity": "site/dev-0", "metric": "t", "label": "false_positive"}
    own = labels(h, [label], first=7)
    value = orjson.dumps(label)
    foreign = [Record(value, b"other", h.settings.topic_feedback, 1, 3)]
    foreign.append(Record(value, None, h.settings.topic_feedback, 1, 4))
    await offered(h, own + foreign)
    await until(lambda: len(h.consumer.acked) == 23 or h.fatal, "the labels acked")
    await h.stop()
    letters = h.producer.deadletters
    assert [letter["reason"] for letter in letters] == ["wrong_key", "wrong_key"]
    assert letters[0]["detail"].startswith("label has key b'other', not its entity")
    assert h.count("tsguard_readings_total", outcome="deadlettered") == 0
    assert _margin(h.table, "site/dev-0", "t") == 2.0
    again = Harness(table=dict(h.table))  # a kill -9 after the save, before the commit
    again.start()
    await offered(again, labels(again, [label], first=7))
    await until(lambda: len(again.consumer.acked) == 1 or again.fatal, "read again, acked")
    await again.stop()
    assert again.count("tsguard_feedback_total", label="false_positive") == 0
    assert _margin(again.table, "site/dev-0", "t") == 2.0


async def test_a_label_whose_names_are_not_strings_is_dead_lettered() -> None:
    """A label's entity, metric and label were read with str(): a null metric named the
    series "None", a valid metric name, and a label of it moved that series' margin."""
    h = Harness()
    h.start()
    doc = {"entity": "site/dev-0", "ts": T0, "metrics": {"None": 1.0, "t": 2.0}}
    await offered(h, [Record(orjson.dumps(doc), b"site/dev-0", TOPIC, 0, 0)])
    bad = {"entity": "site/dev-0", "metric": None, "label": "false_positive"}
    await offered(h, labels(h, [bad]))
    await until(lambda: len(h.consumer.acked) == 2 or h.fatal, "both acked")
    await h.stop()
    assert [letter["detail"] for letter in h.producer.deadletters] == [
        "feedback: entity, metric and label must be strings"
    ]
    assert _margin(h.table, "site/dev-0", "None") == 1.0


async def test_the_stand_in_of_an_unreadable_batch_of_labels_says_what_it_was() -> None:
    """The stand-in record of a compressed batch of labels the consumer could not unpack
    was dead-lettered as a label that is "not JSON" (bad_payload); it is the batch it
    stands for (unreadable_batch, with the consumer's note), as on the readings' topic,
    and no reading."""
    h = Harness()
    h.start()
    note = "a gzip batch of offsets 0..4 could not be read (BatchTooLarge: ...)"
    stand_in = Record(None, None, h.settings.topic_feedback, 0, 4, note=note)
    await offered(h, [stand_in])
    await until(lambda: len(h.producer.deadletters) == 1, "dead-lettered")
    await h.stop()
    (letter,) = h.producer.deadletters
    assert (letter["reason"], letter["detail"]) == ("unreadable_batch", note)
    assert letter["origin"]["topic"] == h.settings.topic_feedback
    assert h.count("tsguard_deadletters_total", reason="unreadable_batch") == 1
    assert h.count("tsguard_readings_total", outcome="deadlettered") == 0
