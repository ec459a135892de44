"""Every endpoint x every kind of token: 401 / 403 / success exactly as declared.

The endpoints come from ``ROUTE_ROLES`` (the table the app enforces), so an
endpoint added without a request here fails ``test_every_route_has_a_request``.
Runs against the real app, PostgreSQL and Kafka (``api_env``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from stream_app.api.roles import ROUTE_ROLES, Role, allows
from tests.api.conftest import BAD_TOKENS, ApiEnv, auth

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

READING = [{"entity": "plant-9/dev-1", "ts": "2026-11-26T10:00:00Z", "metrics": {"t": 1.5}}]
RULE = {"pattern": "plant-*/temperature", "detector": "ewma_z", "policy": {"direction": "up"}}


@dataclass(frozen=True)
class Call:
    method: str
    path: Callable[[dict[str, Any]], str]
    ok: int
    kwargs: dict[str, Any]


CALLS: dict[tuple[str, str], Call] = {
    ("POST", "/v1/readings"): Call("POST", lambda s: "/v1/readings", 202, {"json": READING}),
    ("GET", "/v1/series"): Call("GET", lambda s: "/v1/series", 200, {}),
    ("GET", "/v1/series/{entity}/{metric}/observations"): Call(
        "GET", lambda s: f"/v1/series/{s['entity']}/{s['metric']}/observations", 200, {}
    ),
    ("GET", "/v1/anomalies"): Call("GET", lambda s: "/v1/anomalies", 200, {}),
    ("GET", "/v1/anomalies/export"): Call("GET", lambda s: "/v1/anomalies/export", 200, {}),
    ("GET", "/v1/anomalies/{episode_id}"): Call(
        "GET", lambda s: f"/v1/anomalies/{s['episode_ids'][0]}", 200, {}
    ),
    ("POST", "/v1/anomalies/{episode_id}/ack"): Call(
        "POST", lambda s: f"/v1/anomalies/{s['episode_ids'][1]}/ack", 200, {"json": {}}
    ),
    ("POST", "/v1/anomalies/{episode_id}/label"): Call(
        "POST",
        lambda s: f"/v1/anomalies/{s['episode_ids'][2]}/label",
        200,
        {"json": {"label": "false_positive"}},
    ),
    ("GET", "/v1/detectors"): Call("GET", lambda s: "/v1/detectors", 200, {}),
    ("PUT", "/v1/detectors/{name}"): Call("PUT", lambda s: "/v1/detectors/m1", 200, {"json": RULE}),
    ("DELETE", "/v1/detectors/{name}"): Call("DELETE", lambda s: "/v1/detectors/m2", 204, {}),
    ("GET", "/healthz"): Call("GET", lambda s: "/healthz", 200, {}),
    ("GET", "/readyz"): Call("GET", lambda s: "/readyz", 200, {}),
    ("GET", "/metrics"): Call("GET", lambda s: "/metrics", 200, {}),
    ("GET", "/dev/.well-known/jwks.json"): Call(
        "GET", lambda s: "/dev/.well-known/jwks.json", 200, {}
    ),
    ("GET", "/openapi.json"): Call("GET", lambda s: "/openapi.json", 200, {}),
    ("GET", "/docs"): Call("GET", lambda s: "/docs", 200, {}),
    ("GET", "/docs/oauth2-redirect"): Call("GET", lambda s: "/docs/oauth2-redirect", 200, {}),
    ("GET", "/redoc"): Call("GET", lambda s: "/redoc", 200, {}),
}

ROLE_CASES = [(role, alg) for role in Role for alg in ("RS256", "ES256")]
CASES = ["none", *BAD_TOKENS, *(f"{role.value}:{alg}" for role, alg in ROLE_CASES)]


async def test_every_route_has_a_request() -> None:
    assert set(CALLS) == set(ROUTE_ROLES)


def _token(env: ApiEnv, case: str) -> str | None:
    if case == "none":
        return None
    if case in BAD_TOKENS:
        return env.tokens.bad(case)
    role, alg = case.split(":")
    return env.tokens.role(role, alg=alg)


def _expected(route: tuple[str, str], case: str) -> int:
    required = ROUTE_ROLES[route]
    if required is None:
        return CALLS[route].ok
    if case == "none" or case in BAD_TOKENS:
        return 401
    return CALLS[route].ok if allows({Role(case.split(":")[0])}, required) else 403


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("route", list(CALLS), ids=lambda r: f"{r[0]} {r[1]}")
async def test_access(api_env: ApiEnv, route: tuple[str, str], case: str) -> None:
    call = CALLS[route]
    token = _token(api_env, case)
    headers = auth(token) if token else {}
    response = await api_env.client.request(
        call.method, call.path(api_env.seeded), headers=headers, **call.kwargs
    )
    expected = _expected(route, case)
    assert response.status_code == expected, response.text[:300]
    if expected == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    if expected == 403:
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_token_without_bearer_scheme_is_401(api_env: ApiEnv) -> None:
    token = api_env.tokens.role("admin")
    response = await api_env.client.get("/v1/series", headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 401


async def test_alg_none_and_hs256_confusion_are_401(api_env: ApiEnv) -> None:
    import jwt

    claims = {"iss": "x", "aud": "y", "sub": "eve", "exp": 2_000_000_000, "roles": ["admin"]}
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    public_pem = api_env.tokens.keys.public_jwks()["keys"][0]
    hs = jwt.encode(claims, key=str(public_pem["n"]).encode(), algorithm="HS256")
    for token in (unsigned, hs, "not-a-jwt", ""):
        response = await api_env.client.get("/v1/series", headers=auth(token))
        assert response.status_code == 401, token
