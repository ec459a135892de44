"""More defects an outside review of the API found (rev66c); each test failed before its fix."""

from __future__ import annotations

import time
from typing import Any

import jwt
import orjson
import pytest

from stream_app.api.auth import MAX_SUBJECT_CHARS, AuthError, StaticJwks, TokenVerifier
from stream_app.api.devkeys import DevKeys
from stream_app.api.readings import check_batch
from stream_app.wire import parse_timestamp
from stream_app.wire.reading import ReadingDecoder, Rejection
from tests.api.conftest import AUDIENCE, ISSUER, ApiEnv, Tokens, auth
from tests.api.test_endpoints import consume

# --- tokens: how long they live, and their subject --------------------------------------

DAY = 86_400
LEEWAY = 30


def _signed(keys: DevKeys, **claims: Any) -> str:
    """A token of ``claims`` over the defaults, signed by ``keys``; a claim given as
    None is left out."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "nbf": now,
        "exp": now + 600, "realm_access": {"roles": ["viewer", "operator", "admin"]},
    }  # fmt: skip
    base.update(claims)
    jwk = next(k for k in keys.private_jwks if k["alg"] == "RS256")
    return jwt.encode(
        {k: v for k, v in base.items() if v is not None},
        jwt.PyJWK(jwk, algorithm="RS256").key,
        algorithm="RS256",
        headers={"kid": jwk["kid"]},
    )


def _verifier(tokens: Tokens) -> TokenVerifier:
    return TokenVerifier(
        StaticJwks(tokens.keys.public_jwks()), issuer=ISSUER, audience=AUDIENCE,
        role_claim="realm_access.roles", role_map={}, leeway_s=LEEWAY, max_lifetime_s=DAY,
    )  # fmt: skip


def _too_long(now: int) -> dict[str, dict[str, Any]]:
    return {
        "exp of 1e300": {"exp": 1e300},
        "exp as text": {"exp": "9999999999"},  # PyJWT reads it with int()
        "exp as a number in text, near": {"exp": str(now + 600)},
        "iat as text": {"iat": str(now)},
        "nbf as text": {"nbf": str(now)},
        "exp a year on": {"exp": now + 366 * DAY},
        "issued for two days": {"iat": now - DAY, "exp": now + DAY + 60},
        "no iat, two days ahead": {"iat": None, "exp": now + 2 * DAY},
        "exp as true": {"exp": True},
        # integers no float holds: math.isfinite raised OverflowError, a 500
        "exp of 10**400": {"exp": 10**400},
        "iat of -10**400": {"iat": -(10**400)},
        "nbf of -10**400": {"nbf": -(10**400)},
    }


@pytest.mark.parametrize("case", sorted(_too_long(0)))
async def test_a_token_that_lives_too_long_or_whose_times_are_not_numbers_is_refused(
    tokens: Tokens, case: str
) -> None:
    """No token lived too long before: exp=1e300, or "9999999999", was a token for ever."""
    claims = _too_long(int(time.time()))[case]
    with pytest.raises(AuthError):
        await _verifier(tokens).verify(_signed(tokens.keys, **claims))


async def test_a_token_of_the_longest_lifetime_passes_also_from_an_issuer_a_little_ahead(
    tokens: Tokens,
) -> None:
    verifier = _verifier(tokens)
    now = int(time.time())
    for claims in (
        {"iat": now, "nbf": now, "exp": now + DAY},
        {"iat": now + LEEWAY - 5, "nbf": now, "exp": now + LEEWAY - 5 + DAY},  # clock ahead
        {"iat": None, "exp": now + DAY},
        {"exp": now + 600.5},  # a NumericDate may have a fraction
    ):
        principal = await verifier.verify(_signed(tokens.keys, **claims))
        assert principal.sub == "alice", claims


async def test_a_subject_longer_than_openid_connects_bound_is_refused(tokens: Tokens) -> None:
    """A 100,000-character ``sub`` was accepted and stored as who acknowledged."""
    verifier = _verifier(tokens)
    longest = "a" * MAX_SUBJECT_CHARS
    assert (await verifier.verify(_signed(tokens.keys, sub=longest))).sub == longest
    for sub in ("a" * (MAX_SUBJECT_CHARS + 1), "é" * 100_000):
        with pytest.raises(AuthError, match="subject is longer"):
            await verifier.verify(_signed(tokens.keys, sub=sub))


def test_the_dev_token_cli_mints_no_token_the_api_refuses(tmp_path: Any) -> None:
    """``--ttl`` up to a year minted tokens an API with the default settings refuses."""
    from typer.testing import CliRunner

    from stream_app.cli import app

    env = {"TSGUARD_STACK_DIR": str(tmp_path), "TSGUARD_OAUTH_MAX_TOKEN_LIFETIME_S": "7200"}
    runner = CliRunner()
    for args, says in (
        (["--ttl", "7201"], "at most 7200 s"),
        (["--sub", "s" * (MAX_SUBJECT_CHARS + 1)], f"at most {MAX_SUBJECT_CHARS} characters"),
    ):
        bad = runner.invoke(app, ["token", "issue", "--role", "viewer", *args], env=env)
        assert bad.exit_code == 2, bad.output
        assert says in " ".join(bad.output.split())
    fine = runner.invoke(app, ["token", "issue", "--role", "viewer", "--ttl", "7200"], env=env)
    assert fine.exit_code == 0, fine.output


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_the_api_answers_a_token_for_ever_or_with_a_huge_subject_401(
    api_env: ApiEnv,
) -> None:
    episode = api_env.seeded["episode_ids"][0]
    for claims in ({"exp": 1e300}, {"exp": "9999999999"}, {"sub": "x" * 100_000}):
        r = await api_env.client.post(
            f"/v1/anomalies/{episode}/ack",
            json={"comment": "for ever"},
            headers=auth(_signed(api_env.tokens.keys, **claims)),
        )
        assert r.status_code == 401, (claims.keys(), r.text[:200])
        assert r.headers["www-authenticate"].startswith('Bearer realm="tsguard"')
        assert r.headers["content-type"] == "application/json"
        assert set(r.json()) == {"detail"}
    stored = api_env.sql("SELECT acknowledged_at FROM anomalies WHERE id = %s", (episode,))
    assert stored == [(None,)]


# --- JSON bodies say they are JSON ------------------------------------------------------


def _body_routes(env: ApiEnv) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, role, a body the route takes) of every JSON-body route but readings."""
    ids = env.seeded["episode_ids"]
    return [
        ("POST", f"/v1/anomalies/{ids[1]}/ack", "operator", {"comment": "seen"}),
        ("POST", f"/v1/anomalies/{ids[1]}/label", "operator", {"label": "true_positive"}),
        ("PUT", "/v1/detectors/typed", "admin", {"pattern": "a/*", "detector": "ewma_z"}),
    ]


