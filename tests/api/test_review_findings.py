"""Defects found by an outside review of the API (each test failed before its fix)."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import APIRouter, Depends

from stream_app.api import anomalies
from stream_app.api import anomalies_sql as q
from stream_app.api.anomalies import _csv_lines, _ndjson_lines
from stream_app.api.app import check_route_roles, create_app
from stream_app.api.security import authorize
from tests.api.conftest import ApiEnv, api_settings, auth

# --- start-up check of the route table -------------------------------------------------


def test_the_route_check_sees_the_routes_of_included_routers(dev_key_file: Path) -> None:
    """FastAPI keeps an included router as one entry of ``app.routes`` with no path and
    no methods: the check looked at those entries only, so a route missing from
    ROUTE_ROLES, or one without ``authorize``, started without a word."""
    app = create_app(api_settings(dev_key_file))
    check_route_roles(app.routes)  # the real app passes

    unlisted = APIRouter()

    @unlisted.get("/v1/secret")
    async def secret() -> dict[str, str]:
        return {}

    app.include_router(unlisted)
    with pytest.raises(RuntimeError, match="GET /v1/secret has no role"):
        check_route_roles(app.routes)

    bare = create_app(api_settings(dev_key_file))
    unguarded = APIRouter()

    @unguarded.get("/v1/detectors")  # listed as viewer, but no authorize
    async def rules() -> dict[str, str]:
        return {}

    bare.include_router(unguarded)
    with pytest.raises(RuntimeError, match="declares a role but is not guarded"):
        check_route_roles(bare.routes)

    guarded = APIRouter(dependencies=[Depends(authorize)])

    @guarded.get("/v1/detectors")
    async def rules_guarded() -> dict[str, str]:
        return {}

    fine = create_app(api_settings(dev_key_file))
    fine.include_router(guarded)
    check_route_roles(fine.routes)


# --- export bodies ----------------------------------------------------------------------


def _row(**values: Any) -> tuple[Any, ...]:
    return tuple(values.get(column) for column in q.COLUMNS)


async def _rows(rows: list[tuple[Any, ...]]) -> AsyncIterator[tuple[Any, ...]]:
    for row in rows:
        yield row


async def _body(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


@pytest.mark.parametrize("comment", ["seen\r=1+1", "\r=1+1"])
async def test_a_bare_carriage_return_in_a_csv_cell_stays_in_its_cell(comment: str) -> None:
    """``csv.writer`` quotes a field holding a character of its line terminator; with "\\n"
    alone a comment's bare "\\r" went out unquoted, and a spreadsheet (or Python's csv
    reader) ends the row there: the next row started with the comment's "=1+1"."""
    body = b"".join(await _body(_csv_lines(_rows([_row(id="e1", ack_comment=comment)]))))
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert len(rows) == 2, rows
    cells = dict(zip(q.COLUMNS, rows[1], strict=True))
    assert cells["ack_comment"] in (comment, "'" + comment)
    assert not [cell for row in rows for cell in row if cell[:1] in ("=", "+", "-", "@")]


async def test_an_ndjson_export_is_sent_in_chunks_not_one_a_row() -> None:
    """One chunk a row was one ASGI send a row: 300,000 episodes took three times as long
    as the CSV export, and other requests waited behind it (/healthz p50 36 ms)."""
    rows = [_row(id=f"e{i}", entity="a/b", explanation="x" * 50) for i in range(5000)]
    chunks = await _body(_ndjson_lines(_rows(rows)))
    assert len(chunks) < 50, len(chunks)
    lines = b"".join(chunks).splitlines()
    assert [orjson.loads(line)["id"] for line in lines] == [f"e{i}" for i in range(5000)]


