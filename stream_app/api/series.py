"""``GET /v1/series`` and a series' observations, downsampled on the server.

A chart never needs more points than it has pixels: when a range holds more
than ``max_points`` rows the database groups them into ``max_points`` equal
buckets (width = range / max_points, rounded up to whole seconds) and returns
per-bucket mean, min, max, band and peak score, so a spike survives the
downsampling through ``max_value`` and ``max_score``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from psycopg import sql
from pydantic import BaseModel, Field

from stream_app.api.params import (
    decode_series_cursor,
    encode_series_cursor,
    like_prefix,
    time_range,
)
from stream_app.api.security import authorize
from stream_app.api.state import ApiState, api_state, require_pool

router = APIRouter(tags=["series"], dependencies=[Depends(authorize)])


class Series(BaseModel):
    entity: str
    metric: str
    first_ts: datetime
    last_ts: datetime


class SeriesList(BaseModel):
    items: list[Series]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class Point(BaseModel):
    ts: datetime
    value: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    score: float | None
    is_anomaly: bool
    n: int
    min_value: float | None
    max_value: float | None


class Observations(BaseModel):
    entity: str
    metric: str
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    downsampled: bool
    bucket_seconds: int | None
    points: list[Point]


_SERIES_SQL = sql.SQL(
    "SELECT entity, metric, first_ts, last_ts FROM series"
    " WHERE entity LIKE %(prefix)s ESCAPE '\\' AND (entity, metric) > (%(entity)s, %(metric)s)"
    " ORDER BY entity, metric LIMIT %(limit)s"
)
_RANGE = sql.SQL("entity = %(entity)s AND metric = %(metric)s AND ts >= %(from)s AND ts < %(to)s")
_COUNT_SQL = sql.SQL(
    "SELECT count(*) FROM (SELECT 1 FROM observations WHERE {range} LIMIT %(cap)s) s"
).format(range=_RANGE)
_RAW_SQL = sql.SQL(
    "SELECT ts, value, expected, lower, upper, score, is_anomaly, 1, value, value"
    " FROM observations WHERE {range} ORDER BY ts"
).format(range=_RANGE)
_BUCKET_SQL = sql.SQL(
    "SELECT to_timestamp(%(origin)s"
    " + floor((extract(epoch FROM ts) - %(origin)s) / %(width)s) * %(width)s) AS bucket,"
    " avg(value), avg(expected), min(lower), max(upper), max(score), bool_or(is_anomaly),"
    " count(*), min(value), max(value)"
    " FROM observations WHERE {range} GROUP BY 1 ORDER BY 1"
).format(range=_RANGE)
_POINT_FIELDS = (
    "ts",
    "value",
    "expected",
    "lower",
    "upper",
    "score",
    "is_anomaly",
    "n",
    "min_value",
    "max_value",
)


@router.get("/v1/series", response_model=SeriesList)
async def list_series(
    entity_prefix: str = Query("", max_length=200, description="Literal prefix of the entity."),
    limit: int = Query(1000, ge=1, le=10_000),
    cursor: str | None = Query(None, max_length=500),
    state: ApiState = Depends(api_state),
) -> SeriesList:
    """Known series by entity and metric, optionally those whose entity starts with
    ``entity_prefix``; follow ``next_cursor`` for the next page."""
    # "" sorts before every entity: the first page starts at the beginning
    entity, metric = decode_series_cursor(cursor) if cursor else ("", "")
    params = {"prefix": like_prefix(entity_prefix), "entity": entity, "metric": metric}
    async with require_pool(state).connection() as conn:
        cur = await conn.execute(_SERIES_SQL, {**params, "limit": limit + 1})
        rows = await cur.fetchall()
    items = [Series(entity=r[0], metric=r[1], first_ts=r[2], last_ts=r[3]) for r in rows]
    more = len(items) > limit
    items = items[:limit]
    last = items[-1] if more else None
    return SeriesList(
        items=items,
        next_cursor=encode_series_cursor(last.entity, last.metric) if last else None,
    )


@router.get(
    "/v1/series/{entity:path}/{metric}/observations",
    response_model=Observations,
    response_model_by_alias=True,
)
async def series_observations(
    entity: str = Path(..., min_length=1, max_length=200, description="May contain slashes."),
    metric: str = Path(..., min_length=1, max_length=64),
    start: datetime | None = Query(None, alias="from", description="Default: to - 24 h."),
    end: datetime | None = Query(None, alias="to", description="Default: now."),
    max_points: int = Query(1000, ge=10, le=10_000),
    state: ApiState = Depends(api_state),
) -> dict[str, Any]:
    """Scored points of one series in ``[from, to)``; bucketed when there are more
    than ``max_points``."""
    frm, to = time_range(start, end, timedelta(hours=24))
    params: dict[str, Any] = {"entity": entity, "metric": metric, "from": frm, "to": to}
    async with require_pool(state).connection() as conn:
        cur = await conn.execute(_COUNT_SQL, {**params, "cap": max_points + 1})
        row = await cur.fetchone()
        many = row is not None and row[0] > max_points
        width: int | None = None
        if many:
            width = max(1, math.ceil((to - frm).total_seconds() / max_points))
            # Buckets start at ``from``, so there are at most max_points of them.
            bucket_params = {**params, "width": width, "origin": frm.timestamp()}
            cur = await conn.execute(_BUCKET_SQL, bucket_params)
        else:
            cur = await conn.execute(_RAW_SQL, params)
        rows = await cur.fetchall()
    return {
        "entity": entity,
        "metric": metric,
        "from_": frm,
        "to": to,
        "downsampled": many,
        "bucket_seconds": width,
        "points": [dict(zip(_POINT_FIELDS, r, strict=True)) for r in rows],
    }
