"""The FastAPI dependency that enforces :data:`~stream_app.api.roles.ROUTE_ROLES`.

Routers of protected endpoints carry ``Depends(authorize)``; the role each
request needs is looked up from the matched route template, so the table in
``roles.py`` is the only place a role is declared. Errors follow RFC 6750:
401 with ``WWW-Authenticate: Bearer`` for a missing or bad token, 403 with
``error="insufficient_scope"`` for a valid token without the role.
"""

from __future__ import annotations

import re

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stream_app.api.auth import AuthError, KeysUnavailable, Principal, TokenVerifier
from stream_app.api.roles import ROUTE_ROLES, allows, normalise_template

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An OAuth2 access token (JWT, RS256 or ES256) from the configured issuer.",
)

_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def _challenge(error: str | None = None, description: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="tsguard"'
    if error:
        value += f', error="{error}"'
    if description:
        value += f', error_description="{_UNSAFE.sub("", description)[:200]}"'
    return {"WWW-Authenticate": value}


def required_role_for(request: Request) -> tuple[str, str]:
    """The ``(method, template)`` key of the matched route in ``ROUTE_ROLES``."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        raise HTTPException(status_code=500, detail="route without a template")
    return request.method, normalise_template(path)


async def authorize(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
) -> Principal:
    """Authenticate the bearer token and check the role the route declares."""
    key = required_role_for(request)
    if key not in ROUTE_ROLES:  # create_app checks this at start-up; fail closed anyway
        raise HTTPException(status_code=403, detail="endpoint has no declared role")
    required = ROUTE_ROLES[key]
    if credentials is None or not credentials.credentials:
        raise HTTPException(status_code=401, detail="bearer token required", headers=_challenge())
    verifier: TokenVerifier = request.app.state.verifier
    try:
        principal = await verifier.verify(credentials.credentials)
    except AuthError as exc:
        raise HTTPException(
            status_code=401,
            detail=str(exc),
            headers=_challenge("invalid_token", str(exc)),
        ) from exc
    except KeysUnavailable as exc:
        raise HTTPException(status_code=503, detail="token keys unavailable") from exc
    if required is not None and not allows(principal.roles, required):
        raise HTTPException(
            status_code=403,
            detail=f"role {required.value!r} required",
            headers=_challenge("insufficient_scope", f"requires role {required.value}"),
        )
    return principal