# --- against the real app ---------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_a_second_ack_keeps_the_first(api_env: ApiEnv) -> None:
    """A second acknowledgement (a retry, another operator) wrote over who acknowledged
    and when, and an empty body erased the first operator's comment."""
    episode = api_env.seeded["episode_ids"][0]
    alice = auth(api_env.tokens.role("operator", sub="alice"))
    bob = auth(api_env.tokens.role("operator", sub="bob"))
    first = await api_env.client.post(
        f"/v1/anomalies/{episode}/ack", json={"comment": "on it"}, headers=alice
    )
    assert first.status_code == 200, first.text
    again = await api_env.client.post(f"/v1/anomalies/{episode}/ack", json={}, headers=bob)
    assert again.status_code == 200, again.text
    kept = {k: again.json()[k] for k in ("acknowledged_by", "ack_comment", "acknowledged_at")}
    assert kept == {k: first.json()[k] for k in kept}
    stored = api_env.sql(
        "SELECT acknowledged_by, ack_comment FROM anomalies WHERE id = %s", (episode,)
    )
    assert stored == [("alice", "on it")]
    missing = await api_env.client.post("/v1/anomalies/nope/ack", json={}, headers=bob)
    assert missing.status_code == 404


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_authenticated_answers_are_not_cached_nor_sniffed(api_env: ApiEnv) -> None:
    viewer = auth(api_env.tokens.role("viewer"))
    for path in ("/v1/anomalies", "/v1/series", "/v1/anomalies/export?format=csv"):
        r = await api_env.client.get(path, headers=viewer)
        assert r.status_code == 200, r.text
        assert r.headers.get("cache-control") == "no-store", (path, r.headers)
        assert r.headers.get("x-content-type-options") == "nosniff", (path, r.headers)
    denied = await api_env.client.get("/v1/anomalies")
    assert denied.status_code == 401
    assert denied.headers.get("x-content-type-options") == "nosniff"
    health = await api_env.client.get("/healthz")
    assert health.headers.get("x-content-type-options") == "nosniff"


class _StuckKafka:
    """A producer whose sends wait until ``release`` is set, as with Kafka down."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = 0
        self.sent: list[bytes] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.waiting += 1
        await self.release.wait()
        self.sent.append(value)


async def _labels_waiting(
    api_env: ApiEnv, stuck: _StuckKafka, episodes: list[str], label: str
) -> list[asyncio.Task[Any]]:
    """A label of each of ``episodes`` sent, once two of them wait for the stuck Kafka."""
    operator = auth(api_env.tokens.role("operator"))
    labels = [
        asyncio.create_task(
            api_env.client.post(
                f"/v1/anomalies/{episode}/label", json={"label": label}, headers=operator
            )
        )
        for episode in episodes
    ]
    for _ in range(200):
        if stuck.waiting >= 2:
            break
        await asyncio.sleep(0.01)
    return labels


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_labels_waiting_for_kafka_leave_the_other_routes_their_connections(
    api_env: ApiEnv,
) -> None:
    """Each label holds a connection (and its episode's row lock) while its feedback waits
    for Kafka: with Kafka down, four labels took the whole pool for aiokafka's 40 s, and
    every other route answered 503 "database unavailable" after its 5 s wait."""
    state = api_env.app.state.api
    assert state.settings.pg_pool_max == 4
    stuck, kept = _StuckKafka(), state.producer
    state.producer = stuck
    viewer = auth(api_env.tokens.role("viewer"))
    try:
        episodes = api_env.seeded["episode_ids"][1:5]
        labels = await _labels_waiting(api_env, stuck, episodes, "true_positive")
        await asyncio.sleep(0.2)
        assert stuck.waiting == 2  # half the pool; the others wait without a connection
        began = time.monotonic()
        listed = await api_env.client.get("/v1/anomalies", headers=viewer)
        assert listed.status_code == 200, listed.text
        assert time.monotonic() - began < 3.0
        stuck.release.set()
        answers = await asyncio.gather(*labels)
        assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
        assert len(stuck.sent) == 4
    finally:
        stuck.release.set()
        state.producer = kept


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_a_label_that_finds_no_place_beside_those_waiting_for_kafka_is_503(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(anomalies, "LABEL_WAIT_S", 0.3)
    state = api_env.app.state.api
    stuck, kept = _StuckKafka(), state.producer
    state.producer = stuck
    operator = auth(api_env.tokens.role("operator"))
    first, second, third = api_env.seeded["episode_ids"][1:4]
    try:
        waiting = await _labels_waiting(api_env, stuck, [first, second], "false_positive")
        refused = await api_env.client.post(
            f"/v1/anomalies/{third}/label", json={"label": "false_positive"}, headers=operator
        )
        assert refused.status_code == 503, refused.text
        assert refused.headers.get("retry-after") == "10"
        assert "waiting for Kafka" in refused.json()["detail"]
        stored = api_env.sql("SELECT label FROM anomalies WHERE id = %s", (third,))
        assert stored != [("false_positive",)]
        stuck.release.set()
        assert [(await t).status_code for t in waiting] == [200, 200]
    finally:
        stuck.release.set()
        state.producer = kept
