"""``tsguard bench pipeline``: one real worker, end to end, against the local stack.

Three numbers from one run, one broker and one topic:

1. **Throughput**: ``readings`` readings are produced to a fresh topic first,
   then one ``tsguard worker`` subprocess (private consumer group, private
   PostgreSQL schema) works through them. Rate = readings scored after the
   worker's first batch / time from that batch's commit to the last one's.
2. **References**: a plain aiokafka consumer reads the same topic from the
   beginning and only ``orjson.loads`` each value (bare consumer); a decode +
   store consumer writes every point through the same sink into a schema of
   its own (``pipeline_reference.py``), timed from its rows as the worker is.
3. **Latency**: with the worker caught up, readings are produced at a fixed
   pace with ``ts`` = ``ingested_at`` = wall clock at send. The bench's schema
   gets one extra column, ``written_at DEFAULT clock_timestamp()``, so every
   observation row carries the moment PostgreSQL inserted it; latency is
   ``written_at - ts`` per reading (same machine, same clock), exact per row
   rather than interpolated from histogram buckets.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from aiokafka.admin import AIOKafkaAdminClient
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr

from stream_app.bench.pipeline_load import (
    PipelinePlan,
    ReadingSource,
    bare_consume,
    produce_backlog,
    produce_paced,
)
from stream_app.bench.pipeline_reference import decode_store_consume
from stream_app.build_info import build
from stream_app.settings import Settings

Say = Callable[[str], None]


def worker_env(settings: Settings) -> dict[str, str]:
    """The worker's environment, built from the settings (not from ``os.environ``)."""
    from connectors.stack.process import child_env

    extra: dict[str, str] = {}
    for name, value in settings:
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):  # as a flag is written (str() gives "False")
            value = "true" if value else "false"
        elif isinstance(value, dict):
            value = orjson.dumps(value).decode()
        extra[f"TSGUARD_{name.upper()}"] = str(value)
    return child_env(extra)


class BenchWorker:
    """One ``tsguard worker --no-migrate-db`` subprocess and its /metrics."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        exe = str(Path(sys.executable).with_name("tsguard"))
        self.url = f"http://127.0.0.1:{settings.worker_web_port}/metrics"
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [exe, "worker", "--no-migrate-db"],
                env=worker_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def metric(self, name: str) -> float | None:
        """Sum of the samples of ``name``; None while /metrics does not answer."""
        try:
            text = httpx.get(self.url, timeout=2).text
        except httpx.HTTPError:
            return None
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and line[len(name)] in " {"
        )

    def wait_for(self, name: str, at_least: float, timeout: float, every: float = 0.25) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
                raise RuntimeError("the worker exited:\n" + "\n".join(tail))
            value = self.metric(name)
            if value is not None and value >= at_least:
                return value
            time.sleep(every)
        raise TimeoutError(f"{name} did not reach {at_least} in {timeout:.0f} s ({self.log_path})")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


async def delete_topics(settings: Settings, tag: str) -> None:
    """Every topic of this run: its own and the ones Faust made (changelog, assignor)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if tag in t]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


