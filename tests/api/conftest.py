"""Fixtures of the API tests: dev keys, tokens, and a real app on a private schema.

``api_env`` runs the real app (its lifespan opens the real pool and Kafka
clients) against the local stack's PostgreSQL and Kafka, on a fresh schema
with the migrations applied and fresh topics; it is module-scoped so the
access matrix does not pay the set-up per request. A service that cannot be
reached skips locally and fails with ``CI=true``, like tests/integration.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import httpx
import psycopg
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi import FastAPI
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr

from stream_app.api.app import create_app
from stream_app.api.devkeys import DevKeys
from stream_app.settings import Settings, load_settings
from stream_app.storage import migrate

ISSUER = "https://issuer.tsguard.test/realms/tsguard"
AUDIENCE = "tsguard-api"


def unreachable(service: str, detail: str) -> NoReturn:
    message = f"{service} is not reachable ({detail}); start the stack: `tsguard stack up`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def dev_keys() -> DevKeys:
    """The keys the API under test trusts."""
    return DevKeys.generate()


@pytest.fixture(scope="session")
def forged_keys() -> DevKeys:
    """Keys of an attacker: same algorithms, never in the API's JWKS."""
    return DevKeys.generate()


@pytest.fixture(scope="session")
def dev_key_file(dev_keys: DevKeys, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dev-oauth") / "keys.json"
    path.write_text(json.dumps({"keys": list(dev_keys.private_jwks)}), "utf-8")
    return path


@dataclass(frozen=True)
class Tokens:
    """Mints the good and the bad tokens of the access matrix."""

    keys: DevKeys
    forged: DevKeys
    role_claim: str = "realm_access.roles"

    def role(self, *roles: str, alg: str = "RS256", sub: str = "alice", **kw: Any) -> str:
        return self.keys.mint(
            issuer=ISSUER, audience=AUDIENCE, roles=roles, sub=sub, alg=alg,
            role_claim=self.role_claim, **kw,
        )  # fmt: skip

    def bad(self, kind: str) -> str:
        """A token that must get 401 (it carries every role, so only validity decides)."""
        everything = ("viewer", "operator", "ingest", "admin")
        now = time.time()
        if kind == "expired":
            return self.role(*everything, now=now - 7200, ttl_s=600)
        if kind == "not_yet_valid":
            return self.role(*everything, now=now + 7200, ttl_s=600)
        if kind == "wrong_issuer":
            return self.keys.mint(
                issuer="https://evil.test/", audience=AUDIENCE, roles=everything,
                role_claim=self.role_claim,
            )  # fmt: skip
        if kind == "wrong_audience":
            return self.keys.mint(
                issuer=ISSUER, audience="another-api", roles=everything,
                role_claim=self.role_claim,
            )  # fmt: skip
        if kind == "forged":
            return self.forged.mint(
                issuer=ISSUER, audience=AUDIENCE, roles=everything, role_claim=self.role_claim
            )
        if kind in ("alg_list", "alg_object"):
            # a genuine token whose header names its algorithm as JSON that is not a string
            # (a list or an object: unhashable, a 500 to anyone before)
            _, payload, signature = self.role(*everything).split(".")
            alg: Any = ["RS256"] if kind == "alg_list" else {"RS256": True}
            header = base64.urlsafe_b64encode(json.dumps({"alg": alg, "typ": "JWT"}).encode())
            return f"{header.decode().rstrip('=')}.{payload}.{signature}"
        raise ValueError(kind)


BAD_TOKENS = (
    "expired", "not_yet_valid", "wrong_issuer", "wrong_audience", "forged", "alg_list", "alg_object"
)  # fmt: skip


@pytest.fixture(scope="session")
def tokens(dev_keys: DevKeys, forged_keys: DevKeys) -> Tokens:
    return Tokens(dev_keys, forged_keys)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_settings(dev_key_file: Path, **overrides: Any) -> Settings:
    """Settings of an API under test: dev keys, the test issuer, a dotted role claim."""
    base: dict[str, Any] = {
        "oauth_dev_mode": True,
        "oauth_dev_key_file": dev_key_file,
        "oauth_issuer": ISSUER,
        "oauth_audience": AUDIENCE,
        "oauth_role_claim": "realm_access.roles",
        "oauth_clock_skew_s": 30,
    }
    base.update(overrides)
    return load_settings(**base)


# --- the real services ------------------------------------------------------------


async def _kafka_ok(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs(), request_timeout_ms=5000)
    try:
        await admin.start()
        await admin.describe_cluster()
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def pg_conninfo(base_settings: Settings) -> str:
    conninfo = base_settings.pg_conninfo()
    try:
        with psycopg.connect(conninfo, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        unreachable("PostgreSQL", str(exc).strip().splitlines()[0])
    return conninfo


@pytest.fixture(scope="session")
def kafka_ok(base_settings: Settings) -> str:
    try:
        asyncio.run(_kafka_ok(base_settings))
    except Exception as exc:
        unreachable(f"Kafka at {base_settings.kafka_bootstrap_servers}", repr(exc))
    return base_settings.kafka_bootstrap_servers


@dataclass
class ApiEnv:
    """One running app with its private schema and topics."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    conninfo: str
    tokens: Tokens
    seeded: dict[str, Any] = field(default_factory=dict)

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            cur = conn.execute(query, params)  # test-only helper; values are bound
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def private_schema(pg_conninfo: str) -> Iterator[str]:
    """A migrated schema of its own; returns the conninfo that selects it."""
    name = f"api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    conninfo = make_conninfo(pg_conninfo, options=f"-c search_path={name}")
    try:
        migrate(conninfo)
        yield conninfo
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def private_topics(kafka_ok: str, base_settings: Settings) -> AsyncIterator[dict[str, str]]:
    """Fresh readings/feedback topics and a control topic name (the app creates it)."""
    suffix = uuid.uuid4().hex[:12]
    names = {k: f"it.api.{k}.{suffix}" for k in ("readings", "feedback", "control")}
    admin = AIOKafkaAdminClient(**base_settings.kafka_client_kwargs())
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(names[k], 1, base_settings.topic_replication)
                for k in ("readings", "feedback")
            ]
        )
        yield names
    finally:
        try:
            await admin.delete_topics(list(names.values()))
        finally:
            await admin.close()


async def wait_until_ready(app: FastAPI, within_s: float = 30.0) -> None:
    """Kafka connects in the background: poll the app's state with a deadline."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        state = app.state.api
        if state.producer is not None and state.control is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"API did not connect to Kafka within {within_s} s")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api_env(
    private_schema: str, private_topics: dict[str, str], dev_key_file: Path, tokens: Tokens
) -> AsyncIterator[ApiEnv]:
    settings = api_settings(
        dev_key_file,
        pg_dsn=SecretStr(private_schema),
        topic_readings=private_topics["readings"],
        topic_feedback=private_topics["feedback"],
        topic_control=private_topics["control"],
        api_max_body_bytes=64 * 1024,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await wait_until_ready(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            env = ApiEnv(app, client, settings, private_schema, tokens)
            env.seeded = seed(env)
            yield env


def seed(env: ApiEnv) -> dict[str, Any]:
    """A series with 3 days of minutely points and a few episodes."""
    start = datetime(2026, 11, 20, tzinfo=UTC)
    entity, metric = "plant-1/pump-2", "temperature"
    with psycopg.connect(env.conninfo, autocommit=True) as conn:
        with conn.cursor().copy(
            "COPY observations (entity, metric, ts, value, expected, lower, upper, score,"
            " is_anomaly, status, detector) FROM STDIN"
        ) as copy:
            for i in range(3 * 24 * 60):
                ts = start + timedelta(minutes=i)
                spike = i == 2000
                copy.write_row(
                    (entity, metric, ts, 100.0 if spike else 20.0 + (i % 10) / 10, 20.5, 19.0,
                     22.0, 0.9999 if spike else 0.2, spike, "ok", "robust_seasonal")
                )  # fmt: skip
        conn.execute(
            "INSERT INTO series VALUES (%s, %s, %s, %s), ('other/x', 'rate', %s, %s)",
            (entity, metric, start, start + timedelta(days=3), start, start),
        )
        ids = []
        for i in range(5):
            episode_id = f"ep-{uuid.uuid4().hex[:16]}"
            ids.append(episode_id)
            began = start + timedelta(hours=6 * i)
            conn.execute(
                "INSERT INTO anomalies (id, entity, metric, status, started_at, ended_at, last_ts,"
                " value, expected, score, peak_score, severity, direction, detector, explanation)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, 100, 20.5, 0.99, 0.999, %s, 'up',"
                " 'robust_seasonal', 'spike')",
                (
                    episode_id, entity if i < 4 else "other/x", metric if i < 4 else "rate",
                    "resolved" if i else "open", began, began + timedelta(minutes=5) if i else None,
                    began + timedelta(minutes=5), ("low", "medium", "high", "critical", "high")[i],
                ),
            )  # fmt: skip
    return {"entity": entity, "metric": metric, "start": start, "episode_ids": ids}
