"""Hostile input: SQL injection in every filter, and property-based fuzzing of the OpenAPI."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.api.conftest import ApiEnv, auth

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE anomalies; --",
    "x'); DELETE FROM observations; --",
    "\\'; TRUNCATE series; --",
    "%' UNION SELECT id, id FROM anomalies --",
    "1; SELECT pg_sleep(5)",
    "$$; DROP TABLE series; $$",
    "plant-1\x00",
]

FILTERS: list[tuple[str, str]] = [
    ("/v1/series", "entity_prefix"),
    ("/v1/anomalies", "entity_prefix"),
    ("/v1/anomalies", "metric"),
    ("/v1/anomalies", "severity"),
    ("/v1/anomalies", "status"),
    ("/v1/anomalies", "label"),
    ("/v1/anomalies", "from"),
    ("/v1/anomalies", "to"),
    ("/v1/anomalies", "cursor"),
    ("/v1/anomalies/export", "entity_prefix"),
    ("/v1/anomalies/export", "metric"),
    ("/v1/anomalies/export", "format"),
    ("/v1/series/plant-1/pump-2/temperature/observations", "from"),
    ("/v1/series/plant-1/pump-2/temperature/observations", "max_points"),
]


def _counts(env: ApiEnv) -> tuple[Any, ...]:
    return env.sql(
        "SELECT (SELECT count(*) FROM anomalies), (SELECT count(*) FROM observations),"
        " (SELECT count(*) FROM series)"
    )[0]


async def test_injection_in_every_filter_is_harmless(api_env: ApiEnv) -> None:
    before = _counts(api_env)
    headers = auth(api_env.tokens.role("viewer"))
    for path, name in FILTERS:
        for payload in INJECTIONS:
            response = await api_env.client.get(path, params={name: payload}, headers=headers)
            assert response.status_code in (200, 422), (path, name, payload, response.text)
            if response.status_code == 200 and path != "/v1/anomalies/export":
                body = response.json()
                assert body.get("items", body.get("points")) == [], (path, name, payload)
    for raw in INJECTIONS:  # path parameters too
        payload = quote(raw, safe="/")
        for path in (f"/v1/anomalies/{payload}", f"/v1/series/{payload}/m/observations"):
            response = await api_env.client.get(path, headers=headers)
            assert response.status_code in (200, 404, 422), (path, response.text)
    assert _counts(api_env) == before


async def test_openapi_fuzzing_finds_no_server_error(api_env: ApiEnv) -> None:
    """Schemathesis generates requests for every operation, with an admin token and
    with the ingest token; any 5xx fails. Bounded to a few hundred examples."""
    import schemathesis

    schema = schemathesis.openapi.from_dict(api_env.app.openapi())
    operations = [op.ok() for op in schema.get_all_operations()]
    failures: list[str] = []
    for operation in operations:
        role = "ingest" if operation.path == "/v1/readings" else "admin"
        headers = auth(api_env.tokens.role(role))
        seen = _examples(operation)
        for case in seen:
            kwargs = case.as_transport_kwargs(base_url="http://api.test", headers=headers)
            kwargs.pop("url", None)
            url = case.formatted_path
            response = await api_env.client.request(
                case.method,
                url,
                params=kwargs.get("params"),
                headers={**(kwargs.get("headers") or {}), **headers},
                content=kwargs.get("data") or kwargs.get("content"),
                json=kwargs.get("json"),
            )
            if response.status_code >= 500:
                failures.append(f"{case.method} {url} {kwargs} -> {response.status_code}")
    assert not failures, "\n".join(failures[:10])


def _examples(operation: Any, count: int = 25) -> list[Any]:
    """``count`` generated cases of one operation (generated first, sent afterwards,
    because Hypothesis drives a synchronous function and the client is async)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    seen: list[Any] = []

    @settings(
        max_examples=count,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(data=st.data())
    def collect(data: st.DataObject) -> None:
        seen.append(data.draw(operation.as_strategy()))

    collect()
    return seen