def _one(conninfo: str, query: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row


def throughput_from_db(conninfo: str, metric: str) -> tuple[float, int]:
    """Readings/s from the first batch's commit to the last one's, and the first batch size."""
    first_xid, last_at, total = _one(
        conninfo,
        "SELECT (array_agg(xmin::text ORDER BY written_at))[1], max(written_at), count(*)"
        " FROM observations WHERE metric = %s",
        (metric,),
    )
    # Rows of one sink transaction share its xmin: that is the first batch.
    first_n, first_end = _one(
        conninfo,
        "SELECT count(*), max(written_at) FROM observations WHERE metric = %s AND xmin::text = %s",
        (metric, first_xid),
    )
    return (total - first_n) / (last_at - first_end).total_seconds(), int(first_n)


def latency_from_db(conninfo: str, metric: str, since: float) -> tuple[int, float, float, float]:
    """Count, p50, p99 and max of written_at - ts in ms, for readings with ts >= since."""
    row = _one(
        conninfo,
        "SELECT count(*), percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY lat),"
        " max(lat) FROM (SELECT extract(epoch FROM written_at - ts) * 1000 AS lat"
        " FROM observations WHERE metric = %s AND ts >= to_timestamp(%s)) AS l",
        (metric, since),
    )
    return int(row[0]), float(row[1][0]), float(row[1][1]), float(row[2])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _schema_dsn(base: Settings, schema: str) -> str:
    return make_conninfo(base.pg_conninfo(), options=f"-c search_path={schema}")


def _private(base: Settings, workdir: Path) -> tuple[Settings, str, str]:
    """Settings naming this run's topics, group, schema and port; (settings, tag, schema)."""
    tag = uuid.uuid4().hex[:10]
    schema = f"bench_{tag}"
    conninfo = _schema_dsn(base, schema)
    names = {
        f"topic_{t}": f"bench.{t}.{tag}"
        for t in ("readings", "anomalies", "deadletter", "groundtruth", "feedback", "control")
    }
    settings = base.model_copy(
        update={
            **names,
            "consumer_group": f"bench-{tag}",
            "pg_dsn": SecretStr(conninfo),
            "pg_sslmode": None,
            "pg_sslrootcert": None,
            "worker_id": "bench",
            "worker_data_dir": workdir / "data",
            "worker_web_port": _free_port(),
            # The log is not what is measured; ERROR keeps stray per-event logging off the hot path.
            "log_level": "ERROR",
        }
    )
    return settings, tag, schema


def _prepare_schema(base: Settings, settings: Settings, schema: str) -> None:
    from stream_app.storage import migrate

    with psycopg.connect(base.pg_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    migrate(settings.pg_conninfo())
    with psycopg.connect(settings.pg_conninfo(), autocommit=True) as conn:
        # Insert time of every row; the sink's staging table copies the default too.
        conn.execute(
            "ALTER TABLE observations"
            " ADD COLUMN written_at timestamptz NOT NULL DEFAULT clock_timestamp()"
        )


def run_pipeline_bench(base: Settings, plan: PipelinePlan, say: Say) -> dict[str, Any]:
    """Run the three measurements on a private topic set and schema; always clean up."""
    from connectors import stack
    from stream_app.worker.topics import ensure_topics

    stack.ensure_up(base, services=["kafka", "postgres"], report=say)
    workdir = Path(tempfile.mkdtemp(prefix="tsguard-bench-"))
    settings, tag, schema = _private(base, workdir)
    ds = f"{schema}_ds"
    conninfo, metric = settings.pg_conninfo(), plan.metrics[0]
    source = ReadingSource(plan)
    worker: BenchWorker | None = None
    try:
        _prepare_schema(base, settings, schema)
        asyncio.run(ensure_topics(settings))
        n, rate = plan.readings, plan.offered_rate
        say(f"producing {n} readings ({plan.entities} entities x {len(plan.metrics)} metrics)")
        produce_rate = asyncio.run(
            produce_backlog(settings, source, n, time.time() - n / rate, rate)
        )
        say("bare consumer")
        bare = asyncio.run(bare_consume(settings, n, plan.catch_up_timeout_s))
        say(f"bare consumer: {bare:,.0f} readings/s; decode + store consumer")
        ds_settings = settings.model_copy(update={"pg_dsn": SecretStr(_schema_dsn(base, ds))})
        _prepare_schema(base, ds_settings, ds)
        asyncio.run(decode_store_consume(ds_settings, n, plan.catch_up_timeout_s))
        decode_store, _ = throughput_from_db(ds_settings.pg_conninfo(), metric)
        say(f"decode + store: {decode_store:,.0f} readings/s; starting the worker")
        worker = BenchWorker(settings, workdir / "worker.log")
        worker.wait_for("tsguard_readings_total", n, plan.catch_up_timeout_s)
        cpu_backlog = worker.metric("process_cpu_seconds_total") or 0.0
        per_s, first_batch = throughput_from_db(conninfo, metric)
        say(
            f"worker: {per_s:,.0f} readings/s; offered load {rate:,.0f}/s"
            f" for {plan.latency_seconds:.0f} s"
        )
        sent, started, ended = asyncio.run(
            produce_paced(settings, source, n, rate, plan.latency_seconds)
        )
        worker.wait_for("tsguard_readings_total", n + sent, 120)
        count, p50, p99, worst = latency_from_db(conninfo, metric, started)
        if count != sent:
            raise RuntimeError(f"{sent} readings sent at the offered load, {count} rows found")
        return {
            "build": build(),  # the worker runs this interpreter's tsguard
            "readings": n,
            "entities": plan.entities,
            "metrics_per_reading": len(plan.metrics),
            "partitions": settings.topic_partitions,
            "worker_batch_size": settings.worker_batch_size,
            "worker_idle_flush_s": settings.worker_idle_flush_s,
            "worker_max_inflight": settings.worker_max_inflight,
            "readings_per_s": round(per_s),
            "points_per_s": round(per_s * len(plan.metrics)),
            "bare_consumer_per_s": round(bare),
            "ratio": round(per_s / bare, 3),
            "decode_store_per_s": round(decode_store),
            "ratio_decode_store": round(per_s / decode_store, 3),
            "worker_cpu_s_per_1k_readings": round(cpu_backlog / n * 1000, 4),
            "first_batch_readings": first_batch,
            "produce_per_s": round(produce_rate),
            "offered_per_s": round(sent / (ended - started), 1),
            "latency_readings": sent,
            "p50_ms": round(p50, 1),
            "p99_ms": round(p99, 1),
            "max_ms": round(worst, 1),
            "latency_method": "observations.written_at (clock_timestamp() at insert) - ts (send)",
        }
    finally:
        if worker is not None:
            worker.stop()
        asyncio.run(delete_topics(settings, tag))
        with psycopg.connect(base.pg_conninfo(), autocommit=True) as conn:
            for name in (schema, ds):
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )
        shutil.rmtree(workdir, ignore_errors=True)
