"""A worker with many entities restarted after ``kill -9``: what it replays, how long it takes.

Each run feeds ``entities`` entities for ``rounds`` rounds, one reading each per
round and one state checkpoint between rounds (so every round writes every
entity's state to the changelog again), waits for Kafka's log cleaner, counts
the changelog's records, kills the worker with SIGKILL, starts a new one and
times it from its start to the next round stored. Runs are made per changelog
segment size in the same invocation; Kafka's own default (1 GiB, 7 days) is the
reference::

    python -m benchmarks.worker_restart --entities 5000 --rounds 40

Needs the local stack (started when down).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from psycopg import sql

from stream_app.bench.pipeline import BenchWorker, _one, _prepare_schema, _private, delete_topics
from stream_app.settings import Settings, load_settings

KAFKA_DEFAULT_SEGMENT = (1024**3, 7 * 24 * 3600 * 1000)
T0 = 1_790_000_000.0


async def _produce_round(settings: Settings, entities: int, r: int) -> None:
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), linger_ms=20)
    await producer.start()
    try:
        for i in range(entities):
            entity = f"fleet/{i}"
            doc = {"entity": entity, "ts": T0 + 60 * r, "metrics": {"t": 20.0 + (i + r) % 5}}
            await producer.send(settings.topic_readings, orjson.dumps(doc), key=entity.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _changelog_records(settings: Settings) -> tuple[int, int]:
    """(records, distinct keys) in the state changelog, read from its beginning."""
    topic = f"{settings.consumer_group}-series-state-changelog"
    consumer = AIOKafkaConsumer(
        topic, group_id=None, auto_offset_reset="earliest", **settings.kafka_client_kwargs()
    )
    await consumer.start()
    records, idle = 0, 0
    keys: set[bytes | None] = set()
    try:
        while idle < 4:
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            idle = 0 if batch else idle + 1
            for messages in batch.values():
                records += len(messages)
                keys.update(m.key for m in messages)
    finally:
        await consumer.stop()
    return records, len(keys)


def _wait_rows(settings: Settings, at_least: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    conninfo = settings.pg_conninfo()
    while int(_one(conninfo, "SELECT count(*) FROM observations")[0]) < at_least:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {at_least} observation rows after {timeout:.0f} s")
        time.sleep(0.1)


def run_once(
    base: Settings, entities: int, rounds: int, segment: tuple[int, int], cleaner_wait_s: float
) -> dict[str, Any]:
    from connectors import stack
    from stream_app.worker.topics import ensure_topics

    stack.ensure_up(base, services=["kafka", "postgres"], report=lambda _: None)
    workdir = tempfile.mkdtemp(prefix="tsguard-restart-")
    settings, tag, schema = _private(base, Path(workdir))
    settings = settings.model_copy(
        update={
            "worker_changelog_segment_bytes": segment[0],
            "worker_changelog_segment_ms": segment[1],
            "worker_session_timeout_s": 6.0,
        }
    )
    log = Path(workdir) / "worker.log"
    worker = None
    try:
        _prepare_schema(base, settings, schema)
        asyncio.run(ensure_topics(settings))
        worker = BenchWorker(settings, log)
        worker.wait_for("tsguard_readings_total", 0, 90)
        for r in range(rounds):
            asyncio.run(_produce_round(settings, entities, r))
            _wait_rows(settings, entities * (r + 1), 300)
            time.sleep(settings.worker_checkpoint_s + 0.2)  # every entity's state written again
        time.sleep(cleaner_wait_s)
        records, keys = asyncio.run(_changelog_records(settings))
        os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout=10)
        started = time.monotonic()
        worker = BenchWorker(settings, log)
        asyncio.run(_produce_round(settings, entities, rounds))
        _wait_rows(settings, entities * (rounds + 1), 600)
        return {
            "segment_bytes": segment[0],
            "segment_ms": segment[1],
            "entities": entities,
            "states_written": entities * rounds,
            "changelog_records": records,
            "changelog_keys": keys,
            "restart_to_next_round_stored_s": round(time.monotonic() - started, 1),
            "session_timeout_s": settings.worker_session_timeout_s,
        }
    finally:
        if worker is not None:
            worker.stop()
        asyncio.run(delete_topics(settings, tag))
        with psycopg.connect(base.pg_conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--cleaner-wait", type=float, default=30.0)
    args = parser.parse_args(argv)
    base = load_settings()
    ours = (base.worker_changelog_segment_bytes, base.worker_changelog_segment_ms)
    for segment in (ours, KAFKA_DEFAULT_SEGMENT):
        result = run_once(base, args.entities, args.rounds, segment, args.cleaner_wait)
        print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
