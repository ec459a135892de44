"""How long the worker's event loop is held, and its throughput, scoring in slices or not.

``python -m benchmarks.loop_blocks [--readings N] [--entities E] [--repeat R]``
feeds the readings of ``tsguard bench pipeline`` (3 metrics per entity, 4
partitions) to the whole in-memory :class:`~stream_app.worker.core.WorkerCore`
(batcher, runtime, checkpoints into a dict, a sink that only counts rows), as
:mod:`benchmarks.worker_cpu` does, in two ways in turn, each on fresh models:

- ``sliced``: as the worker runs, a batch scored ``SCORE_SLICE`` readings at a
  time with the event loop running between slices;
- ``whole``: the path before, each batch (up to the worker's batch size) scored
  at once and the silence scan judging every live entity at once
  (``SCORE_SLICE`` and ``JUDGE_SLICE`` raised past any batch and fleet).

A timer due every 5 ms measures the loop: the CPU this thread spent between
two of its turns is what held the loop (``block_cpu``: the longest callback,
give or take 5 ms, unaffected by other processes taking the CPU), and how late
it ran is how long the consumer's heartbeats, commits and the worker's timers
would have waited (``late``: wall clock, which a busy machine lengthens).
Printed as JSON per path: the longest and the 99th percentile of each (the
median of the ``--repeat`` runs), readings per CPU second and per wall second
(the best run), the ratios sliced / whole, and ``same_points``. The same run
measures both paths, alternating; compare ratios, not rates across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from benchmarks.worker_cpu import CountingSink, bench_records, feed_all, memory_core
from stream_app.bench.pipeline_load import PipelinePlan
from stream_app.settings import load_settings
from stream_app.storage import ObservationRow
from stream_app.worker import batching, scoring
from stream_app.worker.cli import tune_gc
from stream_app.worker.feed import Record

TICK_S = 0.005
# The silence scan's slice (live entities) per reading of the scoring slice: 1,000 for
# the worker's 200, 2,000,000 for the whole path's batches of 2,000,000 (never sliced).
JUDGE_PER_SCORE = 5


class DigestSink(CountingSink):
    """Counts the points written, as :class:`CountingSink`, and sums a digest of them (in
    whatever order they come) so that two runs can be told apart by what they stored
    (about 2 us a point, in both paths alike)."""

    def __init__(self, expect: int) -> None:
        super().__init__(expect)
        self.digest = 0

    def add_point(self, row: ObservationRow) -> None:
        super().add_point(row)
        # by its text: a NaN's hash is its identity's
        self.digest = (self.digest + hash(repr(row))) & 0xFFFF_FFFF_FFFF_FFFF


async def _watch(late: list[float], held: list[float]) -> None:
    """A timer due every ``TICK_S``, until cancelled: how late it ran each time (wall
    clock), and the CPU the thread spent between two of its turns (what held the loop,
    whether or not the machine's other processes also kept this one waiting)."""
    loop = asyncio.get_running_loop()
    cpu = time.thread_time()
    while True:
        due = loop.time() + TICK_S
        await asyncio.sleep(TICK_S)
        late.append(max(loop.time() - due, 0.0))
        was, cpu = cpu, time.thread_time()
        held.append(cpu - was)


async def run_core(
    records: list[Record], slice_size: int, *, timeout_s: float | None = None
) -> dict[str, float]:
    """One pass of the in-memory worker over ``records``, scoring ``slice_size`` at a time
    and judging silence ``JUDGE_PER_SCORE`` times as many live entities at a time (a TimeoutError if not all of their points are stored within
    ``timeout_s``)."""
    batching.SCORE_SLICE = slice_size
    scoring.JUDGE_SLICE = JUDGE_PER_SCORE * slice_size
    sink = DigestSink(len(records) * len(PipelinePlan().metrics))
    core = memory_core(sink)
    task = asyncio.create_task(core.run())
    late: list[float] = []
    held: list[float] = []
    watcher = asyncio.create_task(_watch(late, held))
    wall, cpu = time.perf_counter(), time.process_time()
    await feed_all(core, records)
    await asyncio.wait_for(sink.all_in.wait(), timeout_s)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    watcher.cancel()
    await core.drain()
    task.cancel()
    await asyncio.gather(task, watcher, return_exceptions=True)
    # a run shorter than the watcher's first turn saw no block at all
    late, held = sorted(late) or [0.0], sorted(held) or [0.0]
    return {
        "longest_block_cpu_s": held[-1],
        "p99_block_cpu_s": held[int(0.99 * (len(held) - 1))],
        "longest_late_s": late[-1],
        "p99_late_s": late[int(0.99 * (len(late) - 1))],
        "per_cpu_s": len(records) / cpu,
        "per_wall_s": len(records) / wall,
        "points": sink.points,
        "digest": sink.digest,
    }


def compare(
    records: list[Record], repeat: int, batch: int, *, timeout_s: float | None = None
) -> dict[str, Any]:
    """Both paths ``repeat`` times, alternating; the medians of the blocks, the best rates,
    and whether every run stored the same points (``same_points``)."""
    paths = {"sliced": batching.SCORE_SLICE, "whole": batch * 1_000}
    judge = scoring.JUDGE_SLICE
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    try:
        for _ in range(repeat):
            for name, size in paths.items():
                runs[name].append(asyncio.run(run_core(records, size, timeout_s=timeout_s)))
    finally:
        batching.SCORE_SLICE = paths["sliced"]
        scoring.JUDGE_SLICE = judge
    stored = {(r["points"], r["digest"]) for got in runs.values() for r in got}
    result: dict[str, Any] = {"same_points": len(stored) == 1}
    for name, got in runs.items():
        result[name] = {
            **{
                key: round(statistics.median(r[key] for r in got), 4)
                for key in ("longest_block_cpu_s", "p99_block_cpu_s", "longest_late_s")
            },
            "p99_late_s": round(statistics.median(r["p99_late_s"] for r in got), 4),
            "per_cpu_s": round(max(r["per_cpu_s"] for r in got)),
            "per_wall_s": round(max(r["per_wall_s"] for r in got)),
        }
    sliced, whole = result["sliced"], result["whole"]
    assert isinstance(sliced, dict) and isinstance(whole, dict)
    result["ratio_sliced_to_whole"] = {
        key: round(sliced[key] / whole[key], 2) for key in sliced if whole[key]
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    records = bench_records(args.readings, args.entities)
    batch = load_settings().worker_batch_size
    tune_gc()
    result = compare(records, args.repeat, batch)
    print(
        json.dumps(
            {
                "readings": args.readings,
                "entities": args.entities,
                "batch": batch,
                "score_slice": batching.SCORE_SLICE,
                **result,
            }
        )
    )


if __name__ == "__main__":
    main()
