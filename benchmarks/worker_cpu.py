"""CPU per reading of the worker's own code, without Kafka, PostgreSQL or Faust.

``python -m benchmarks.worker_cpu [--readings N] [--entities E] [--repeat R]``
scores the readings of ``tsguard bench pipeline`` (same generator, 3 metrics
per entity, 4 partitions) twice, each on fresh models:

- ``scorer``: :class:`~stream_app.worker.scoring.ReadingScorer` alone, in
  batches of the worker's size (decode, clean, score, rows, events);
- ``core``: the whole :class:`~stream_app.worker.core.WorkerCore` in memory
  (batcher, runtime, checkpoints into a dict, metrics) with a sink that only
  counts rows, fed a fetch of 500 records at a time.

Process CPU time, so another process on the machine changes the figure less
than it changes a wall-clock rate; the best of ``--repeat`` runs is printed
as JSON. Compare two builds by running both in the same minutes. The
garbage collector is tuned as in the worker (``tune_gc``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import zlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from stream_app.bench.pipeline_load import PipelinePlan, ReadingSource
from stream_app.core import EngineConfig
from stream_app.metrics import build_metrics
from stream_app.settings import load_settings
from stream_app.storage import ObservationRow, SinkBatch, SinkStats
from stream_app.worker.cli import tune_gc
from stream_app.worker.core import WorkerCore
from stream_app.worker.decode import ReadingDecoder
from stream_app.worker.feed import Record
from stream_app.worker.scoring import ReadingScorer
from stream_app.worker.states import EntityStates

T0 = 1_790_000_000.0
PARTITIONS = 4
FETCH = 500


def bench_records(readings: int, entities: int) -> list[Record]:
    """The pipeline bench's backlog as consumed records (key hash picks the partition)."""
    plan = PipelinePlan(readings=readings, entities=entities)
    source = ReadingSource(plan)
    offsets = [0] * PARTITIONS
    out: list[Record] = []
    for i in range(readings):
        key, value = source.reading(i, T0 + i / plan.offered_rate, None)
        partition = zlib.crc32(key) % PARTITIONS
        out.append(Record(value, key, "readings", partition, offsets[partition]))
        offsets[partition] += 1
    return out


class CountingSink:
    """A sink that keeps nothing: it counts the points written until ``expect`` are in."""

    def __init__(self, expect: int) -> None:
        self._rows: list[ObservationRow] = []
        self._episodes = 0
        self.points = 0
        self._expect = expect
        self.all_in = asyncio.Event()

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def add_point(self, row: ObservationRow) -> None:
        self._rows.append(row)  # buffered, as a real sink does

    def add_episode(self, event: Mapping[str, Any]) -> None:
        self._episodes += 1

    def take(self) -> SinkBatch:
        rows, self._rows = self._rows, []
        return SinkBatch(points=rows)

    async def flush_with_retry(
        self, batch: SinkBatch | None = None, *, all_series: bool = True
    ) -> SinkStats:
        written = len((batch if batch is not None else self.take()).points)
        self.points += written
        if self.points >= self._expect:
            self.all_in.set()
        return SinkStats(points=written, points_inserted=written)

    async def apply_retention(self, days: int) -> int | None:
        return 0


class NullKafka:
    """Producer and consumer handle in one: sends go nowhere, acks are noted on the record."""

    async def send_event(self, key: bytes | None, value: bytes) -> None: ...

    async def send_deadletter(self, key: bytes | None, value: bytes) -> None: ...

    def ack(self, record: Record) -> None:
        record.acked = True

    def generation(self) -> int:
        return 0

    async def seek(self, tp: Any, offset: int) -> None: ...


def scorer_cpu(records: list[Record], batch: int) -> float:
    """CPU seconds of ReadingScorer.process over ``records`` on fresh models."""
    scorer = ReadingScorer(
        EntityStates(EngineConfig.from_mapping({}), lambda entity: None), ReadingDecoder()
    )
    now = T0 + len(records)
    started = time.process_time()
    for start in range(0, len(records), batch):
        scorer.process(records[start : start + batch], now)
    return time.process_time() - started


def memory_core(sink: Any) -> WorkerCore:
    """The whole WorkerCore in memory: checkpoints into a dict, Kafka a no-op, ``sink``."""
    kafka = NullKafka()
    return WorkerCore(
        load_settings(topic_readings="readings"),
        build_metrics(CollectorRegistry()),
        {},
        sink=sink,
        table={},
        producer=kafka,
        consumer=kafka,
        on_fatal=lambda exc: None,
    )


async def feed_all(core: WorkerCore, records: list[Record]) -> None:
    """Hand ``records`` to the core a fetch (``FETCH`` records) at a time."""
    for start in range(0, len(records), FETCH):
        await core.feed.put(records[start : start + FETCH])


async def core_cpu(records: list[Record]) -> float:
    """CPU seconds of the in-memory WorkerCore from the first fetch to the last row."""
    sink = CountingSink(len(records) * len(PipelinePlan().metrics))
    core = memory_core(sink)
    task = asyncio.create_task(core.run())
    started = time.process_time()
    await feed_all(core, records)
    await sink.all_in.wait()
    elapsed = time.process_time() - started
    await core.drain()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--entities", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    records = bench_records(args.readings, args.entities)
    batch = load_settings().worker_batch_size
    tune_gc()
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        runs = {"scorer": scorer_cpu(records, batch), "core": asyncio.run(core_cpu(records))}
        for name, seconds in runs.items():
            best[name] = min(best.get(name, seconds), seconds)
    result = {
        "readings": args.readings,
        "entities": args.entities,
        **{f"{name}_cpu_s_per_1k": round(s / args.readings * 1000, 4) for name, s in best.items()},
        **{f"{name}_per_cpu_s": round(args.readings / s) for name, s in best.items()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
