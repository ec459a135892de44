"""Crash, stop and restart drills against the real Kafka and PostgreSQL of the stack.

A worker killed with -9 mid-stream and started again must leave the database
exactly as an uninterrupted run would (every point once, the same scores) and
send no dead letter: readings its saved state had already learned are
skipped and counted as replayed, not rejected as late.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from typing import Any

import pytest

from stream_app.wire.event import LOST_MODEL, iso_millis
from stream_app.worker.faust_app import STATE_TABLE
from stream_app.worker.faust_compat import start_offsets
from tests.integration.pipeline.harness import Pipeline, WorkerProcess, wait_for
from tests.integration.pipeline.streams import labelled_stream
from tests.integration.pipeline.test_pipeline import _db_scores, _reference_scores

pytestmark = pytest.mark.integration


class PacedFeed:
    """Produces readings in chunks at about ``rate`` readings/s from a thread."""

    def __init__(self, pipe: Pipeline, readings: list[dict[str, Any]], rate: float) -> None:
        self._pipe = pipe
        self._readings = readings
        self._rate = rate
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        chunk = 250
        started = time.monotonic()
        try:
            for i in range(0, len(self._readings), chunk):
                self._pipe.produce_readings(self._readings[i : i + chunk])
                due = started + (i + chunk) / self._rate  # pacing the source, not waiting
                time.sleep(max(0.0, due - time.monotonic()))
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        self._thread.join(timeout=120)
        assert not self._thread.is_alive() and self.error is None, self.error


def _scored(pipe: Pipeline) -> int:
    return pipe.count("SELECT count(*) FROM observations")


def _assert_exactly_once_and_equal(pipe: Pipeline, readings: list[dict[str, Any]]) -> None:
    db = _db_scores(pipe)
    ref = {(e, m, round(t, 3)): s for (e, m, t), s in _reference_scores(readings).items()}
    assert set(db) == set(ref)  # every point once: the primary key forbids a second copy
    differ = [
        k
        for k, s in ref.items()
        if (s is None) != (db[k] is None) or (s is not None and abs(s - db[k]) > 1e-9)
    ]
    assert not differ, f"{len(differ)}/{len(ref)} scores differ, e.g. {differ[:3]}"


def _kill_and_restart(
    pipe: Pipeline, worker: WorkerProcess, env: dict[str, str], points: int
) -> float:
    """kill -9, start the same worker again; seconds from the kill to its first new row."""
    worker.kill()
    killed_at = time.monotonic()
    before = _scored(pipe)
    # A worker catching up a backlog stores tens of percent between two polls: a kill
    # that lands after the last row leaves nothing to recover (the feed is paced to
    # outlast both restarts; this says so plainly if it ever does not)
    assert before < points, f"killed after the whole stream was stored ({before} rows)"
    restarted = pipe.start_worker(worker.name, port=worker.port, env=env)  # same member, same URL
    try:
        wait_for(lambda: _scored(pipe) > before, timeout=60, what="a new row after the restart")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; restarted worker: {_diagnosis(restarted)}") from None
    return time.monotonic() - killed_at


def _diagnosis(worker: WorkerProcess) -> str:
    """What a restarted worker that stores nothing is doing: alive, counted, logged."""
    counted = [
        line
        for line in worker.metrics_text().splitlines()
        if line.startswith(("tsguard_readings_total", "tsguard_deadletters_total", "tsguard_sink_"))
    ]
    return f"alive={worker.alive()} metrics={counted} log tail:\n{worker.log_tail(80)}"


def test_kill_9_twice_mid_stream_dead_letters_nothing_and_scores_as_uninterrupted(
    pipeline: Pipeline,
) -> None:
    readings, _ = labelled_stream(
        entities=10, metrics=("temperature", "pressure", "vibration"), points=1000, seed=13
    )
    points = sum(len(r["metrics"]) for r in readings)
    # The restarted worker gets the partitions after the session timeout (6 s here).
    # The feed (25 s) outlasts the first restart, so the second kill comes while
    # readings are still arriving; at 2,500/s the whole stream was in Kafka before
    # the first restart ended, the restarted worker stored it all in a burst, and
    # the second kill could land after the last row (2 of 3 rounds, 2026-11-30).
    env: dict[str, str] = {}
    worker = pipeline.start_worker("w1", env=env)
    worker.wait_ready()
    feed = PacedFeed(pipeline, readings, rate=400.0)
    feed.start()
    recoveries = []
    for fraction in (0.3, 0.6):
        wait_for(
            lambda f=fraction: _scored(pipeline) >= f * points,  # type: ignore[misc]
            timeout=90,
            what=f"{fraction:.0%} of the points stored",
            every=0.05,
        )
        recoveries.append(_kill_and_restart(pipeline, pipeline.workers[-1], env, points))
    feed.join()
    wait_for(lambda: _scored(pipeline) >= points, timeout=120, what="the whole stream stored")
    letters = pipeline.consume(pipeline.settings.topic_deadletter, min_count=1, timeout=5)
    assert letters == [], letters[:3]
    _assert_exactly_once_and_equal(pipeline, readings)
    _assert_repeated_events_are_copies(pipeline)
    print(
        "recovery (kill to first new row):",
        ", ".join(f"{r:.1f} s" for r in recoveries),
        "; readings replayed (skipped) by the last worker:",
        _sample(pipeline.workers[-1], 'tsguard_readings_total{outcome="replayed"}'),
    )


def _assert_repeated_events_are_copies(pipe: Pipeline) -> None:
    """Events are at least once across a kill -9 (README): a repeat is a copy but for
    ``emitted_at``, so (episode_id, event, ts) deduplicates, and each episode's row
    holds what its last event says."""
    events = pipe.consume(pipe.settings.topic_anomalies, min_count=10**9, timeout=3)
    first: dict[tuple[str, str, str], dict[str, Any]] = {}
    last: dict[str, str] = {}
    for event in events:
        body = {k: v for k, v in event.items() if k != "emitted_at"}
        key = (event["episode_id"], event["event"], event["ts"])
        assert first.setdefault(key, body) == body, (first[key], body)
        last[event["episode_id"]] = event["event"]
    rows = dict(pipe.sql("SELECT id, status FROM anomalies"))
    assert rows == {i: "resolved" if e == "resolved" else "open" for i, e in last.items()}


def _sample(worker: WorkerProcess, series: str) -> float | None:
    for line in worker.metrics_text().splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_sigterm_mid_stream_drains_commits_and_exits_0(pipeline: Pipeline) -> None:
    # 8 s of readings at 2,500/s: the stop at 40 % stored comes while the feed still
    # sends (with 3.2 s of them, a worker slowed by a busy machine had fetched the whole
    # stream, one poll takes 10,000 records, by then, and its drain stored all of it)
    readings, _ = labelled_stream(
        entities=10, metrics=("temperature", "pressure", "vibration"), points=2000, seed=17
    )
    points = sum(len(r["metrics"]) for r in readings)
    worker = pipeline.start_worker("w1", env={"TSGUARD_WORKER_SHUTDOWN_TIMEOUT_S": "10"})
    worker.wait_ready()
    feed = PacedFeed(pipeline, readings, rate=2500.0)
    feed.start()
    wait_for(lambda: _scored(pipeline) >= 0.4 * points, timeout=90, what="40% stored", every=0.05)
    assert worker.terminate(timeout=40) == 0, worker.log_tail()
    stopped_at = _scored(pipeline)
    # Everything stored is committed, and nothing more (3 points per reading).
    assert 3 * _committed(pipeline) == stopped_at
    pipeline.start_worker("w1")
    feed.join()
    wait_for(lambda: _scored(pipeline) >= points, timeout=120, what="the whole stream stored")
    assert stopped_at < points  # the stop really came mid-stream
    letters = pipeline.consume(pipeline.settings.topic_deadletter, min_count=1, timeout=5)
    assert letters == [], letters[:3]
    _assert_exactly_once_and_equal(pipeline, readings)


def _fleet_backlog(entities: int, minutes: int) -> list[dict[str, Any]]:
    """``minutes`` one-minute readings of ``entities`` devices, minute by minute."""
    start = time.time() - 8 * 3600
    return [
        {"entity": f"dev-{i:05d}", "ts": start + 60.0 * m, "metrics": {"t": 20.0 + (m + i) % 7}}
        for m in range(minutes)
        for i in range(entities)
    ]


def test_sigterm_while_a_fleet_backlog_is_scored_commits_all_it_stored(
    pipeline: Pipeline,
) -> None:
    """A worker holding 10,000 entities, stopped while it scored their backlog. Each
    checkpoint of a partition wrote its 2,500 entities into the Faust table one key at a
    time, and Faust's producer buffer sent them one per turn of the event loop, slower
    than they came: every commit waited for the buffer, and the stop's last one could
    not finish in the shutdown timeout (a hard exit after 25 s, 37,798 of 87,208 stored
    readings committed, the rest read and scored again by the next owner)."""
    readings = _fleet_backlog(10_000, 10)
    worker = pipeline.start_worker("w1", env={"TSGUARD_WORKER_SHUTDOWN_TIMEOUT_S": "15"})
    worker.wait_ready()
    pipeline.produce_readings(readings)
    wait_for(
        lambda: _scored(pipeline) >= 0.7 * len(readings), timeout=300, what="70% stored", every=0.5
    )
    assert worker.terminate(timeout=60) == 0, worker.log_tail()
    stopped_at = _scored(pipeline)
    assert stopped_at < len(readings)  # the stop came mid-backlog
    assert "did not stop in time" not in worker.log_path.read_text(errors="replace")
    assert _committed(pipeline) == stopped_at  # everything stored is committed
    restarted = pipeline.start_worker("w1")
    wait_for(lambda: _scored(pipeline) >= len(readings), timeout=300, what="the rest stored")
    # the next owner scores only what the first never stored
    series = 'tsguard_readings_total{outcome="scored"}'
    left = len(readings) - stopped_at
    wait_for(lambda: (_sample(restarted, series) or 0) >= left, timeout=60, what="counted")
    assert _sample(restarted, series) == left


def test_a_worker_started_after_a_sigterm_reads_each_reading_once(pipeline: Pipeline) -> None:
    """A stop that committed everything leaves the next worker nothing to read twice.
    Faust resumes the stream partitions before it seeks them to their committed offsets,
    and the backlog aiokafka fetched during the table recovery was handed over while the
    seek awaited its look-ups; the seek then put the partitions back and the whole backlog
    came again, skipped as replayed (a new worker per 30,000 readings: 1 of 5 restarts
    with the default fetch wait, 4 of 4 with 1 ms, 2026-12-06). The 1 ms fetch wait here
    makes the hand-over come within the seek; the tail of each round, scored last,
    follows any second read of the round in every partition."""
    readings, _ = labelled_stream(entities=40, metrics=("temperature",), points=600, seed=37)
    rounds = [readings[i : i + 4000] for i in range(0, len(readings), 4000)]
    env = {"TSGUARD_WORKER_FETCH_MAX_WAIT_MS": "1"}
    produced = 0
    re_read = []
    scored = 'tsguard_readings_total{outcome="scored"}'
    for n, (backlog, tail) in enumerate((r[:-40], r[-40:]) for r in rounds):
        pipeline.produce_readings(backlog)  # waiting when the worker starts
        worker = pipeline.start_worker(f"w{n}", env=env)
        produced += len(backlog)
        wait_for(
            lambda p=produced: _scored(pipeline) >= p,  # type: ignore[misc]
            timeout=120,
            what=f"round {n} stored",
        )
        pipeline.produce_readings(tail)  # one reading of each entity, in every partition
        produced += len(tail)
        wait_for(
            lambda w=worker, k=len(backlog) + len(tail): _sample(w, scored) == k,  # type: ignore[misc]
            timeout=60,
            what=f"round {n}'s tail scored",
        )
        re_read.append(_sample(worker, 'tsguard_readings_total{outcome="replayed"}') or 0.0)
        assert worker.terminate(timeout=40) == 0, worker.log_tail()
        assert _committed(pipeline) == produced  # the stop committed everything
    assert re_read == [0.0] * len(rounds), f"readings read twice, per worker: {re_read}"
    _assert_exactly_once_and_equal(pipeline, readings)


def test_a_worker_joining_and_leaving_gracefully_repeats_no_event(pipeline: Pipeline) -> None:
    """Before, the workers that kept running gave their partitions up at every rebalance
    without a checkpoint, and the next owners published again the events sent since the
    last one (a worker joining, then stopped with SIGTERM: 16 of 399 events repeated,
    4 episodes opened twice). Each now saves its models and commits first."""
    readings, _ = labelled_stream(
        entities=40, metrics=("temperature", "pressure"), points=300, seed=29
    )
    for i, reading in enumerate(readings):  # episodes open and resolve all along
        step, e = divmod(i, 40)
        if e < 20 and step >= 30 and step % 15 in (e % 15, e % 15 + 1):
            reading["metrics"]["pressure"] = round(reading["metrics"]["pressure"] + 40.0, 4)
    points = sum(len(r["metrics"]) for r in readings)
    partitions = pipeline.settings.topic_partitions
    workers = [pipeline.start_worker("w1"), pipeline.start_worker("w2")]
    for worker in workers:
        worker.wait_ready()
    wait_for(
        lambda: [w.metric("tsguard_assigned_partitions") for w in workers] == [2, 2],
        timeout=60,
        what="two partitions each",
    )
    feed = PacedFeed(pipeline, readings, rate=300.0)
    feed.start()
    wait_for(lambda: _scored(pipeline) >= 0.3 * points, timeout=90, what="30% stored", every=0.1)
    joined = pipeline.start_worker("w3")
    wait_for(
        lambda: joined.metric("tsguard_assigned_partitions") > 0,
        timeout=60,
        what="the third worker assigned",
    )
    at_join = _scored(pipeline)
    wait_for(lambda: _scored(pipeline) >= 0.7 * points, timeout=90, what="70% stored", every=0.1)
    # told to leave mid-stream (measured before the SIGTERM: on a loaded machine its
    # drain can outlast what is left of the stream, which is no fault of the drill)
    leaving_at = _scored(pipeline)
    assert joined.terminate(timeout=40) == 0, joined.log_tail()
    feed.join()
    wait_for(lambda: _scored(pipeline) >= points, timeout=120, what="the whole stream stored")
    assert at_join < leaving_at < points  # both rebalances came mid-stream
    _assert_exactly_once_and_equal(pipeline, readings)
    events = pipeline.consume(pipeline.settings.topic_anomalies, min_count=10**9, timeout=3)
    keys = [(e["episode_id"], e["event"], e["ts"]) for e in events]
    assert len(keys) > 100, len(keys)
    repeated = len(keys) - len(set(keys))
    assert repeated == 0, f"{repeated} of {len(keys)} events repeated"
    assert sum(w.metric("tsguard_assigned_partitions") for w in workers) == partitions


def _silence_scans(worker: WorkerProcess) -> list[int]:
    """The saved entities each silence scan after an assignment went through (the keys of
    the worker's state table: logged once a reading is scored, the table recovered)."""
    text = worker.log_path.read_text(errors="replace")
    return [int(n) for n in re.findall(r"silence: (\d+) saved entities will be looked at", text)]


def test_a_worker_that_gives_partitions_away_keeps_no_state_of_theirs(pipeline: Pipeline) -> None:
    """Faust's memory store drops, at each assignment, only the keys it read from the
    changelog; the states the worker wrote itself stayed in its table after their partition
    went to another worker (its memory, its silence scans; an entity forgotten since could
    come back with its old state if the partition came back). Here a lone worker saves 40
    entities, a second joins: each table then holds exactly its own partitions' entities."""
    readings, _ = labelled_stream(entities=40, metrics=("temperature",), points=60, seed=41)
    half = len(readings) // 2
    env = {"TSGUARD_LOG_LEVEL": "INFO"}
    first = pipeline.start_worker("w1", env=env)
    first.wait_ready()
    pipeline.produce_readings(readings[:half])
    wait_for(lambda: _scored(pipeline) >= half, timeout=90, what="the first half stored")
    # committed only once saved: w1's table holds all 40 (a fresh table has nothing to scan)
    wait_for(lambda: _committed(pipeline) == half, timeout=30, what="the first half committed")
    second = pipeline.start_worker("w2", env=env)
    workers = (first, second)
    wait_for(
        lambda: [w.metric("tsguard_assigned_partitions") for w in workers] == [2, 2],
        timeout=60,
        what="two partitions each",
    )
    pipeline.produce_readings(readings[half:])  # both score, then scan their tables
    wait_for(lambda: _scored(pipeline) >= len(readings), timeout=90, what="all stored")
    wait_for(
        lambda: _silence_scans(first) and _silence_scans(second),
        timeout=30,
        what="a scan by each after the rebalance",
    )
    held = [_silence_scans(first)[-1], _silence_scans(second)[-1]]
    assert sum(held) == 40, f"saved entities held by w1, w2: {held} (40 entities in all)"


def _committed(pipe: Pipeline) -> int:
    """Readings committed by the group, over every partition."""
    settings = pipe.settings
    keys = [(settings.topic_readings, p) for p in range(settings.topic_partitions)]
    return sum(asyncio.run(start_offsets(settings, keys)).values())


def test_a_saved_state_nobody_can_read_restarts_that_model_and_the_stream_goes_on(
    pipeline: Pipeline,
) -> None:
    """Bytes in the state changelog that no reader knows (corruption, a foreign
    writer) cost that entity its models, counted, and nothing else."""
    readings, _ = labelled_stream(entities=4, metrics=("temperature",), points=300, seed=23)
    half = len(readings) // 2
    worker = pipeline.start_worker("w1")
    worker.wait_ready()
    pipeline.produce_readings(readings[:half])
    wait_for(lambda: _scored(pipeline) >= half, timeout=90, what="the first half stored")
    assert worker.terminate(timeout=40) == 0, worker.log_tail()  # state saved, offsets committed
    changelog = f"{pipeline.settings.consumer_group}-{STATE_TABLE}-changelog"
    victim = readings[0]["entity"]
    pipeline.produce([(victim.encode(), b"\x00\xff not a tsguard state")], topic=changelog)
    again = pipeline.start_worker("w1")
    again.wait_ready()
    pipeline.produce_readings(readings[half:])
    wait_for(lambda: _scored(pipeline) >= len(readings), timeout=90, what="the second half stored")
    assert _sample(again, 'tsguard_state_unreadable_total{part="entity"}') == 1.0
    letters = pipeline.consume(pipeline.settings.topic_deadletter, min_count=1, timeout=3)
    assert letters == [], letters[:3]
    rows = pipeline.sql("SELECT entity, count(*) FROM observations GROUP BY entity ORDER BY entity")
    assert rows == sorted((e, 300) for e in {r["entity"] for r in readings})


def test_an_episode_open_when_its_state_is_lost_is_resolved_and_its_event_sent(
    pipeline: Pipeline,
) -> None:
    """An episode open when its entity's saved state can no longer be read had no model
    left to resolve it: before, it stayed open in the database for good (retention
    keeps open episodes) and its alert fired for ever. Now the first reading after the
    restart resolves it, and its ``resolved`` event goes out."""
    entity, t0 = "plant-1/pump-1", time.time() - 3 * 86400
    wave = [50 + math.sin(i / 7) for i in range(1003)]
    values = wave[:400] + [v + 30 for v in wave[400:403]] + wave[403:]
    readings = [
        {"entity": entity, "ts": t0 + 60 * i, "metrics": {"temperature": round(v, 3)}}
        for i, v in enumerate(values)
    ]
    worker = pipeline.start_worker("w1")
    worker.wait_ready()
    pipeline.produce_readings(readings[:403])  # the last three jump: an episode opens
    wait_for(lambda: _scored(pipeline) >= 403, timeout=90, what="the first part stored")
    ((episode, status),) = pipeline.sql("SELECT id, status FROM anomalies")
    assert status == "open"
    assert worker.terminate(timeout=40) == 0, worker.log_tail()
    changelog = f"{pipeline.settings.consumer_group}-{STATE_TABLE}-changelog"
    pipeline.produce([(entity.encode(), b"\x00\xff not a tsguard state")], topic=changelog)
    again = pipeline.start_worker("w1")
    again.wait_ready()
    pipeline.produce_readings(readings[403:])
    wait_for(lambda: _scored(pipeline) >= len(readings), timeout=90, what="the rest stored")
    wait_for(
        lambda: (
            pipeline.sql("SELECT status FROM anomalies WHERE id = %s", (episode,))
            == [("resolved",)]
        ),
        timeout=30,
        what="the orphaned episode resolved",
    )
    events = pipeline.consume(pipeline.settings.topic_anomalies, min_count=2, timeout=15)
    resolved = [e for e in events if e["episode_id"] == episode and e["event"] == "resolved"]
    assert [e["explanation"] for e in resolved] == [LOST_MODEL], events
    assert resolved[0]["ts"] == iso_millis(t0 + 60 * 403)  # the first reading after the restart


class _Fleet:
    """Minutely readings of one metric from six hours ago on, and a fleet of ``busy``
    devices that goes on sending a minute at each :meth:`goes_on_until` poll (the silence
    scans that wake saved entities come with readings)."""

    def __init__(self, pipe: Pipeline, busy: int = 16) -> None:
        self.pipe = pipe
        self.start = time.time() - 6 * 3600.0
        # silence is judged by the clock of the entity's own partition: busy devices in each
        self.busy = [f"busy-{n}" for n in range(busy)]

    def reading(self, entity: str, minute: int) -> dict[str, Any]:
        value = 20.0 + (minute * 7 % 5) / 10
        return {"entity": entity, "ts": self.start + 60.0 * minute, "metrics": {"t": value}}

    def minutes(self, entities: list[str], first: int, last: int) -> list[dict[str, Any]]:
        return [self.reading(e, m) for m in range(first, last) for e in entities]

    def goes_on_until(self, sql: str, count: int, minute: int, what: str) -> None:
        def more_then_done() -> bool:
            nonlocal minute
            self.pipe.produce_readings(self.minutes(self.busy, minute, minute + 1))
            minute += 1
            return self.pipe.count(sql) == count

        wait_for(more_then_done, timeout=60, what=what, every=0.5)


def test_a_device_that_stops_just_before_a_restart_gets_its_silence_episode(
    pipeline: Pipeline,
) -> None:
    """Entities were loaded only when they sent a reading, and only loaded ones were
    judged silent: a device that stopped just before its worker restarted (a deploy, a
    crash, a rebalance) never got a silence episode (review rev66d: 500 devices, 0
    episodes). Its saved state now says which clock it followed, and the restarted
    worker's silence scans load it and judge it."""
    fleet = _Fleet(pipeline)
    before = fleet.minutes(["quiet-1", "quiet-2", *fleet.busy], 0, 60)
    worker = pipeline.start_worker("w1", env={"TSGUARD_WORKER_SHUTDOWN_TIMEOUT_S": "10"})
    worker.wait_ready()
    pipeline.produce_readings(before)
    wait_for(lambda: _scored(pipeline) >= len(before), timeout=90, what="the first hour stored")
    assert worker.terminate(timeout=40) == 0, worker.log_tail()
    silent = "SELECT count(*) FROM anomalies WHERE kind = 'silence' AND entity LIKE 'quiet-%%'"
    assert pipeline.count(silent) == 0
    restarted = pipeline.start_worker("w1")
    restarted.wait_ready()
    after = fleet.minutes(fleet.busy, 60, 120)
    pipeline.produce_readings(after)
    wait_for(
        lambda: _scored(pipeline) >= len(before) + len(after), timeout=90, what="the second hour"
    )
    fleet.goes_on_until(silent, 2, 120, "a silence episode for each quiet device")
    opened = pipeline.sql(
        "SELECT entity, started_at FROM anomalies WHERE kind = 'silence'"
        " AND entity LIKE 'quiet-%%' ORDER BY entity"
    )
    assert [(e, round(t.timestamp() - fleet.start)) for e, t in opened] == [
        ("quiet-1", 59 * 60),
        ("quiet-2", 59 * 60),
    ]


def _last_states(pipe: Pipeline) -> dict[bytes, bytes | None]:
    """The last record of each key of the state changelog (None: a tombstone)."""
    from aiokafka import AIOKafkaConsumer

    changelog = f"{pipe.settings.consumer_group}-{STATE_TABLE}-changelog"

    async def read() -> dict[bytes, bytes | None]:
        consumer = AIOKafkaConsumer(
            changelog,
            group_id=None,
            auto_offset_reset="earliest",
            **pipe.settings.kafka_client_kwargs(),
        )
        await consumer.start()
        last: dict[bytes, bytes | None] = {}
        try:
            quiet = 0
            while quiet < 4:
                batch = await consumer.getmany(timeout_ms=500)
                quiet = 0 if batch else quiet + 1
                for records in batch.values():
                    for record in records:
                        if record.key is not None:
                            last[record.key] = record.value
        finally:
            await consumer.stop()
        return last

    return asyncio.run(read())


def test_devices_that_left_are_forgotten_their_silence_resolved_their_state_deleted(
    pipeline: Pipeline,
) -> None:
    """A device that left the fleet kept its silence episode open, its alert firing and
    its state in the table for good (review rev66d: 4,000 departed devices). Silent past
    TSGUARD_WORKER_FORGET_AFTER_DAYS, it is forgotten: here by a restarted worker that
    never heard from it, through Faust's table (a tombstone in the changelog)."""
    fleet = _Fleet(pipeline)
    busy = fleet.busy
    first = fleet.minutes(["gone-1", "gone-2", *busy], 0, 60) + fleet.minutes(busy, 60, 180)
    worker = pipeline.start_worker("w1", env={"TSGUARD_WORKER_SHUTDOWN_TIMEOUT_S": "10"})
    worker.wait_ready()
    pipeline.produce_readings(first)
    wait_for(lambda: _scored(pipeline) >= len(first), timeout=90, what="three hours stored")
    opened = "SELECT count(*) FROM anomalies WHERE kind = 'silence' AND status = 'open'"
    wait_for(lambda: pipeline.count(opened) == 2, timeout=30, what="both silences open")
    assert worker.terminate(timeout=40) == 0, worker.log_tail()
    # forgotten after 0.02 days (29 minutes) and 100 of their minutely steps of silence:
    # they have been silent two hours
    restarted = pipeline.start_worker("w1", env={"TSGUARD_WORKER_FORGET_AFTER_DAYS": "0.02"})
    restarted.wait_ready()
    forgotten = (
        "SELECT count(*) FROM anomalies WHERE kind = 'silence' AND status = 'resolved'"
        " AND explanation LIKE 'forgotten: no data for 0.1 days'"
    )
    fleet.goes_on_until(forgotten, 2, 180, "both silences resolved as forgotten")
    assert _sample(restarted, "tsguard_entities_forgotten_total") == 2.0
    assert restarted.terminate(timeout=40) == 0, restarted.log_tail()
    states = _last_states(pipeline)
    assert states[b"gone-1"] is None and states[b"gone-2"] is None  # tombstones
    assert all(states[e.encode()] for e in busy)
    events = pipeline.consume(pipeline.settings.topic_anomalies, min_count=4, timeout=15)
    resolved = [e["entity"] for e in events if e["event"] == "resolved"]
    assert sorted(resolved) == ["gone-1", "gone-2"]
