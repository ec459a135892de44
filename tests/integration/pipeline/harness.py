"""Run real `tsguard worker` processes against a private set of topics and a schema."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream_app.settings import Settings, load_settings
from stream_app.worker.faust_compat import STALL_EXIT_CODE
from stream_app.worker.topics import ensure_topics

TSGUARD = str(Path(sys.executable).with_name("tsguard"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 0.25
) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class Pipeline:
    """Names and settings of one test's private pipeline."""

    settings: Settings
    env: dict[str, str]
    workdir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(
        self, name: str, *, port: int | None = None, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        worker = WorkerProcess(self, name, port or free_port(), env or {})
        worker.start()
        self.workers.append(worker)
        return worker

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.settings.pg_conninfo(), autocommit=True) as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    def count(self, query: str, params: tuple[Any, ...] = ()) -> int:
        try:
            rows = self.sql(query, params)
        except psycopg.errors.UndefinedTable:
            return 0
        return int(rows[0][0]) if rows else 0

    def produce(
        self,
        messages: Iterable[tuple[bytes | None, bytes]],
        topic: str | None = None,
        *,
        compression: str | None = None,
        batch_bytes: int = 16384,
    ) -> int:
        """Keyed messages to ``topic`` (the readings topic by default), partitioned by key,
        in batches compressed with ``compression`` (gzip, snappy, lz4, zstd) if given, of
        up to ``batch_bytes`` (Kafka's 16 kB by default) before compression."""
        return asyncio.run(_produce(self.settings, list(messages), topic, compression, batch_bytes))

    def produce_readings(self, readings: Iterable[dict[str, Any]]) -> int:
        return self.produce((r["entity"].encode(), orjson.dumps(r)) for r in readings)

    def consume(self, topic: str, *, min_count: int, timeout: float) -> list[Any]:
        return asyncio.run(_consume(self.settings, topic, min_count, deadline_s=timeout))

    def topic_configs(self, topic: str) -> dict[str, str]:
        """The broker's configs of ``topic`` (name -> value)."""
        return asyncio.run(_topic_configs(self.settings, topic))

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        asyncio.run(_delete_topics(self.settings))


class WorkerProcess:
    """One `tsguard worker` subprocess with its own web port and log file."""

    def __init__(self, pipeline: Pipeline, name: str, port: int, env: dict[str, str]) -> None:
        self.pipeline = pipeline
        self.extra_env = env
        self.name = name
        self.port = port
        self.log_path = pipeline.workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._supervising = False
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker under supervision: restarted when it exits as stalled."""
        self._spawn()
        self._supervising = True
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()

    def _supervise(self) -> None:
        while self._supervising:
            proc = self.proc
            if proc is None:
                return
            code = proc.wait()
            if not self._supervising or code != STALL_EXIT_CODE:
                return
            self.restarts += 1
            self._spawn()

    def _spawn(self) -> None:
        env = dict(self.pipeline.env)
        env["TSGUARD_WORKER_WEB_PORT"] = str(self.port)
        env["TSGUARD_WORKER_ID"] = self.name
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [TSGUARD, "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def metrics_text(self) -> str:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return ""

    def metric(self, name: str) -> float:
        """Sum of all samples of ``name`` in the worker's /metrics."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited: {self.log_tail()}")
            return (
                "tsguard_readings_total" in self.metrics_text()
                or "tsguard_batch_size" in self.metrics_text()
            )

        wait_for(ready, timeout=timeout, what=f"worker {self.name} /metrics")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        self._supervising = False
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self._supervising = False
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def terminate(self, timeout: float) -> int:
        """SIGTERM (a graceful stop); the exit code, or fail when it takes over ``timeout``."""
        self._supervising = False
        assert self.proc is not None and self.proc.poll() is None, "worker not running"
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            message = f"worker {self.name} still running {timeout:.0f} s after SIGTERM"
            raise AssertionError(message) from exc

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def make_pipeline(base: Settings, conninfo: str, workdir: Path, *, partitions: int = 4) -> Pipeline:
    """Private topics (created now) and consumer group; the caller's schema."""
    tag = uuid.uuid4().hex[:10]
    names = {
        "topic_readings": f"it.readings.{tag}",
        "topic_anomalies": f"it.anomalies.{tag}",
        "topic_deadletter": f"it.deadletter.{tag}",
        "topic_groundtruth": f"it.groundtruth.{tag}",
        "topic_feedback": f"it.feedback.{tag}",
        "topic_control": f"it.control.{tag}",
        "consumer_group": f"it-workers-{tag}",
    }
    settings = load_settings(
        **names,
        topic_partitions=partitions,
        pg_dsn=conninfo,
        worker_data_dir=workdir / "data",
        worker_idle_flush_s=0.05,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSGUARD_")}
    env.update({f"TSGUARD_{k.upper()}": str(v) for k, v in names.items()})
    env.update(
        {
            "TSGUARD_TOPIC_PARTITIONS": str(partitions),
            "TSGUARD_PG_DSN": conninfo,
            "TSGUARD_WORKER_DATA_DIR": str(workdir / "data"),
            "TSGUARD_WORKER_IDLE_FLUSH_S": "0.05",
            "TSGUARD_KAFKA_BOOTSTRAP_SERVERS": base.kafka_bootstrap_servers,
            "TSGUARD_LOG_LEVEL": "WARNING",
            "TSGUARD_WORKER_STALL_TIMEOUT_S": "20",
        }
    )
    asyncio.run(ensure_topics(settings))
    return Pipeline(settings, env, workdir)


async def _produce(
    settings: Settings,
    messages: list[tuple[bytes | None, bytes]],
    topic: str | None = None,
    compression: str | None = None,
    batch_bytes: int = 16384,
) -> int:
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(),
        compression_type=compression,
        max_batch_size=batch_bytes,
        linger_ms=5,
        max_request_size=8 * 1024 * 1024,
        enable_idempotence=True,
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic or settings.topic_readings, value=v, key=k)
            for k, v in messages
        ]
        await producer.flush()
        for f in futures:
            await f
    finally:
        await producer.stop()
    return len(messages)


async def _consume(
    settings: Settings, topic: str, min_count: int, *, deadline_s: float
) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, group_id=None, auto_offset_reset="earliest", **settings.kafka_client_kwargs()
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + deadline_s
        while len(out) < min_count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(orjson.loads(r.value) for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return out


async def _topic_configs(settings: Settings, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        # one resource: (error code, message, type, name, [(name, value, ...), ...])
        entries = response.resources[0][4]
        return {str(entry[0]): str(entry[1]) for entry in entries}
    finally:
        await admin.close()


async def _delete_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        mine = [
            t
            for t in existing
            if t.endswith(settings.topic_readings.rsplit(".", 1)[1])
            or t.startswith(settings.consumer_group)
        ]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()
