"""Token verification, roles and the dev-token CLI, without the stack.

The JWKS is served by a real HTTP server on loopback (a thread), so caching and
refresh-on-unknown-kid are exercised over the wire, not mocked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from typer.testing import CliRunner

from stream_app.api.auth import AuthError, RemoteJwks, StaticJwks, TokenVerifier
from stream_app.api.devkeys import DevKeys, load_or_create
from stream_app.api.roles import Role, allows, effective_roles, roles_from_claims
from tests.api.conftest import AUDIENCE, BAD_TOKENS, ISSUER, Tokens


class _Jwks:
    document: dict[str, Any] = {"keys": []}
    hits = 0


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, type[_Jwks]]]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            _Jwks.hits += 1
            body = json.dumps(_Jwks.document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Jwks.hits = 0
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks", _Jwks
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _verifier(keys: Any, role_map: dict[str, str] | None = None) -> TokenVerifier:
    return TokenVerifier(
        keys, issuer=ISSUER, audience=AUDIENCE, role_claim="realm_access.roles",
        role_map=role_map or {}, leeway_s=30, max_lifetime_s=86400,
    )  # fmt: skip


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_both_algorithms_and_dotted_role_claim(tokens: Tokens, alg: str) -> None:
    verifier = _verifier(StaticJwks(tokens.keys.public_jwks()))
    principal = await verifier.verify(tokens.role("admin", "ingest", alg=alg, sub="bob"))
    assert principal.sub == "bob" and principal.roles == {Role.ADMIN, Role.INGEST}


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_bad_tokens_are_rejected(tokens: Tokens, kind: str) -> None:
    verifier = _verifier(StaticJwks(tokens.keys.public_jwks()))
    with pytest.raises(AuthError):
        await verifier.verify(tokens.bad(kind))


@pytest.mark.parametrize("sub", ["olga\x00admin", "olga\ud800"])
async def test_a_subject_that_is_not_storable_text_is_rejected(tokens: Tokens, sub: str) -> None:
    """The subject is recorded as who acked or labelled: one with a lone surrogate made
    every ack and label of its bearer a 500 (psycopg cannot encode it), one with a NUL
    a 422 from PostgreSQL; a 401 says which token is at fault."""
    verifier = _verifier(StaticJwks(tokens.keys.public_jwks()))
    with pytest.raises(AuthError, match="subject"):
        await verifier.verify(tokens.role("operator", sub=sub))


async def test_clock_skew_is_tolerated_within_leeway(tokens: Tokens) -> None:
    import time

    verifier = _verifier(StaticJwks(tokens.keys.public_jwks()))
    almost = tokens.role("viewer", now=time.time() - 60 + 10, ttl_s=60)  # expired 10 s ago
    assert (await verifier.verify(almost)).roles == {Role.VIEWER}


async def test_key_type_must_match_alg(tokens: Tokens) -> None:
    rsa_jwk = next(k for k in tokens.keys.private_jwks if k["alg"] == "RS256")
    ec_key = jwt.PyJWK(next(k for k in tokens.keys.private_jwks if k["alg"] == "ES256")).key
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": 4_000_000_000}
    token = jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": rsa_jwk["kid"]})
    with pytest.raises(AuthError, match="does not match"):
        await _verifier(StaticJwks(tokens.keys.public_jwks())).verify(token)


async def test_remote_jwks_is_cached_and_refreshed_on_unknown_kid(
    jwks_server: tuple[str, type[_Jwks]], tokens: Tokens
) -> None:
    url, served = jwks_server
    old, new = DevKeys.generate(["RS256"]), DevKeys.generate(["ES256"])
    served.document = old.public_jwks()
    keys = RemoteJwks(url, min_refresh_s=0.0)
    verifier = _verifier(keys)
    try:

        def mint(k: DevKeys, alg: str) -> str:
            return k.mint(issuer=ISSUER, audience=AUDIENCE, roles=["viewer"], alg=alg,
                          role_claim="realm_access.roles")  # fmt: skip

        await verifier.verify(mint(old, "RS256"))
        await verifier.verify(mint(old, "RS256"))
        assert served.hits == 1
        served.document = new.public_jwks()  # the IdP rotated its key
        await verifier.verify(mint(new, "ES256"))
        assert served.hits == 2
        with pytest.raises(AuthError, match="unknown signing key"):
            await verifier.verify(mint(old, "RS256"))
    finally:
        await keys.aclose()


def test_role_claims_and_hierarchy() -> None:
    claims = {"realm_access": {"roles": ["tsg-ops", "offline_access"]}, "scope": "viewer ingest"}
    assert roles_from_claims(claims, "realm_access.roles", {"tsg-ops": "operator"}) == {
        Role.OPERATOR
    }
    assert roles_from_claims(claims, "scope", {}) == {Role.VIEWER, Role.INGEST}
    ns = {"https://tsguard.dev/roles": ["admin"]}  # Auth0-style namespaced claim with dots
    assert roles_from_claims(ns, "https://tsguard.dev/roles", {}) == {Role.ADMIN}
    assert roles_from_claims({}, "missing.path", {}) == frozenset()
    assert effective_roles([Role.ADMIN]) == {Role.ADMIN, Role.OPERATOR, Role.VIEWER}
    assert not allows([Role.ADMIN], Role.INGEST)
    assert not allows([Role.INGEST], Role.VIEWER)
    assert allows([Role.OPERATOR], Role.VIEWER)


async def test_token_issue_cli_mints_what_the_dev_api_accepts(tmp_path: Path) -> None:
    from stream_app.cli import app

    env = {
        "TSGUARD_STACK_DIR": str(tmp_path),
        "TSGUARD_OAUTH_ISSUER": ISSUER,
        "TSGUARD_OAUTH_AUDIENCE": AUDIENCE,
    }
    runner = CliRunner()
    result = runner.invoke(app, ["token", "issue", "--role", "operator", "--sub", "carol",
                                 "--alg", "ES256", "--ttl", "120"], env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    key_file = tmp_path / "dev-oauth" / "keys.json"
    assert key_file.stat().st_mode & 0o777 == 0o600
    verifier = TokenVerifier(
        StaticJwks(load_or_create(key_file).public_jwks()), issuer=ISSUER, audience=AUDIENCE,
        role_claim="roles", role_map={}, leeway_s=0, max_lifetime_s=86400,
    )  # fmt: skip
    principal = await verifier.verify(result.output.strip())
    assert principal.sub == "carol" and principal.roles == {Role.OPERATOR}
    bad = runner.invoke(app, ["token", "issue", "--role", "root"], env=env)
    assert bad.exit_code != 0
    # a NaN lifetime was a traceback, one of 1e20 s a token for ever, and an empty
    # subject a token the API refuses
    for args, says in (
        (["--ttl", "nan"], "--ttl must be more than 0"),
        (["--ttl", "1e20"], "--ttl must be more than 0"),
        (["--ttl", "0"], "--ttl must be more than 0"),
        (["--sub", " "], "--sub must not be empty"),
    ):
        bad = runner.invoke(app, ["token", "issue", "--role", "viewer", *args], env=env)
        assert bad.exit_code == 2, bad.output
        assert says in " ".join(bad.output.split())