def _count(env: ApiEnv, method: str, status: str) -> float:
    registry = env.app.state.api.registry
    total = 0.0
    for template in ("/v1/anomalies/{episode_id}/ack", "/v1/anomalies/{episode_id}/label"):
        labels = {"method": method, "route": template, "status": status}
        total += registry.get_sample_value("tsguard_api_requests_total", labels) or 0.0
    labels = {"method": method, "route": "/v1/detectors/{name}", "status": status}
    return total + (registry.get_sample_value("tsguard_api_requests_total", labels) or 0.0)


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    "content_type", ["text/plain", None, "application/x-www-form-urlencoded", "application/xml"]
)
async def test_a_json_body_sent_as_another_media_type_is_415(
    api_env: ApiEnv, content_type: str | None
) -> None:
    """Readings answered 415 for a body that is not JSON; acknowledging, labelling and
    PUT of a rule read any body as JSON, whatever it said it was."""
    before = {m: _count(api_env, m, "415") for m in ("POST", "PUT")}
    for method, path, role, body in _body_routes(api_env):
        headers = auth(api_env.tokens.role(role, sub="typist"))
        if content_type is not None:
            headers["content-type"] = content_type
        r = await api_env.client.request(method, path, content=orjson.dumps(body), headers=headers)
        assert r.status_code == 415, (path, r.status_code, r.text[:200])
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"detail": "use application/json"}
        anonymous = await api_env.client.request(
            method, path, content=b"x", headers={"content-type": content_type or ""}
        )
        assert anonymous.status_code == 401  # the token first, as before
    labelled = api_env.sql(
        "SELECT acknowledged_by, labelled_by FROM anomalies WHERE id = %s",
        (api_env.seeded["episode_ids"][1],),
    )
    assert labelled == [(None, None)]
    assert _count(api_env, "POST", "415") == before["POST"] + 2
    assert _count(api_env, "PUT", "415") == before["PUT"] + 1


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_json_with_a_charset_is_json(api_env: ApiEnv) -> None:
    for method, path, role, body in _body_routes(api_env):
        headers = {
            **auth(api_env.tokens.role(role, sub="typist")),
            "content-type": "Application/JSON; charset=utf-8",
        }
        r = await api_env.client.request(method, path, content=orjson.dumps(body), headers=headers)
        assert r.status_code == 200, (path, r.text[:200])
    reading = {"entity": "typed/x", "ts": "2026-11-26T10:00:00Z", "metrics": {"t": 1.0}}
    for content_type in ("application/json; charset=utf-8", "text/plain"):
        r = await api_env.client.post(
            "/v1/readings",
            content=orjson.dumps([reading]),
            headers={**auth(api_env.tokens.role("ingest")), "content-type": content_type},
        )
        assert r.status_code == (202 if content_type.startswith("application") else 415)


