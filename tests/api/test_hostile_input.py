"""Hostile requests get a 4xx with a JSON error, never a 5xx, on the real stack.

Each case is one the black-box drills found: names with a trailing newline,
duplicate keys, out-of-range times, lone surrogates and NUL in any string,
absurd nesting, bodies read before the token was checked, and detector rules
that only the workers would have refused.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
import pytest
import uvicorn

from stream_app.api.server import server_config
from tests.api.conftest import ApiEnv, auth

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

GOOD = '{"entity": "h/ok", "ts": "2026-11-26T10:00:00Z", "metrics": {"t": 1.0}}'


def deep(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


def assert_json_4xx(response: Any, status: int | tuple[int, ...]) -> Any:
    wanted = (status,) if isinstance(status, int) else status
    assert response.status_code in wanted, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


async def post_raw(env: ApiEnv, path: str, body: str | bytes, token: str | None, **kw: Any) -> Any:
    headers = {"content-type": kw.pop("content_type", "application/json")}
    if token is not None:
        headers.update(auth(token))
    content = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return await env.client.request(
        kw.pop("method", "POST"), path, content=content, headers=headers
    )


READING_CASES = {
    "entity with trailing newline": '[{"entity": "a/nl\\n", "ts": 1, "metrics": {"t": 1}}]',
    "metric with trailing newline": '[{"entity": "a/b", "ts": 1, "metrics": {"t\\n": 1}}]',
    "duplicate entity key": (
        '[{"entity": "X/dupA", "entity": "X/dupB", "ts": 1, "metrics": {"t": 1}}]'
    ),
    "year 1": '[{"entity": "a/b", "ts": "0001-01-01T00:00:00Z", "metrics": {"t": 1}}]',
    "year 1 with +14:00": (
        '[{"entity": "a/b", "ts": "0001-01-01T00:00:00+14:00", "metrics": {"t": 1}}]'
    ),
    "date only": '[{"entity": "a/b", "ts": "2026-01-01", "metrics": {"t": 1}}]',
    "basic format": '[{"entity": "a/b", "ts": "20260101T100000", "metrics": {"t": 1}}]',
    "week date": '[{"entity": "a/b", "ts": "2026-W01-1T10:00", "metrics": {"t": 1}}]',
    "lone surrogate in source": (
        '{"entity": "a/b", "ts": 1, "metrics": {"t": 1}, "source": "\\ud800"}'
    ),
    "NUL in a tag": '[{"entity": "a/b", "ts": 1, "metrics": {"t": 1}, "tags": {"k": "\\u0000"}}]',
    "deep tags": '[{"entity": "a/b", "ts": 1, "metrics": {"t": 1}, "tags": ' + deep(900) + "}]",
    "huge number": '[{"entity": "a/b", "ts": 1, "metrics": {"t": 1e400}}]',
    # 1e200 beside 2e200 made PostgreSQL's avg() overflow: the series' view answered 422
    "value beyond the bound": '[{"entity": "a/b", "ts": 1, "metrics": {"t": 2e200}}]',
}


@pytest.mark.parametrize("case", sorted(READING_CASES))
async def test_hostile_readings_are_rejected_per_item(api_env: ApiEnv, case: str) -> None:
    token = api_env.tokens.role("ingest")
    response = await post_raw(api_env, "/v1/readings", READING_CASES[case], token)
    body = assert_json_4xx(response, 422)
    assert body["accepted"] == 0 and body["errors"], body


@pytest.mark.parametrize(
    "line",
    [
        '{"entity": "a/b", "ts": 1, "metrics": {"t": 1}, "tags": {"k": "\\ud800"}}',
        '{"entity": "a/b", "ts": 1, "metrics": {"t": 1}, "tags": {"\\udfff": "v"}}',
        '{"entity": "a/b", "ts": 1, "metrics": {"t": 1}, "tags": ' + deep(5000) + "}",
    ],
)
async def test_a_hostile_ndjson_line_loses_nothing_else(api_env: ApiEnv, line: str) -> None:
    token = api_env.tokens.role("ingest")
    body = f"{GOOD}\n{line}\n{GOOD}\n"
    response = await post_raw(
        api_env, "/v1/readings", body, token, content_type="application/x-ndjson"
    )
    assert response.status_code == 202, response.text[:300]
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (2, 1)
    assert {e["index"] for e in result["errors"]} == {1}


def ack_path(env: ApiEnv) -> str:
    return f"/v1/anomalies/{env.seeded['episode_ids'][0]}/ack"


def label_path(env: ApiEnv) -> str:
    return f"/v1/anomalies/{env.seeded['episode_ids'][1]}/label"


BODY_ROUTES = [
    ("POST", ack_path, "operator"),
    ("POST", label_path, "operator"),
    ("PUT", lambda env: "/v1/detectors/hostile", "admin"),
]


@pytest.mark.parametrize(("method", "path", "role"), BODY_ROUTES)
async def test_the_token_is_checked_before_the_body_is_read(
    api_env: ApiEnv, method: str, path: Any, role: str
) -> None:
    no_token = await post_raw(api_env, path(api_env), "{not json", None, method=method)
    assert_json_4xx(no_token, 401)
    ingest = await post_raw(
        api_env, path(api_env), "{not json", api_env.tokens.role("ingest"), method=method
    )
    assert_json_4xx(ingest, 403)
    allowed = await post_raw(
        api_env, path(api_env), "{not json", api_env.tokens.role(role), method=method
    )
    assert_json_4xx(allowed, 422)


@pytest.mark.parametrize(
    ("method", "path", "role", "body"),
    [
        ("POST", ack_path, "operator", '{"comment": "\\ud800"}'),
        ("POST", ack_path, "operator", '{"comment": "a\\u0000b"}'),
        ("POST", label_path, "operator", '{"label": "true_positive", "comment": "\\udc00"}'),
        ("POST", ack_path, "operator", '{"comment": "a", "comment": "b"}'),
        ("PUT", lambda env: "/v1/detectors/hostile", "admin", '{"pattern": "\\ud800*"}'),
        ("PUT", lambda env: "/v1/detectors/hostile", "admin", '{"pattern": "x\\u0000"}'),
        (
            "PUT",
            lambda env: "/v1/detectors/hostile",
            "admin",
            '{"pattern": "x", "params": ' + deep(900) + "}",
        ),
        ("PUT", lambda env: "/v1/detectors/hostile", "admin", deep(5000)),
    ],
)
async def test_hostile_bodies_are_422(
    api_env: ApiEnv, method: str, path: Any, role: str, body: str
) -> None:
    token = api_env.tokens.role(role)
    response = await post_raw(api_env, path(api_env), body, token, method=method)
    assert_json_4xx(response, 422)


@pytest.mark.parametrize(
    "rule",
    [
        {"pattern": "x/*", "params": {"no_such_param": 1}},
        {"pattern": "x/*", "detector": "ewma_z", "params": {"alpha": 0.1, "bogus": 2}},
        {"pattern": "x/*", "limits": {"lower": 10, "upper": 1}},
        {"pattern": "x/*", "cleaning": {"allowed_lateness_s": -5}},
        {"pattern": "x/*", "cleaning": {"stuck_probability": 2}},
        {"pattern": "x/*", "detector": "ensemble", "params": {"members": ["nope"]}},
        {"pattern": "x/*", "detector": "no_such_detector"},
    ],
)
async def test_detector_rules_are_validated_by_the_workers_parser(
    api_env: ApiEnv, rule: dict[str, Any]
) -> None:
    token = api_env.tokens.role("admin")
    response = await post_raw(
        api_env, "/v1/detectors/hostile", orjson.dumps(rule), token, method="PUT"
    )
    assert_json_4xx(response, 422)


async def test_a_complete_good_rule_is_still_stored(api_env: ApiEnv) -> None:
    rule = {
        "pattern": "x/*",
        "detector": "ewma_z",
        "params": {"alpha": 0.05},
        "limits": {"lower": -1, "upper": 1},
        "cleaning": {"allowed_lateness_s": 5},
    }
    token = api_env.tokens.role("admin")
    response = await post_raw(
        api_env, "/v1/detectors/good", orjson.dumps(rule), token, method="PUT"
    )
    assert response.status_code == 200, response.text
    assert response.json()["params"] == {"alpha": 0.05}


async def test_a_request_uvicorn_refuses_itself_is_counted(api_env: ApiEnv) -> None:
    """uvicorn answers a request whose head it cannot read (here a 200 kB header) with a
    400 of its own, before the app: the API's request metrics never counted it. The
    server ``tsguard api`` runs counts it as a request of no route."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = api_env.settings.model_copy(update={"api_host": "127.0.0.1", "api_port": port})
    config = server_config(settings, api_env.app)
    config.lifespan = "off"  # the app's lifespan runs already (the module's fixture)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    registry = api_env.app.state.api.registry
    sample = {"method": "other", "route": "unmatched", "status": "400"}
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        before = registry.get_sample_value("tsguard_api_requests_total", sample) or 0.0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = b"GET /v1/anomalies HTTP/1.1\r\nHost: api\r\nX-Big: " + b"x" * 200_000
        writer.write(head + b"\r\n\r\n")
        status = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert status.startswith(b"HTTP/1.1 400"), status
        after = registry.get_sample_value("tsguard_api_requests_total", sample)
        assert after == before + 1
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
