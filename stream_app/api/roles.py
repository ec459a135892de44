"""Roles, their hierarchy, and the one table that says who may call what.

Every route of the app appears in :data:`ROUTE_ROLES`; ``create_app`` refuses
to build an app with a route missing from the table, so an endpoint can never
be exposed by accident without a declared role. Tests iterate over the same
table, which keeps the access matrix and the code from drifting apart.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any


class Role(enum.StrEnum):
    """What a token may do. ``ingest`` is a machine role outside the hierarchy."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    INGEST = "ingest"
    ADMIN = "admin"


# admin ⊇ operator ⊇ viewer; ingest is granted only by itself, so a leaked
# device token can write readings but read nothing, and admins do not ingest.
_IMPLIES: dict[Role, frozenset[Role]] = {
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.VIEWER}),
    Role.ADMIN: frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER}),
    Role.INGEST: frozenset({Role.INGEST}),
}

PUBLIC = None
"""Marker in :data:`ROUTE_ROLES` for endpoints that need no token."""

ROUTE_ROLES: dict[tuple[str, str], Role | None] = {
    ("POST", "/v1/readings"): Role.INGEST,
    ("GET", "/v1/series"): Role.VIEWER,
    ("GET", "/v1/series/{entity}/{metric}/observations"): Role.VIEWER,
    ("GET", "/v1/anomalies"): Role.VIEWER,
    ("GET", "/v1/anomalies/export"): Role.VIEWER,
    ("GET", "/v1/anomalies/{episode_id}"): Role.VIEWER,
    ("POST", "/v1/anomalies/{episode_id}/ack"): Role.OPERATOR,
    ("POST", "/v1/anomalies/{episode_id}/label"): Role.OPERATOR,
    ("GET", "/v1/detectors"): Role.VIEWER,
    ("PUT", "/v1/detectors/{name}"): Role.ADMIN,
    ("DELETE", "/v1/detectors/{name}"): Role.ADMIN,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/dev/.well-known/jwks.json"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
}


def normalise_template(path: str) -> str:
    """Strip Starlette converters (``{entity:path}`` -> ``{entity}``) for table look-ups."""
    out: list[str] = []
    for part in path.split("{"):
        if "}" in part and ":" in part.split("}", 1)[0]:
            name, rest = part.split("}", 1)
            part = name.split(":", 1)[0] + "}" + rest
        out.append(part)
    return "{".join(out)


def effective_roles(granted: Iterable[Role]) -> frozenset[Role]:
    """Expand granted roles through the hierarchy."""
    result: set[Role] = set()
    for role in granted:
        result |= _IMPLIES[role]
    return frozenset(result)


def allows(granted: Iterable[Role], required: Role) -> bool:
    """True when ``granted`` (before expansion) satisfies ``required``."""
    return required in effective_roles(granted)


def _claim_at(claims: Mapping[str, Any], dotted: str) -> Any:
    """``realm_access.roles`` -> ``claims["realm_access"]["roles"]``; a literal key wins.

    Some IdPs use URLs with dots as claim names (Auth0 namespaced claims), so a
    key that exists verbatim is taken before the path is split.
    """
    if dotted in claims:
        return claims[dotted]
    node: Any = claims
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def roles_from_claims(
    claims: Mapping[str, Any], claim: str, role_map: Mapping[str, str]
) -> frozenset[Role]:
    """The tsguard roles a token grants; unknown names are ignored, never an error.

    The claim may hold a list of names or a space-separated string (the OAuth
    ``scope`` style). ``role_map`` renames IdP roles (``tsguard-admin`` ->
    ``admin``); names absent from the map are used as they are.
    """
    raw = _claim_at(claims, claim)
    if isinstance(raw, str):
        names: list[str] = raw.split()
    elif isinstance(raw, list | tuple):
        names = [item for item in raw if isinstance(item, str)]
    else:
        names = []
    found: set[Role] = set()
    for name in names:
        mapped = role_map.get(name, name)
        try:
            found.add(Role(mapped))
        except ValueError:
            continue
    return frozenset(found)
