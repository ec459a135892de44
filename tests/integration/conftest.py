"""Fixtures for the integration tests: the real local stack, never started here.

``make test`` runs ``tsguard stack up`` before pytest. A service that cannot
be reached skips the tests that need it, with a hint to start the stack; with
``CI=true`` it fails them instead, so CI can never pass by skipping.
Every test gets its own topic (``fresh_topic``) and schema (``fresh_schema``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVar

import httpx
import psycopg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from psycopg import sql
from psycopg.conninfo import make_conninfo

from connectors import stack
from connectors.stack import ServiceStatus
from stream_app.settings import Settings, load_settings

T = TypeVar("T")


def unreachable(service: str, detail: str) -> NoReturn:
    """Skip (locally) or fail (CI) the tests that need ``service``."""
    message = f"{service} is not reachable ({detail}); start the stack: `tsguard stack up`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def run_in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a private loop, whatever loop the caller has."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _live_brokers(settings: Settings) -> int:
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs(), request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return len(cluster["brokers"])
    finally:
        await admin.close()


# --- the services -------------------------------------------------------------


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def kafka_bootstrap(settings: Settings) -> str:
    """Bootstrap servers of a broker that answers metadata requests."""
    problem = "no live broker"
    try:
        if run_in_thread(_live_brokers(settings)) > 0:
            return settings.kafka_bootstrap_servers
    except (KafkaError, OSError, TimeoutError) as exc:
        problem = repr(exc)
    unreachable(f"Kafka at {settings.kafka_bootstrap_servers}", problem)


@pytest.fixture(scope="session")
def pg_conninfo(settings: Settings) -> str:
    """Conninfo of the tsguard database (role and password from the settings)."""
    conninfo = settings.pg_conninfo()
    try:
        with psycopg.connect(conninfo, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
            return conninfo
    except psycopg.Error as exc:
        problem = str(exc).strip().splitlines()[0]
    unreachable("PostgreSQL", problem)


def _http_ready(service: str, url: str) -> str:
    try:
        response = httpx.get(f"{url}/-/ready", timeout=5)
        if response.status_code == 200:
            return url
        problem = f"/-/ready answered {response.status_code}"
    except httpx.HTTPError as exc:
        problem = repr(exc)
    unreachable(f"{service} at {url}", problem)


@pytest.fixture(scope="session")
def prometheus_url(settings: Settings) -> str:
    return _http_ready("Prometheus", f"http://127.0.0.1:{settings.stack_prometheus_port}")


@pytest.fixture(scope="session")
def alertmanager_url(settings: Settings) -> str:
    return _http_ready("Alertmanager", settings.alertmanager_url.rstrip("/"))


@pytest.fixture(scope="session")
def mqtt_port(settings: Settings) -> int:
    try:
        with socket.create_connection((settings.mqtt_host, settings.mqtt_port), timeout=5):
            return settings.mqtt_port
    except OSError as exc:
        problem = repr(exc)
    unreachable(f"Mosquitto at {settings.mqtt_host}:{settings.mqtt_port}", problem)


@pytest.fixture(scope="session")
def local_stack(settings: Settings) -> list[ServiceStatus]:
    """Status of the stack run by ``tsguard stack up``; every service must be healthy."""
    statuses = stack.status(settings)
    down = [item.name for item in statuses if not item.healthy]
    if down:
        unreachable(f"the local stack ({', '.join(down)})", f"not running in {settings.stack_dir}")
    return statuses


# --- a fresh topic and schema per test -------------------------------------------


class FreshTopic(Protocol):
    async def __call__(self, name_prefix: str, partitions: int = 1) -> str: ...


@pytest.fixture
async def fresh_topic(kafka_bootstrap: str, settings: Settings) -> AsyncIterator[FreshTopic]:
    """``await fresh_topic("readings", partitions=4)`` creates a uniquely named topic.

    Every topic created is deleted when the test ends.
    """
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    created: list[str] = []

    async def create(name_prefix: str, partitions: int = 1) -> str:
        name = f"it.{name_prefix}.{uuid.uuid4().hex[:12]}"
        topic = NewTopic(name, partitions, replication_factor=settings.topic_replication)
        await admin.create_topics([topic])
        created.append(name)
        return name

    try:
        yield create
    finally:
        try:
            if created:
                await admin.delete_topics(created)
        finally:
            await admin.close()


@dataclass(frozen=True)
class FreshSchema:
    """A PostgreSQL schema of one test; ``conninfo`` puts it first on the search path."""

    name: str
    conninfo: str


@pytest.fixture
def fresh_schema(pg_conninfo: str) -> Iterator[FreshSchema]:
    """A uniquely named schema, dropped (with its contents) when the test ends."""
    name = f"it_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield FreshSchema(name, make_conninfo(pg_conninfo, options=f"-c search_path={name}"))
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
