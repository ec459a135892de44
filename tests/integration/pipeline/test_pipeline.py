"""The streaming pipeline against the real Kafka and PostgreSQL of the stack.

Each test runs real `tsguard worker` processes on private topics and a
private schema, feeds generated labelled readings, and checks what lands on
the anomaly and dead-letter topics and in the database.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stream_app.core import EngineConfig, SeriesProcessor
from stream_app.settings import Settings
from stream_app.worker.faust_compat import start_offsets
from tests.integration.pipeline.harness import Pipeline, WorkerProcess, wait_for
from tests.integration.pipeline.streams import labelled_stream, recall_precision

pytestmark = pytest.mark.integration
SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _episodes(pipe: Pipeline) -> list[dict[str, object]]:
    rows = pipe.sql(
        "SELECT entity, metric, extract(epoch FROM started_at), extract(epoch FROM coalesce(ended_at, last_ts))"
        " FROM anomalies WHERE kind = 'value'"
    )
    return [{"entity": e, "metric": m, "start": float(s), "end": float(t)} for e, m, s, t in rows]


def test_end_to_end_labelled_stream(pipeline: Pipeline) -> None:
    readings, truth = labelled_stream(entities=6, points=600)
    worker = pipeline.start_worker("w1")
    worker.wait_ready()
    pipeline.produce_readings(readings)
    expected_points = sum(len(r["metrics"]) for r in readings)
    wait_for(
        lambda: pipeline.count("SELECT count(*) FROM observations") >= expected_points,
        timeout=120,
        what=f"{expected_points} observations",
    )
    assert pipeline.count("SELECT count(*) FROM observations") == expected_points
    # The state changelog the worker made: compacted, with segments small enough that
    # a restart replays about one state per entity (benchmarks/worker_restart.py).
    settings = pipeline.settings
    changelog = pipeline.topic_configs(f"{settings.consumer_group}-series-state-changelog")
    assert changelog["cleanup.policy"] == "compact"
    assert changelog["segment.bytes"] == str(settings.worker_changelog_segment_bytes)
    assert changelog["segment.ms"] == str(settings.worker_changelog_segment_ms)
    assert changelog["min.cleanable.dirty.ratio"] == "0.2"
    episodes = _episodes(pipeline)
    recall, precision = recall_precision(truth, episodes, slack_s=600)
    assert recall >= 0.8, (recall, episodes)
    assert precision >= 0.6, (precision, episodes)
    stored = {r[0] for r in pipeline.sql("SELECT id FROM anomalies")}

    def every_opened_event() -> list[dict[str, object]]:
        # All events so far (opened, updated, resolved): as many as there are
        # episodes is not enough to hold every "opened" one.
        events = pipeline.consume(pipeline.settings.topic_anomalies, min_count=10**9, timeout=2)
        opened = {e["episode_id"] for e in events if e["event"] == "opened"}
        return events if opened >= stored else []

    events = wait_for(every_opened_event, timeout=30, what="an opened event per stored episode")
    validator = _validator("anomaly-event.schema.json")
    for event in events:
        validator.validate(event)
    assert worker.metric("tsguard_readings_total") >= len(readings)


def test_poison_messages_are_dead_lettered(pipeline: Pipeline) -> None:
    good, _ = labelled_stream(entities=2, metrics=("temperature",), points=50)
    ts = good[-1]["ts"]
    bad: list[tuple[bytes | None, bytes]] = [
        (b"p/1", b"{not json"),
        (b"p/1", orjson.dumps({"entity": "p/1", "ts": ts, "metrics": {"t": "hot"}})),
        (b"p/1", b'{"entity": "p/1", "ts": 1790000000, "metrics": {"t": NaN}}'),
        (b"p/1", b'{"entity": "p/1", "ts": 1790000000, "metrics": {"t": 1e999}}'),
        (b"p/1", orjson.dumps({"entity": "p/1", "metrics": {"t": 1.0}})),
        (b"p 1", orjson.dumps({"entity": "has space", "ts": ts, "metrics": {"t": 1.0}})),
        (
            b"p/1",
            orjson.dumps(
                {"entity": "p/1", "ts": ts, "metrics": {"t": 1.0, "pad": "x" * 5_000_000}}
            ),
        ),
        (b"p/1", orjson.dumps({"entity": "p/1", "ts": 4_000_000_000, "metrics": {"t": 1.0}})),
        (b"p/1", orjson.dumps([1, 2, 3])),
        # valid readings not keyed by their entity (no key; another key)
        (None, orjson.dumps({"entity": "p/1", "ts": ts, "metrics": {"t": 1.0}})),
        (b"p/2", orjson.dumps({"entity": "p/1", "ts": ts, "metrics": {"t": 1.0}})),
        # a 600 kB key: its letter (keyed by it, carrying it) could not be sent, and the
        # worker died on the record at every restart
        (b"k" * 600_000, orjson.dumps({"entity": "p/1", "ts": ts, "metrics": {"t": 1.0}})),
        # an integer beyond the floats
        (b"p/1", b'{"entity": "p/1", "ts": 1790000000, "metrics": {"t": ' + b"9" * 400 + b"}}"),
    ]
    messages: list[tuple[bytes | None, bytes]] = []
    for i, reading in enumerate(good):
        messages.append((reading["entity"].encode(), orjson.dumps(reading)))
        if i % 10 == 5 and bad:
            messages.append(bad.pop())
    messages.extend(bad)
    n_bad = sum(1 for _, v in messages if not v.startswith(b'{"entity":"site-'))
    worker = pipeline.start_worker("w1")
    worker.wait_ready()
    pipeline.produce(messages)
    letters = pipeline.consume(pipeline.settings.topic_deadletter, min_count=n_bad, timeout=60)
    assert len(letters) == n_bad
    reasons = sorted(letter["reason"] for letter in letters)
    assert reasons == sorted(
        [
            "invalid_json",
            "schema",
            "non_finite",
            "non_finite",
            "schema",
            "schema",
            "too_large",
            "future_timestamp",
            "schema",
            "wrong_key",
            "wrong_key",
            "wrong_key",
            "non_finite",
        ]
    ), reasons
    validator = _validator("deadletter.schema.json")
    for letter in letters:
        validator.validate(letter)
        assert letter["payload_size"] > 0
    assert max(len(letter["origin"]["key"] or "") for letter in letters) == 1024
    big = next(letter for letter in letters if letter["reason"] == "too_large")
    assert (
        big["truncated"] and len(big["payload"]) <= pipeline.settings.deadletter_max_payload_bytes
    )
    wait_for(
        lambda: pipeline.count("SELECT count(*) FROM observations") >= len(good),
        timeout=60,
        what="every good reading scored",
    )
    assert pipeline.count("SELECT count(*) FROM observations") == len(good)
    assert worker.alive()
    assert worker.metric("tsguard_deadletters_total") == n_bad


def test_batches_of_every_codec_are_read_and_one_that_unpacks_too_far_is_skipped(
    pipeline: Pipeline,
) -> None:
    # A Java producer's lz4 batch stopped the worker (no lz4 library), at every restart;
    # a 2 MB gzip batch that unpacked to 2 GB took the worker to 4.5 GB before its
    # decoder refused the reading. Here the bound is 2 MiB and the bombs unpack to 3 MiB.
    good, _ = labelled_stream(entities=2, metrics=("temperature",), points=100)
    worker = pipeline.start_worker(
        "w1", env={"TSGUARD_KAFKA_MAX_BATCH_BYTES": str(2 * 1024 * 1024)}
    )
    worker.wait_ready()
    codecs = ["gzip", "snappy", "lz4", "zstd"]
    for i, codec in enumerate(codecs):
        part = good[i * 50 : (i + 1) * 50]
        pipeline.produce(((r["entity"].encode(), orjson.dumps(r)) for r in part), compression=codec)
        if codec in ("gzip", "zstd"):
            entity = part[-1]["entity"].encode()
            pipeline.produce([(entity, b" " * (3 * 1024 * 1024))], compression=codec)
    letters = pipeline.consume(pipeline.settings.topic_deadletter, min_count=2, timeout=60)
    assert sorted(letter["reason"] for letter in letters) == ["unreadable_batch"] * 2
    assert sorted(letter["detail"].split(" batch")[0] for letter in letters) == [
        "a gzip",
        "a zstd",
    ]
    validator = _validator("deadletter.schema.json")
    for letter in letters:
        validator.validate(letter)
        assert "2,097,152 bytes" in letter["detail"], letter["detail"]
    wait_for(
        lambda: pipeline.count("SELECT count(*) FROM observations") >= len(good),
        timeout=60,
        what="every reading of every codec scored",
    )
    assert pipeline.count("SELECT count(*) FROM observations") == len(good)
    assert worker.alive()
    assert worker.metric('tsguard_deadletters_total{reason="unreadable_batch"}') == 2


def test_a_batch_of_many_readings_that_unpacks_too_far_does_not_stop_its_partition(
    pipeline: Pipeline,
) -> None:
    # One producer request of several readings beyond the bound is one stand-in at the
    # batch's last offset, past the readings before it in the partition. The worker's
    # offset guard took that jump for records the consumer had skipped and sought back
    # to the batch, which came again as the same stand-in: the partition stood still.
    good, _ = labelled_stream(entities=1, metrics=("temperature",), points=40)
    worker = pipeline.start_worker("w1", env={"TSGUARD_KAFKA_MAX_BATCH_BYTES": str(1024 * 1024)})
    worker.wait_ready()
    entity = good[0]["entity"].encode()
    pipeline.produce((entity, orjson.dumps(r)) for r in good[:20])
    bomb = [(entity, b" " * 400_000)] * 4  # 1.6 MB unpacked, one batch
    pipeline.produce(bomb, compression="gzip", batch_bytes=8 * 1024 * 1024)
    pipeline.produce((entity, orjson.dumps(r)) for r in good[20:])
    letters = pipeline.consume(pipeline.settings.topic_deadletter, min_count=1, timeout=60)
    assert [letter["reason"] for letter in letters] == ["unreadable_batch"]
    assert "offsets 20..23 could not be read" in letters[0]["detail"], letters[0]["detail"]
    wait_for(
        lambda: pipeline.count("SELECT count(*) FROM observations") >= len(good),
        timeout=60,
        what="the readings after the unreadable batch scored",
    )
    assert pipeline.count("SELECT count(*) FROM observations") == len(good)
    assert worker.terminate(timeout=40) == 0, worker.log_tail()
    # committed past the batch: 40 readings and the batch's 4 offsets
    settings = pipeline.settings
    keys = [(settings.topic_readings, p) for p in range(settings.topic_partitions)]
    assert sum(asyncio.run(start_offsets(settings, keys)).values()) == len(good) + len(bomb)


def test_readings_of_a_transactional_producer_are_all_scored(pipeline: Pipeline) -> None:
    # Each committed transaction leaves a marker at one offset that holds no reading; the
    # worker's offset guard took the jump over it for readings the consumer skipped,
    # sought back, met the marker again and stood still until the watchdog's exit 75
    # (review s68e).
    good, _ = labelled_stream(entities=2, metrics=("temperature",), points=30)
    worker = pipeline.start_worker("w1")
    worker.wait_ready()
    messages = [(r["entity"].encode(), orjson.dumps(r)) for r in good]
    asyncio.run(_transactions(pipeline.settings, messages, size=10))
    wait_for(
        lambda: pipeline.count("SELECT count(*) FROM observations") >= len(good),
        timeout=60,
        what="every reading of the transactions scored",
    )
    assert worker.alive() and worker.restarts == 0
    assert "skipped by the consumer" not in worker.log_tail(400)


async def _transactions(
    settings: Settings, messages: list[tuple[bytes, bytes]], *, size: int
) -> None:
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(),
        transactional_id=f"it-txn-{uuid.uuid4().hex[:8]}",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        for at in range(0, len(messages), size):
            async with producer.transaction():
                for key, value in messages[at : at + size]:
                    await producer.send(settings.topic_readings, value=value, key=key)
    finally:
        await producer.stop()


def _reference_scores(
    readings: list[dict[str, object]],
) -> dict[tuple[str, str, float], float | None]:
    """Scores of an uninterrupted in-memory run of the same core."""
    config = EngineConfig.default()
    procs: dict[tuple[str, str], SeriesProcessor] = {}
    out: dict[tuple[str, str, float], float | None] = {}
    for r in readings:
        entity = str(r["entity"])
        for metric, value in r["metrics"].items():  # type: ignore[attr-defined]
            proc = procs.setdefault(
                (entity, metric),
                SeriesProcessor.create(entity=entity, metric=metric, config=config),
            )
            point, _ = proc.process(ts=float(r["ts"]), value=value)
            out[(entity, metric, float(r["ts"]))] = point.score
    return out


def _db_scores(pipe: Pipeline) -> dict[tuple[str, str, float], float | None]:
    rows = pipe.sql("SELECT entity, metric, extract(epoch FROM ts), score FROM observations")
    return {(e, m, round(float(t), 3)): s for e, m, t, s in rows}


def _assert_exactly_once_and_close(pipe: Pipeline, readings: list[dict[str, object]]) -> None:
    db = _db_scores(pipe)
    ref = {(e, m, round(t, 3)): s for (e, m, t), s in _reference_scores(readings).items()}
    assert set(db) == set(ref)  # every point once: the primary key forbids a second copy
    close = sum(
        1
        for k, s in ref.items()
        if (s is None) == (db[k] is None) and (s is None or abs(s - db[k]) <= 0.05)
    )
    assert close / len(ref) >= 0.97, f"only {close}/{len(ref)} scores match the uninterrupted run"


def _scored(pipe: Pipeline) -> int:
    return pipe.count("SELECT count(*) FROM observations")


def test_kill_9_and_restart_recovers_state(pipeline: Pipeline) -> None:
    """Killed while a chunk is in flight; the restarted worker goes on with the learned state."""
    readings, _ = labelled_stream(entities=4, metrics=("temperature",), points=1500, seed=11)
    first, second, third = readings[:2400], readings[2400:4000], readings[4000:]
    worker = pipeline.start_worker("w1")
    worker.wait_ready()
    pipeline.produce_readings(first)
    wait_for(lambda: _scored(pipeline) >= len(first), timeout=90, what="the first chunk scored")
    pipeline.produce_readings(second)
    wait_for(
        lambda: _scored(pipeline) > len(first),
        timeout=60,
        what="the second chunk started",
        every=0.02,
    )
    worker.kill()
    again = pipeline.start_worker("w1-restarted")
    again.wait_ready()
    pipeline.produce_readings(third)  # scored only after the restart: needs the recovered state
    total = len(readings)
    wait_for(lambda: _scored(pipeline) >= total, timeout=120, what="the whole stream scored")
    _assert_exactly_once_and_close(pipeline, readings)


def test_two_workers_one_killed_other_takes_over(pipeline: Pipeline) -> None:
    readings, _ = labelled_stream(entities=8, metrics=("temperature",), points=800, seed=5)
    first_half, second_half = readings[:3200], readings[3200:]
    a = pipeline.start_worker("wa")
    b = pipeline.start_worker("wb")
    a.wait_ready()
    b.wait_ready()
    wait_for(
        lambda: (
            a.metric("tsguard_assigned_partitions") > 0
            and b.metric("tsguard_assigned_partitions") > 0
        ),
        timeout=60,
        what="both workers owning partitions",
    )
    pipeline.produce_readings(first_half)
    wait_for(lambda: _scored(pipeline) >= len(first_half), timeout=90, what="the first half scored")
    assert a.metric("tsguard_readings_total") > 0 and b.metric("tsguard_readings_total") > 0
    a.kill()
    pipeline.produce_readings(second_half)
    total = len(readings)
    wait_for(
        lambda: _scored(pipeline) >= total, timeout=150, what="the survivor finishing the stream"
    )
    assert b.alive()
    _assert_exactly_once_and_close(pipeline, readings)


def _first_part_scored(
    pipeline: Pipeline,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], WorkerProcess]:
    """A worker that has scored the first 1,600 of 3,600 readings: (all of them, the
    rest, the worker), for an outage of the database to come next."""
    readings, _ = labelled_stream(entities=4, metrics=("temperature",), points=900, seed=3)
    first, second = readings[:1600], readings[1600:]
    worker = pipeline.start_worker("w1")
    worker.wait_ready()
    pipeline.produce_readings(first)
    wait_for(lambda: _scored(pipeline) >= len(first), timeout=90, what="the first part scored")
    return readings, second, worker


def test_postgres_down_for_20s_loses_and_duplicates_nothing(pipeline: Pipeline) -> None:
    from connectors import stack

    readings, second, worker = _first_part_scored(pipeline)
    settings = pipeline.settings
    stack.stop(settings, services=["postgres"])
    try:
        pipeline.produce_readings(second)
        # The outage itself: 20 s during which the worker must keep retrying, not die.
        wait_for(
            lambda: worker.metric("tsguard_sink_errors_total") > 0, timeout=30, what="sink retries"
        )
        outage_end = time.monotonic() + 20
        while time.monotonic() < outage_end:
            assert worker.alive(), worker.log_tail()
            time.sleep(1)
    finally:
        stack.ensure_up(settings, services=["postgres"])
    wait_for(lambda: _scored(pipeline) >= len(readings), timeout=120, what="the rest written")
    _assert_exactly_once_and_close(pipeline, readings)
    assert worker.alive()


def _read_only(conninfo: str) -> str:
    options = conninfo_to_dict(conninfo).get("options") or ""
    return make_conninfo(conninfo, options=f"{options} -c default_transaction_read_only=on")


def test_a_worker_started_while_postgres_is_read_only_waits_for_it(pipeline: Pipeline) -> None:
    """A standby not yet promoted (or a database set read-only for maintenance) is a
    database not there yet: before, the start-up migration's ReadOnlySqlTransaction
    ended the worker with code 1, which a supervisor that restarts on 75 leaves dead."""
    worker = pipeline.start_worker(
        "w1", env={"TSGUARD_PG_DSN": _read_only(pipeline.settings.pg_conninfo())}
    )
    wait_for(
        lambda: "read-only" in worker.log_tail() and "; retrying" in worker.log_tail(),
        timeout=30,
        what="the worker saying it waits for a writable database",
    )
    assert worker.alive(), worker.log_tail()


def test_postgres_read_only_for_15s_mid_stream_loses_nothing(pipeline: Pipeline) -> None:
    """A failover that lands the worker on a read-only server for a while: backpressure,
    as when PostgreSQL is down; before, the worker exited at the first batch."""
    readings, second, worker = _first_part_scored(pipeline)
    with psycopg.connect(pipeline.settings.pg_conninfo(), autocommit=True) as admin:
        admin.execute("ALTER ROLE CURRENT_USER SET default_transaction_read_only = on")
        try:
            # the worker's sessions end (as in a failover) and it reconnects read-only
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE usename = current_user AND pid <> pg_backend_pid()"
            )
            pipeline.produce_readings(second)
            wait_for(
                lambda: worker.metric("tsguard_sink_errors_total") > 1 or not worker.alive(),
                timeout=30,
                what="sink retries",
            )
            outage_end = time.monotonic() + 15
            while time.monotonic() < outage_end:
                assert worker.alive(), worker.log_tail()
                time.sleep(1)
        finally:
            admin.execute("ALTER ROLE CURRENT_USER RESET default_transaction_read_only")
    wait_for(lambda: _scored(pipeline) >= len(readings), timeout=120, what="the rest written")
    _assert_exactly_once_and_close(pipeline, readings)
    assert worker.alive() and worker.restarts == 0
