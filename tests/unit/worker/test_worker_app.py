"""The Faust-facing worker object, in process (no broker is contacted)."""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, KafkaConnectionError
from intervaltree import Interval, IntervalTree
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

import stream_app.worker.app as worker_app
from stream_app import cli
from stream_app.metrics import build_metrics
from stream_app.settings import load_settings
from stream_app.worker.faust_compat import STALL_EXIT_CODE
from stream_app.worker.faust_compat.consumer import forget_gaps
from tests.unit.worker.test_worker_core import ListSink


def _worker(**overrides: object) -> worker_app.Worker:
    """A worker on the topic ``it.readings.app`` (no broker is contacted)."""
    return worker_app.Worker(
        load_settings(topic_readings="it.readings.app", **overrides),
        build_metrics(CollectorRegistry()),
        {},
        sink=ListSink(),
    )


def _exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The exit codes the worker asks ``os._exit`` for, caught (and logging left open)."""
    exits: list[int] = []
    monkeypatch.setattr(worker_app.os, "_exit", exits.append)
    monkeypatch.setattr(logging, "shutdown", lambda: None)
    return exits


async def test_a_worker_whose_scoring_loop_dies_exits_to_be_restarted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Faust would log the crashed agent and keep serving /metrics, consuming nothing."""
    worker = _worker()

    async def dies() -> None:
        raise RuntimeError("an unexpected failure in the batch loop")

    monkeypatch.setattr(worker.core, "run", dies)
    exits = _exits(monkeypatch)
    await worker._score_readings(None)
    assert exits == [STALL_EXIT_CODE]


async def test_a_stall_in_table_recovery_says_which_changelog_partitions_it_waits_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker stalled in Faust's table recovery after a rebalance under a backlog (3 of
    14 drills, 2026-12-05) and logged only its readings' lag: nothing said the recovery
    never completed, nor where it stood."""
    worker = _worker(worker_stall_timeout_s=24.0)
    p0, p4 = (
        TopicPartition("w-series-state-changelog", 0),
        TopicPartition("w-series-state-changelog", 4),
    )
    recovery = SimpleNamespace(
        in_recovery=True,
        active_highwaters=Counter({p0: 407, p4: 428}),
        active_offsets=Counter({p0: 120, p4: 427}),
    )
    app = SimpleNamespace(
        tables=SimpleNamespace(recovery=recovery),
        consumer=SimpleNamespace(_paused_partitions={p4}),
    )
    monkeypatch.setattr(worker, "app", app)

    async def stalled(*args: object, **kwargs: object) -> str:
        return "no batch completed for 24 s while it.readings.app[0] 1224 behind"

    monkeypatch.setattr(worker.watchdog, "stalled", stalled)
    exits = _exits(monkeypatch)
    await worker._watch_for_stall()
    assert exits == [STALL_EXIT_CODE]
    [message] = [r.getMessage() for r in caplog.records if "worker stalled" in r.getMessage()]
    assert "1224 behind; in table recovery: " in message
    assert "w-series-state-changelog[0] at 120 of 407, " in message
    assert "w-series-state-changelog[4] at 427 of 428 (paused)" in message
    recovery.in_recovery = False  # after it: the message is as before
    caplog.clear()
    await worker._watch_for_stall()
    [message] = [r.getMessage() for r in caplog.records if "worker stalled" in r.getMessage()]
    assert message.endswith("1224 behind; exiting (code 75) to be restarted")


async def test_a_broker_outage_longer_than_the_stall_timeout_is_no_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the stall timeout with no batch, the watchdog asks the broker for end offsets;
    the broker away, that raised out of the Faust timer and crashed the app (exit 1,
    2026-12-06: kafka down 44 s with a 20 s stall timeout), idle workers too."""
    worker = _worker(worker_stall_timeout_s=20.0)

    async def unreachable(keys: object) -> dict[tuple[str, int], int]:
        raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 29092)]")

    exits: list[int] = []
    monkeypatch.setattr(worker, "_end_offsets", unreachable)
    monkeypatch.setattr(worker.watchdog, "_end_offsets", unreachable)
    monkeypatch.setattr(worker.core.guard, "next_offsets", lambda: {("it.readings.app", 0): 7})
    monkeypatch.setattr(worker_app.os, "_exit", exits.append)
    worker.watchdog.last_progress -= 60.0
    await worker._watch_for_stall()
    assert exits == []
    assert worker.watchdog.last_progress > time.monotonic() - 5.0  # the outage is no stall


