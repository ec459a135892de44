"""Query-parameter helpers shared by the read endpoints.

Everything a client sends ends up as a bound SQL parameter; these helpers only
normalise values (UTC datetimes, LIKE prefixes, opaque cursors) and turn
impossible ones into 422 instead of a database error.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta

import orjson
from fastapi import HTTPException

_PG_MIN = datetime(1, 1, 2, tzinfo=UTC)
_PG_MAX = datetime(9999, 12, 30, tzinfo=UTC)


def utc(value: datetime | None, name: str) -> datetime | None:
    """Aware UTC datetime (naive = UTC), or 422 when it cannot be represented."""
    if value is None:
        return None
    try:
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        result = aware.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise HTTPException(status_code=422, detail=f"{name}: out of range") from exc
    if not _PG_MIN <= result <= _PG_MAX:
        raise HTTPException(status_code=422, detail=f"{name}: out of range")
    return result


def time_range(
    start: datetime | None, end: datetime | None, default_span: timedelta
) -> tuple[datetime, datetime]:
    """``[from, to)`` with defaults: ``to`` = now, ``from`` = ``to - default_span``."""
    to = utc(end, "to") or datetime.now(UTC)
    try:
        frm = utc(start, "from") or max(to - default_span, _PG_MIN)
    except OverflowError:
        frm = _PG_MIN
    if frm >= to:
        raise HTTPException(status_code=422, detail="from must be before to")
    return frm, to


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching strings that start with ``prefix`` literally (ESCAPE '\\')."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _pack(key: list[str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def _unpack(cursor: str, size: int) -> list[str]:
    """The strings a cursor holds; 422 for anything :func:`_pack` did not produce."""
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (
            isinstance(key, list) and len(key) == size and all(isinstance(k, str) for k in key)
        ):
            raise ValueError("bad cursor")
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise HTTPException(status_code=422, detail="invalid cursor") from exc
    return key


def encode_cursor(started_at: datetime, episode_id: str) -> str:
    """Opaque keyset cursor: the sort key of the last row of a page."""
    return _pack([started_at.astimezone(UTC).isoformat(), episode_id])


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_cursor`; 422 for anything it did not produce."""
    started, episode_id = _unpack(cursor, 2)
    try:
        when = datetime.fromisoformat(started)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail="invalid cursor") from exc
    if when.tzinfo is None:
        raise HTTPException(status_code=422, detail="invalid cursor")
    return when, episode_id


def encode_series_cursor(entity: str, metric: str) -> str:
    """Opaque keyset cursor of ``/v1/series``: the last series of a page.

    >>> decode_series_cursor(encode_series_cursor("plant-3/pump-7", "temperature"))
    ('plant-3/pump-7', 'temperature')
    """
    return _pack([entity, metric])


def decode_series_cursor(cursor: str) -> tuple[str, str]:
    """Inverse of :func:`encode_series_cursor`; 422 for anything it did not produce."""
    entity, metric = _unpack(cursor, 2)
    return entity, metric