# --- the same label twice ---------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_the_same_label_again_keeps_the_first_and_another_label_replaces_it(
    api_env: ApiEnv,
) -> None:
    """The same label again (a retry, a second operator) wrote over who labelled, when and
    the comment, as a second acknowledgement did before the first was kept."""
    episode = api_env.seeded["episode_ids"][2]
    path = f"/v1/anomalies/{episode}/label"
    alice = auth(api_env.tokens.role("operator", sub="alice"))
    bob = auth(api_env.tokens.role("operator", sub="bob"))
    first = await api_env.client.post(
        path, json={"label": "false_positive", "comment": "maintenance"}, headers=alice
    )
    assert first.status_code == 200, first.text
    again = await api_env.client.post(
        path, json={"label": "false_positive", "comment": "me too"}, headers=bob
    )
    assert again.status_code == 200, again.text
    kept = ("label", "label_comment", "labelled_by", "labelled_at")
    assert {k: again.json()[k] for k in kept} == {k: first.json()[k] for k in kept}
    stored = api_env.sql(
        "SELECT label, label_comment, labelled_by FROM anomalies WHERE id = %s", (episode,)
    )
    assert stored == [("false_positive", "maintenance", "alice")]
    relabel = await api_env.client.post(
        path, json={"label": "true_positive", "comment": "a real leak"}, headers=bob
    )
    assert relabel.status_code == 200, relabel.text
    after = relabel.json()
    assert (after["label"], after["label_comment"], after["labelled_by"]) == (
        "true_positive",
        "a real leak",
        "bob",
    )
    assert after["labelled_at"] >= first.json()["labelled_at"]
    records = await consume(api_env, api_env.settings.topic_feedback, 10**6, within_s=3.0)
    events = [orjson.loads(r.value) for r in records]
    published = [(e["label"], e["by"], e["comment"]) for e in events if e["episode_id"] == episode]
    assert published == [
        ("false_positive", "alice", "maintenance"),
        ("true_positive", "bob", "a real leak"),
    ]


# --- no redirect built from the Host header ---------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_a_trailing_slash_is_404_not_a_redirect_to_the_host_a_client_named(
    api_env: ApiEnv,
) -> None:
    """``/v1/anomalies/`` was a 307 to ``http://<the Host header>/v1/anomalies``."""
    viewer = auth(api_env.tokens.role("viewer"))
    for method, path in (
        ("GET", "/v1/anomalies/"),
        ("POST", "/v1/readings/"),
        ("GET", "/healthz/"),
    ):
        r = await api_env.client.request(
            method, path, headers={**viewer, "host": "evil.example"}, content=b"[]"
        )
        assert r.status_code == 404, (path, r.status_code, r.headers.get("location"))
        assert "location" not in r.headers
        assert r.json() == {"detail": "Not Found"}
    r = await api_env.client.get("/v1/anomalies", headers={**viewer, "host": "evil.example"})
    assert r.status_code == 200


# --- a time before the epoch through its offset -----------------------------------------

OUT_OF_RANGE = [
    "1970-01-01T00:00:00+23:59",
    "1970-01-01T04:59:59+05:00",
    "9999-12-31T23:59:59-01:00",
]


def test_the_worker_refuses_a_time_whose_offset_leaves_the_range() -> None:
    """The schema's pattern reads the year in the text; the instant is what is stored."""
    decoder = ReadingDecoder()
    for ts in OUT_OF_RANGE:
        with pytest.raises(ValueError, match="from 1970 to the end of 9999"):
            parse_timestamp(ts)
        verdict = decoder.validate({"entity": "a", "ts": ts, "metrics": {"v": 1.0}}, 0.0)
        assert isinstance(verdict, Rejection), ts
    assert parse_timestamp("1970-01-01T05:00:00+05:00") == 0.0
    assert parse_timestamp("9999-12-31T22:59:59-01:00") == 253_402_300_799.0
    items = [{"entity": "a", "ts": ts, "metrics": {"v": 1.0}} for ts in OUT_OF_RANGE]
    valid, errors, rejected = check_batch(items, now=1_790_000_000.0)
    assert (valid, rejected) == ([], len(OUT_OF_RANGE))
    assert [(e.index, e.pointer) for e in errors] == [(i, "/ts") for i in range(len(items))]


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_the_api_answers_a_reading_before_the_epoch_422(api_env: ApiEnv) -> None:
    """``1970-01-01T00:00:00+23:59`` was 202, and stored as an observation of 1969."""
    for ts in OUT_OF_RANGE:
        r = await api_env.client.post(
            "/v1/readings",
            json=[{"entity": "pre/epoch", "ts": ts, "metrics": {"t": 1.0}}],
            headers=auth(api_env.tokens.role("ingest")),
        )
        assert r.status_code == 422, (ts, r.text[:200])
        assert [e["pointer"] for e in r.json()["errors"]] == ["/ts"]
