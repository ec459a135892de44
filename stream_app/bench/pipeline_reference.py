"""The fair reference of ``tsguard bench pipeline``: a decode + store consumer.

It reads the same readings as the worker, validates them with the worker's
decoder and writes one row per point through the same sink (binary COPY to a
staging table, ``INSERT ... ON CONFLICT DO NOTHING``, up to as many writes in
flight as the worker allows) into a schema of its own, in batches as large as
the worker's. It does no scoring, publishes no events and runs without Faust:
what the worker costs on top of this is the detector, the episode policy, the
state checkpoints and Faust. Its rows carry the same columns with non-null
values, so the database does the same work per row.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from stream_app.bench.pipeline_load import readings_consumer
from stream_app.settings import Settings
from stream_app.storage import ObservationRow, PostgresSink
from stream_app.worker.decode import Reading, ReadingDecoder


def _rows(reading: Reading) -> list[ObservationRow]:
    at = datetime.fromtimestamp(reading.ts, tz=UTC)
    return [
        ObservationRow(
            reading.entity, metric, at, value, value, value, value, 0.0, False, "ok", "-"
        )
        for metric, value in reading.metrics.items()
    ]


async def decode_store_consume(settings: Settings, n: int, timeout_s: float) -> None:
    """Read ``n`` readings of ``settings.topic_readings`` and store every point.

    The rate is measured afterwards from the rows' insert times, exactly as
    for the worker (``throughput_from_db``).
    """
    decoder = ReadingDecoder(max_bytes=settings.max_message_bytes)  # as the worker's
    sink = PostgresSink(
        settings.pg_conninfo(), min_size=settings.pg_pool_min, max_size=settings.pg_pool_max
    )
    consumer = readings_consumer(settings)
    await sink.open()
    await consumer.start()
    inflight: list[asyncio.Task[object]] = []
    try:
        count, series_at = 0, 0.0
        deadline = time.monotonic() + timeout_s
        while count < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"decode + store consumer read {count} of {n} readings")
            batch = await consumer.getmany(timeout_ms=1000, max_records=settings.worker_batch_size)
            now = time.time()
            for records in batch.values():
                for record in records:
                    reading = decoder.decode(record.value, now)
                    if isinstance(reading, Reading):
                        for row in _rows(reading):
                            sink.add_point(row)
                count += len(records)
            if not len(sink):
                continue
            while len(inflight) >= settings.worker_max_inflight:
                await inflight.pop(0)
            # Like the worker: new series at once, every series' last time
            # only every checkpoint period.
            all_series = now - series_at >= settings.worker_checkpoint_s
            if all_series:
                series_at = now
            write = sink.flush_with_retry(sink.take(), all_series=all_series)
            inflight.append(asyncio.create_task(write))
        for task in inflight:
            await task
    finally:
        await consumer.stop()
        await sink.close()
