"""The local development signing keys behind ``tsguard token issue``.

A demo and the tests need tokens without a real identity provider. On first
use one RSA (RS256) and one EC P-256 (ES256) key are generated into a JSON
file (a private JWK set, mode 0600) under the stack directory; the API in dev
mode serves the public half as a JWKS, so the API validates dev tokens exactly
as it would validate a real IdP's tokens. Never use these keys in production.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from stream_app.settings import Settings

ALGORITHMS = ("RS256", "ES256")
_REQUIRED_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}


def dev_key_path(settings: Settings) -> Path:
    """Where the dev key set lives: the configured file or ``<stack_dir>/dev-oauth/keys.json``."""
    if settings.oauth_dev_key_file is not None:
        return settings.oauth_dev_key_file.expanduser()
    return settings.stack_dir.expanduser() / "dev-oauth" / "keys.json"


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint, used as the ``kid`` so it is stable across restarts."""
    members = {k: jwk[k] for k in _REQUIRED_MEMBERS[str(jwk["kty"])]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def _private_jwk(alg: str) -> dict[str, Any]:
    if alg == "RS256":
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(rsa_key))
    else:
        ec_key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(ECAlgorithm.to_jwk(ec_key))
    jwk.update(alg=alg, use="sig", kid=thumbprint(jwk))
    return jwk


@dataclass(frozen=True)
class DevKeys:
    """A private JWK set with one signing key per supported algorithm."""

    private_jwks: tuple[dict[str, Any], ...]

    @classmethod
    def generate(cls, algorithms: Iterable[str] = ALGORITHMS) -> DevKeys:
        """Fresh keys (tests use this for a 'forged' key the API does not trust)."""
        return cls(tuple(_private_jwk(alg) for alg in algorithms))

    def public_jwks(self) -> dict[str, Any]:
        """The JWKS document: only the public members of each key."""
        keys = []
        for jwk in self.private_jwks:
            public = {k: jwk[k] for k in _REQUIRED_MEMBERS[str(jwk["kty"])]}
            public.update(alg=jwk["alg"], use="sig", kid=jwk["kid"])
            keys.append(public)
        return {"keys": keys}

    def _key_for(self, alg: str) -> dict[str, Any]:
        for jwk in self.private_jwks:
            if jwk["alg"] == alg:
                return jwk
        raise ValueError(
            f"no dev key for algorithm {alg!r}; have {[k['alg'] for k in self.private_jwks]}"
        )

    def mint(
        self,
        *,
        issuer: str,
        audience: str,
        roles: Iterable[str],
        sub: str = "dev-user",
        ttl_s: float = 3600,
        alg: str = "RS256",
        role_claim: str = "roles",
        now: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed access token; ``role_claim`` may be dotted (``realm_access.roles``)."""
        issued = time.time() if now is None else now
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": sub,
            "iat": int(issued),
            "nbf": int(issued),
            "exp": int(issued + ttl_s),
            "jti": uuid.uuid4().hex,
        }
        node = claims
        *parents, leaf = role_claim.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = list(roles)
        if extra:
            claims.update(extra)
        jwk = self._key_for(alg)
        signing_key = jwt.PyJWK(jwk, algorithm=alg).key
        return jwt.encode(claims, signing_key, algorithm=alg, headers={"kid": jwk["kid"]})


def load_or_create(path: Path) -> DevKeys:
    """Read the key set, generating it first when missing (race-safe across processes)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = DevKeys.generate()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"keys": list(keys.private_jwks)}, handle)
        try:
            os.link(tmp, path)  # fails if another process won the race: use its keys
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    document = json.loads(path.read_text("utf-8"))
    return DevKeys(tuple(document["keys"]))
