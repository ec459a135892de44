"""OAuth2 bearer tokens: JWTs validated locally against the issuer's JWKS.

Validation never calls the identity provider per request: keys come from a
cached JWKS, refreshed when it is older than ``ttl_s`` or when a token names
an unknown ``kid`` (key rotation), at most once per ``min_refresh_s`` so a
stream of forged tokens cannot turn the API into a JWKS hammer. Only RS256
and ES256 are accepted, and the token's ``alg`` must match the key's, which
closes the algorithm-confusion holes (``none``, HS256 with a public key).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import jwt

from stream_app.api.roles import Role, roles_from_claims
from stream_app.settings import Settings
from stream_app.wire.content import content_problems

ALLOWED_ALGORITHMS = frozenset({"RS256", "ES256"})
# OpenID Connect's bound on ``sub``; the subject is stored as who acknowledged or labelled
# an episode, and a token with a 100,000-character one wrote it into every row it touched
MAX_SUBJECT_CHARS = 255
_TIMES = ("exp", "iat", "nbf")


class AuthError(Exception):
    """The token is missing or invalid: HTTP 401."""


class KeysUnavailable(Exception):
    """The JWKS could not be fetched and no cached key fits: HTTP 503."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who called: the token's subject and the tsguard roles it grants."""

    sub: str
    roles: frozenset[Role]
    claims: Mapping[str, Any]


class KeySource(Protocol):
    async def key(self, kid: str | None) -> jwt.PyJWK | None: ...

    async def aclose(self) -> None: ...


def _parse_jwks(document: Mapping[str, Any]) -> dict[str | None, jwt.PyJWK]:
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in document.get("keys", []):
        if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
            continue
        try:
            parsed = jwt.PyJWK(dict(entry))
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue  # a key type we do not support is not an error for the others
        if parsed.algorithm_name in ALLOWED_ALGORITHMS:
            keys[entry.get("kid")] = parsed
    return keys


class StaticJwks:
    """A fixed key set (dev mode: the local dev keys)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._keys = _parse_jwks(document)

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        return self._keys.get(kid)

    async def aclose(self) -> None:
        return None


class RemoteJwks:
    """The issuer's JWKS over HTTP(S), cached with refresh on expiry or unknown ``kid``."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = 300.0,
        min_refresh_s: float = 10.0,
        timeout_s: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = url
        self._ttl = ttl_s
        self._min_refresh = min_refresh_s
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._owns_client = client is None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        now = time.monotonic()
        stale = now - self._fetched_at > self._ttl
        if stale or (kid not in self._keys and now - self._fetched_at >= self._min_refresh):
            await self._refresh(now)
        return self._keys.get(kid)

    async def _refresh(self, started: float) -> None:
        async with self._lock:
            if self._fetched_at >= started:  # another request refreshed meanwhile
                return
            try:
                response = await self._client.get(self._url)
                response.raise_for_status()
                keys = _parse_jwks(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                if not self._keys:
                    raise KeysUnavailable(f"JWKS {self._url}: {exc}") from exc
                # Keep serving the cached keys while the IdP is unreachable and
                # try again after min_refresh_s, not on every request.
                self._fetched_at = time.monotonic() - self._ttl + self._min_refresh
                return
            self._keys = keys
            self._fetched_at = time.monotonic()
            self.fetches += 1

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class TokenVerifier:
    """Checks signature, ``iss``, ``aud``, ``exp``, ``nbf``, ``iat`` and ``sub``; maps roles.

    A token may live at most ``max_lifetime_s`` (``exp - iat``, and ``exp`` at most that
    far ahead of now, give or take the leeway); its times must be numbers.
    """

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        role_claim: str,
        role_map: Mapping[str, str],
        leeway_s: float,
        max_lifetime_s: float,
    ) -> None:
        self.keys = keys
        self._issuer = issuer
        self._audience = audience
        self._role_claim = role_claim
        self._role_map = dict(role_map)
        self._leeway = leeway_s
        self._max_lifetime = max_lifetime_s

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthError("malformed token") from exc
        alg = header.get("alg")
        # a list or an object is JSON too, and unhashable: ``in`` a set raised TypeError (500)
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise AuthError(f"algorithm {repr(alg)[:40]} not accepted")
        kid = header.get("kid")
        key = await self.keys.key(kid if isinstance(kid, str) else None)
        if key is None:
            raise AuthError("unknown signing key")
        if key.algorithm_name != alg:
            raise AuthError("token algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthError("token not yet valid") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        self._check_lifetime(claims, time.time())
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthError("token has no subject")
        if len(sub) > MAX_SUBJECT_CHARS:
            raise AuthError(f"token subject is longer than {MAX_SUBJECT_CHARS} characters")
        if content_problems(sub):  # a NUL or a lone surrogate: not storable as who acked
            raise AuthError("token subject is not valid text")
        roles = roles_from_claims(claims, self._role_claim, self._role_map)
        return Principal(sub=sub, roles=roles, claims=claims)

    def _check_lifetime(self, claims: Mapping[str, Any], now: float) -> None:
        """PyJWT reads a time with ``int()``: ``"9999999999"`` and ``1e300`` passed as an
        ``exp``, and with them a token that never expires."""
        for name in _TIMES:
            value = claims.get(name)
            if name in claims and (
                isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value)
            ):
                raise AuthError(f"token claim {name!r} is not a number of seconds")
        exp = claims["exp"]
        iat = claims.get("iat")
        # an issuer whose clock is ahead by up to the leeway mints tokens that far ahead
        too_long = exp - now > self._max_lifetime + self._leeway or (
            iat is not None and exp - iat > self._max_lifetime
        )
        if too_long:
            raise AuthError(f"token lives longer than {self._max_lifetime:.0f} s")


def _finite(value: float) -> bool:
    """A number a float can hold, finite: JSON's integers have no bound, and
    ``math.isfinite(10**400)`` raised OverflowError (a 500, not a 401)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def build_verifier(settings: Settings) -> TokenVerifier:
    """The verifier the settings ask for: a remote JWKS, or the dev keys in dev mode."""
    keys: KeySource
    if settings.oauth_jwks_url:
        keys = RemoteJwks(settings.oauth_jwks_url)
    elif settings.oauth_dev_mode:
        from stream_app.api.devkeys import dev_key_path, load_or_create

        keys = StaticJwks(load_or_create(dev_key_path(settings)).public_jwks())
    else:
        raise ValueError(
            "no token keys configured: set TSGUARD_OAUTH_JWKS_URL (your identity provider's "
            "JWKS) or TSGUARD_OAUTH_DEV_MODE=true for the local dev keys"
        )
    return TokenVerifier(
        keys,
        issuer=settings.oauth_issuer,
        audience=settings.oauth_audience,
        role_claim=settings.oauth_role_claim,
        role_map=settings.oauth_role_map,
        leeway_s=settings.oauth_clock_skew_s,
        max_lifetime_s=settings.oauth_max_token_lifetime_s,
    )
