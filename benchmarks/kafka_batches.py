"""What the bound on unpacking compressed Kafka batches costs, and what it saves.

``python -m benchmarks.kafka_batches [--batches N] [--repeat R]`` reads, through
aiokafka's own fetcher class (``PartitionRecords``), the same fetched bytes twice in
each codec: with aiokafka's decoders as they ship, and with tsguard's bounded ones and
the guard around each batch (:mod:`stream_app.kafka_batches`). Each batch is 500
readings as the pipeline bench makes them (about 120 kB unpacked), so the rate is the
cost per reading a consumer pays. Then a bomb each (gzip and zstd, 1 GiB of spaces in
one record) is read in a child process each way, and the child's peak resident memory
is reported. CPU time, best of ``--repeat``; compare the two columns of one run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from typing import Any

from aiokafka.consumer.fetcher import READ_UNCOMMITTED, PartitionRecords
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from stream_app.bench.pipeline_load import PipelinePlan, ReadingSource

CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
TP = TopicPartition("tsguard.readings", 0)
PER_BATCH = 500


def fetched(codec: int, batches: int) -> bytes:
    """``batches`` record batches of the pipeline bench's readings, back to back."""
    source = ReadingSource(PipelinePlan(readings=PER_BATCH * batches, entities=1000))
    out = bytearray()
    for b in range(batches):
        builder = DefaultRecordBatchBuilder(2, codec, 0, -1, -1, -1, 1 << 30)
        for i in range(PER_BATCH):
            key, value = source.reading(b * PER_BATCH + i, 1_790_000_000.0 + i, None)
            builder.append(i, timestamp=1_790_000_000_000, key=key, value=value, headers=[])
        batch = bytearray(builder.build())
        batch[0:8] = (b * PER_BATCH).to_bytes(8, "big")
        out += batch
    return bytes(out)


def read_all(data: bytes) -> int:
    records = PartitionRecords(TP, MemoryRecords(data), [], 0, None, None, True, READ_UNCOMMITTED)
    return sum(1 for _ in records)


def rate(data: bytes, repeat: int) -> float:
    """Records a CPU second, best of ``repeat``."""
    best = float("inf")
    n = 0
    for _ in range(repeat):
        began = time.process_time()
        n = read_all(data)
        best = min(best, time.process_time() - began)
    return n / best


def bomb_bytes(codec: str) -> bytes:
    """One record of 1 GiB of spaces in one batch, compressed with ``codec``."""
    builder = DefaultRecordBatchBuilder(2, CODECS[codec], 0, -1, -1, -1, 1 << 31)
    builder.append(0, timestamp=1_790_000_000_000, key=b"e", value=b" " * (1 << 30), headers=[])
    return bytes(builder.build())


def _read_bomb(data: bytes, guarded: bool, queue: Any) -> None:
    if guarded:
        from stream_app import kafka_batches

        kafka_batches.install(128 * 1024 * 1024)
    before = _peak_mb()
    records = PartitionRecords(TP, MemoryRecords(data), [], 0, None, None, True, READ_UNCOMMITTED)
    sizes = [len(r.value) if r.value is not None else None for r in records]
    queue.put({"values": sizes, "peak_mb": _peak_mb(), "before_mb": before})


def _peak_mb() -> int:
    """This process's peak resident memory (``VmHWM``: ``ru_maxrss`` survives exec, so a
    child would report its parent's peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return -1


def bomb(data: bytes, guarded: bool) -> dict[str, Any]:
    """Read ``data`` in a child process; its peak resident memory."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_read_bomb, args=(data, guarded, queue))
    child.start()
    result: dict[str, Any] = queue.get(timeout=600)
    child.join()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    data = {name: fetched(codec, args.batches) for name, codec in CODECS.items()}
    plain = {name: rate(d, args.repeat) for name, d in data.items()}
    from stream_app import kafka_batches

    kafka_batches.install(128 * 1024 * 1024)
    guarded = {name: rate(d, args.repeat) for name, d in data.items()}
    report: dict[str, Any] = {
        "records_per_cpu_s": {
            name: {
                "aiokafka": round(plain[name]),
                "tsguard": round(guarded[name]),
                "ratio": round(guarded[name] / plain[name], 3),
            }
            for name in CODECS
        },
        "bomb_1gib": {},
    }
    for codec in ("gzip", "zstd"):
        packed = bomb_bytes(codec)
        report["bomb_1gib"][codec] = {
            "compressed_bytes": len(packed),
            "aiokafka": bomb(packed, False),
            "tsguard": bomb(packed, True),
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