def test_a_state_store_the_worker_cannot_write_is_refused_at_start() -> None:
    # Faust's RocksDB store asserts on a current stream event in every write; the
    # worker's checkpoints write outside one and would fail forever.
    with pytest.raises(ValidationError, match="memory://"):
        load_settings(worker_store="rocksdb://")


def test_a_batch_that_fails_after_scoring_logs_its_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    worker = _worker()
    exits = _exits(monkeypatch)
    try:
        raise AssertionError  # a bare assertion says nothing without its traceback
    except AssertionError as exc:
        worker._fatal(exc)
    assert exits == [STALL_EXIT_CODE]
    [record] = [r for r in caplog.records if "batch failed" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is AssertionError


def test_invalid_settings_end_the_command_with_one_line_each_and_no_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TSGUARD_WORKER_STORE", "rocksdb://")
    monkeypatch.setenv("TSGUARD_WORKER_BATCH_SIZE", "0")
    monkeypatch.setenv("TSGUARD_PG_POOL_MAX", "s3cret-not-a-number")
    monkeypatch.setattr("sys.argv", ["tsguard", "worker"])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert "TSGUARD_WORKER_STORE: Input should be 'memory://'" in err
    assert "TSGUARD_WORKER_BATCH_SIZE: Input should be greater than or equal to 1" in err
    assert "TSGUARD_PG_POOL_MAX:" in err and "s3cret" not in err


class StaleFetchConsumer:
    """The consumer of a worker whose batches stopped: the fetcher's position and
    highwater froze when the feed filled up, while the broker's end moved on."""

    def __init__(self, assigned: list[TopicPartition], ends: dict[TopicPartition, int]) -> None:
        self.assigned = assigned
        self.ends = ends

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def highwaters(self, *tps: TopicPartition) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp] for tp in tps}

    def highwater(self, tp: TopicPartition) -> int:
        return 130  # from the last fetch response

    async def position(self, tp: TopicPartition) -> int:
        return 130  # fetched up to here, 30 records past what a batch took


def _lags(registry: CollectorRegistry) -> dict[str, float]:
    return {
        s.labels["partition"]: s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == "tsguard_consumer_lag"
    }


async def test_consumer_lag_counts_from_the_broker_and_forgets_partitions_given_away() -> None:
    topic = "it.readings.lag"
    registry = CollectorRegistry()
    worker = worker_app.Worker(
        load_settings(topic_readings=topic), build_metrics(registry), {}, sink=ListSink()
    )
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer = StaleFetchConsumer([p0, p1], {p0: 2100, p1: 100})
    worker.app.consumer = consumer
    worker.core.guard.assigned()
    worker.core.guard.expect({(topic, 0): 100, (topic, 1): 100})
    await worker._report_lag()
    # 2000 readings not yet scored on partition 0, though the fetcher saw no lag
    assert _lags(registry) == {"0": 2000.0, "1": 0.0}
    # a rebalance gives partition 0 to another worker, which reports it from now on
    await worker._on_revoked(None)
    assert _lags(registry) == {}
    consumer.assigned = [p1]
    await worker._report_lag()
    assert _lags(registry) == {"1": 0.0}


class RebalancingConsumer(StaleFetchConsumer):
    """A rebalance takes partition 0 while the end offsets are asked; aiokafka then refuses
    the position of a partition no longer assigned."""

    async def highwaters(self, *tps: TopicPartition) -> dict[TopicPartition, int]:
        ends = await super().highwaters(*tps)
        self.assigned = [tp for tp in self.assigned if tp.partition != 0]
        return ends

    async def position(self, tp: TopicPartition) -> int:
        if tp not in self.assigned:
            raise IllegalStateError(f"Partition {tp} is not assigned")
        return 130


async def test_a_rebalance_while_the_lag_is_read_is_no_crash() -> None:
    """The 5 s lag report asked the position of a partition a rebalance had just taken:
    aiokafka's IllegalStateError crashed the worker (exit 1; the session's review, once in
    three runs of workers joining and leaving every few seconds)."""
    topic = "it.readings.lag"
    registry = CollectorRegistry()
    worker = worker_app.Worker(
        load_settings(topic_readings=topic), build_metrics(registry), {}, sink=ListSink()
    )
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    worker.app.consumer = RebalancingConsumer([p0, p1], {p0: 2100, p1: 100})
    worker.core.guard.assigned()  # nothing taken yet: the positions are asked
    await worker._report_lag()
    assert _lags(registry) == {"1": 0.0}  # partition 0 is another worker's to report


async def test_the_lag_of_partitions_just_assigned_is_reported_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The revoke clears the gauge; until the next 5-second report the sum read 0 while
    thousands of readings waited (the workers review)."""
    topic = "it.readings.lag"
    registry = CollectorRegistry()
    worker = worker_app.Worker(
        load_settings(topic_readings=topic), build_metrics(registry), {}, sink=ListSink()
    )
    p0 = TopicPartition(topic, 0)
    worker.app.consumer = StaleFetchConsumer([p0], {p0: 6230})

    async def committed(settings: object, mine: list[tuple[str, int]]) -> dict[object, int]:
        return {(topic, 0): 100}

    monkeypatch.setattr(worker_app, "start_offsets", committed)
    await worker._on_revoked(None)
    await worker._on_assigned(None, {p0})
    for task in list(worker._lookups):
        await task
    assert _lags(registry) == {"0": 6130.0}


def test_a_seek_back_forgets_the_gaps_over_offsets_read_again() -> None:
    """After a rebalance the first records handed over came from before Faust's seek to
    the committed offset, and the jump was recorded as a gap over offsets that exist;
    once they were read again and acked, each was in Faust's acked list twice, and its
    commits crawled about one offset a second (the session's review: committed 2,459
    behind what was stored, 41 s to catch up)."""
    gaps: dict[TopicPartition, IntervalTree] = defaultdict(IntervalTree)
    tp, other = TopicPartition("t", 4), TopicPartition("t", 5)
    gaps[tp].addi(1561, 2224)  # the jump from 1,560 to 2,223
    gaps[tp].addi(100, 103)  # a real hole before the seek's offset stays
    gaps[other].addi(1561, 2224)  # another partition's is not touched
    forget_gaps(gaps, tp, 1561)
    assert sorted(gaps[tp]) == [Interval(100, 103)]
    assert sorted(gaps[other]) == [Interval(1561, 2224)]
    forget_gaps(gaps, TopicPartition("t", 9), 0)  # no gap recorded there: nothing to do
    assert TopicPartition("t", 9) not in gaps


def test_the_shutdown_backstop_exits_1_after_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faust's shutdown hung after a crash (a timer's exception) and the backstop ended
    the worker with exit 0, which a restart-on-failure supervisor leaves dead; a stop an
    operator asked for still exits 0."""
    worker = _worker()
    exits = _exits(monkeypatch)
    worker._backstop()
    worker.app._crash(RuntimeError("a timer raised"))
    worker._backstop()
    assert exits == [0, 1]


def test_a_poll_hands_over_a_bounded_number_of_records(tmp_path: object) -> None:
    # Without the cap one poll took a whole fetch: 2,000,000 empty records in a few
    # compressed batches held 470 MB of records at once (130 MB with it).
    worker = _worker(worker_data_dir=str(tmp_path), worker_batch_size=4000)
    assert worker.app.conf.broker_max_poll_records == 20_000
    small = _worker(worker_data_dir=str(tmp_path), worker_batch_size=100)
    assert small.app.conf.broker_max_poll_records == 10_000


def test_the_producer_sends_batches_not_records(tmp_path: object) -> None:
    # Kafka's default 16 kB batches, sent at once: 3,000 dead letters a second at most
    worker = _worker(worker_data_dir=str(tmp_path))
    assert worker.app.conf.producer_max_batch_size == 512 * 1024
    assert worker.app.conf.producer_linger == 0.005
