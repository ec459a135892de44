"""Anomaly episodes: list (keyset pages), one, streamed export, acknowledge, label.

A label is feedback for the detectors: besides the row update it is published
to ``settings.topic_feedback`` (key = entity) inside the database transaction,
so the row is committed only once the broker has the event. Workers consume it;
a ``false_positive`` widens that series' tolerance (see the README).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from stream_app.api import anomalies_sql as q
from stream_app.api.auth import Principal
from stream_app.api.body import body_doc, json_body
from stream_app.api.params import decode_cursor, encode_cursor, utc
from stream_app.api.security import authorize
from stream_app.api.state import ApiState, api_state, require_pool, require_producer
from stream_app.storage.errors import closed_if_read_only

router = APIRouter(tags=["anomalies"], dependencies=[Depends(authorize)])
EpisodeId = Path(..., min_length=1, max_length=64)


class Anomaly(BaseModel):
    id: str
    entity: str
    metric: str
    kind: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    last_ts: datetime
    value: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    score: float
    peak_score: float
    severity: str
    direction: str
    detector: str
    explanation: str
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_comment: str | None
    label: str | None
    label_comment: str | None
    labelled_by: str | None
    labelled_at: datetime | None


class AnomalyPage(BaseModel):
    items: list[Anomaly]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class AckBody(BaseModel):
    comment: str | None = Field(None, max_length=2000)


class LabelBody(BaseModel):
    label: q.Label
    comment: str | None = Field(None, max_length=2000)


def anomaly_filter(
    start: datetime | None = Query(None, alias="from", description="Episodes active at or after."),
    end: datetime | None = Query(None, alias="to", description="Episodes started before."),
    entity_prefix: str | None = Query(None, max_length=200),
    metric: str | None = Query(None, max_length=64),
    severity: list[q.Severity] = Query(default_factory=list, description="Repeat for several."),
    status: q.Status | None = Query(None),
    label: Literal["true_positive", "false_positive", "none"] | None = Query(None),
) -> q.AnomalyFilter:
    frm, to = utc(start, "from"), utc(end, "to")
    if frm is not None and to is not None and frm > to:
        # as the observations route says: a reversed range is a mistake (it answered 200
        # and an empty page); from == to is every episode active at that moment
        raise HTTPException(status_code=422, detail="from must not be after to")
    return q.AnomalyFilter(
        start=frm,
        end=to,
        entity_prefix=entity_prefix,
        metric=metric,
        severity=tuple(severity),
        status=status,
        label=label,
    )


@router.get("/v1/anomalies", response_model=AnomalyPage)
async def list_anomalies(
    flt: q.AnomalyFilter = Depends(anomaly_filter),
    cursor: str | None = Query(None, max_length=500),
    limit: int = Query(100, ge=1, le=1000),
    state: ApiState = Depends(api_state),
) -> dict[str, Any]:
    """Newest first; follow ``next_cursor`` for older episodes."""
    after = decode_cursor(cursor) if cursor else None
    query, params = q.page_query(flt, after, limit)
    async with require_pool(state).connection() as conn:
        rows = await (await conn.execute(query, params)).fetchall()
    items = [q.as_dict(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last["started_at"], last["id"])
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/v1/anomalies/export",
    responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
    response_class=StreamingResponse,
)
async def export_anomalies(
    flt: q.AnomalyFilter = Depends(anomaly_filter),
    fmt: Literal["csv", "ndjson"] = Query("ndjson", alias="format"),
    state: ApiState = Depends(api_state),
) -> StreamingResponse:
    """Every matching episode, streamed from a server-side cursor (no page size).

    On a connection of the exports' own, at most ``api_max_exports`` at once: one more
    is 503 with ``Retry-After``, and the other routes keep their pool."""
    require_pool(state)
    pool = state.export_pool
    if pool is None or state.exports_running >= state.settings.api_max_exports:
        raise HTTPException(
            status_code=503,
            detail=f"{state.exports_running} exports are running, the most at once:"
            " try again later",
            headers={"Retry-After": "30"},
        )
    query, params = q.export_query(flt)
    release = _Slot(state)

    async def rows() -> AsyncIterator[tuple[Any, ...]]:
        async with (
            pool.connection() as conn,
            conn.transaction(),
            conn.cursor(name="tsguard_export") as cur,
        ):
            cur.itersize = 1000
            await cur.execute(query, params)
            async for row in cur:
                yield row

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        media, body = "text/csv; charset=utf-8", _csv_lines(rows())
    else:
        media, body = "application/x-ndjson", _ndjson_lines(rows())
    headers = {"Content-Disposition": f'attachment; filename="anomalies-{stamp}.{fmt}"'}
    return _ExportResponse(release, body, media_type=media, headers=headers)


class _Slot:
    """An export's place among those running: taken when made, given back once
    whatever happens."""

    def __init__(self, state: ApiState) -> None:
        state.exports_running += 1
        self._state: ApiState | None = state

    def __call__(self) -> None:
        if self._state is not None:
            self._state.exports_running -= 1
            self._state = None


# Longest wait for a client to take the next chunk of an export. One that stops reading
# (a stalled or hostile client, a paused download) held its place and its connection, in
# an open transaction, for as long as it kept the socket open: two of them refused every
# other export (503) for good.
EXPORT_STALL_S = 60.0
# Longest wait of a label for a place among those waiting for Kafka (ApiState.label_slots)
LABEL_WAIT_S = 5.0


class _ExportResponse(StreamingResponse):
    """A streamed export that gives its slot back when it ends, also when the client
    leaves before the first row (the body is then never started, so a ``finally`` in
    it would never run), and ends when the client takes no chunk for ``EXPORT_STALL_S``."""

    def __init__(self, release: _Slot, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def bounded(message: Any) -> None:
            try:
                async with asyncio.timeout(EXPORT_STALL_S):
                    await send(message)
            except TimeoutError:
                # as a client gone: the response ends, the connection is closed
                raise OSError(
                    f"export: the client read nothing for {EXPORT_STALL_S:.0f} s"
                ) from None

        try:
            await super().__call__(scope, receive, bounded)
        finally:
            try:
                # the rows' cursor, transaction and connection back now: left to the
                # garbage collector, a place given back could find the exports' pool
                # still empty (the next export: 200, then a PoolTimeout mid-stream)
                close = getattr(self.body_iterator, "aclose", None)
                if close is not None:
                    await close()
            finally:
                self._release()


# an export's body goes out in chunks of about this size: one chunk a row (NDJSON did so)
# is one ASGI send a row, which made an NDJSON export three times as slow as the CSV one
# and every other request wait behind it
_CHUNK_BYTES = 64_000


async def _ndjson_lines(rows: AsyncIterator[tuple[Any, ...]]) -> AsyncIterator[bytes]:
    buffer: list[bytes] = []
    size = 0
    async with contextlib.aclosing(rows):  # type: ignore[type-var]
        async for row in rows:
            line = orjson.dumps(q.as_dict(row)) + b"\n"
            buffer.append(line)
            size += len(line)
            if size > _CHUNK_BYTES:
                yield b"".join(buffer)
                buffer.clear()
                size = 0
    if buffer:
        yield b"".join(buffer)


# a text cell a spreadsheet would run as a formula (CSV injection): an operator's comment
# "=HYPERLINK(...)" must reach whoever opens the export as text
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` as an exported CSV cell: a time in ISO 8601, nothing for NULL, and text
    that a spreadsheet would read as a formula behind a quote (numbers stay numbers).

    >>> [csv_cell(v) for v in (None, 1.5, -2, "seen", "=1+1", "@SUM(A1)", "-x")]
    ['', 1.5, -2, 'seen', "'=1+1", "'@SUM(A1)", "'-x"]
    """
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


async def _csv_lines(rows: AsyncIterator[tuple[Any, ...]]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    # RFC 4180's CRLF: the writer quotes a field holding any character of its line
    # terminator, and with "\n" alone a comment's bare "\r" went out unquoted, which a
    # spreadsheet reads as the end of the row ("x\r=1+1": a new row starting "=1+1")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(q.COLUMNS)
    async with contextlib.aclosing(rows):  # type: ignore[type-var]
        async for row in rows:
            writer.writerow([csv_cell(v) for v in row])
            if buffer.tell() > _CHUNK_BYTES:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode()


@router.get("/v1/anomalies/{episode_id}", response_model=Anomaly, responses={404: {}})
async def get_anomaly(
    episode_id: str = EpisodeId, state: ApiState = Depends(api_state)
) -> dict[str, Any]:
    async with require_pool(state).connection() as conn:
        row = await (await conn.execute(q.one_query(), (episode_id,))).fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="no such anomaly")
    return q.as_dict(row)


@router.post(
    "/v1/anomalies/{episode_id}/ack",
    response_model=Anomaly,
    responses={404: {}},
    openapi_extra=body_doc(AckBody),
)
async def ack_anomaly(
    body: AckBody = Depends(json_body(AckBody)),
    episode_id: str = EpisodeId,
    principal: Principal = Depends(authorize),
    state: ApiState = Depends(api_state),
) -> dict[str, Any]:
    """Record that an operator has seen the episode (shown in the dashboards). The first
    acknowledgement stays: acknowledging again answers the episode as it is."""
    async with require_pool(state).connection() as conn, closed_if_read_only(conn):
        row = await (
            await conn.execute(q.ACK_SQL, (principal.sub, body.comment, episode_id))
        ).fetchone()
        if row is None:  # acknowledged before, or no such episode
            row = await (await conn.execute(q.one_query(), (episode_id,))).fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="no such anomaly")
    return q.as_dict(row)


@router.post(
    "/v1/anomalies/{episode_id}/label",
    response_model=Anomaly,
    responses={404: {}, 503: {"description": "Kafka unavailable; nothing stored."}},
    openapi_extra=body_doc(LabelBody),
)
async def label_anomaly(
    body: LabelBody = Depends(json_body(LabelBody)),
    episode_id: str = EpisodeId,
    principal: Principal = Depends(authorize),
    state: ApiState = Depends(api_state),
) -> dict[str, Any]:
    """Mark the episode a true or false positive; detectors receive it as feedback. The
    same label again answers the episode as it is; another label replaces it (who, when,
    the comment) and is published."""
    producer = require_producer(state)
    pool = require_pool(state)
    try:
        async with asyncio.timeout(LABEL_WAIT_S):
            await state.label_slots.acquire()
    except TimeoutError:
        raise HTTPException(
            status_code=503,
            detail="too many labels waiting for Kafka; try again",
            headers={"Retry-After": "10"},
        ) from None
    try:
        return await _label(body, episode_id, principal, state, producer, pool)
    finally:
        state.label_slots.release()


async def _label(
    body: LabelBody,
    episode_id: str,
    principal: Principal,
    state: ApiState,
    producer: Any,
    pool: Any,
) -> dict[str, Any]:
    async with pool.connection() as conn, closed_if_read_only(conn), conn.transaction():
        cur = await conn.execute(q.LABEL_BEFORE_SQL, (episode_id,))
        before = await cur.fetchone()
        if before is None:
            raise HTTPException(status_code=404, detail="no such anomaly")
        if q.as_dict(before)["label"] == body.label:
            # the same label again (a retry, a double click, another operator): the first
            # stays, as the first acknowledgement does, and no feedback goes out (each
            # doubled the series' margin up to 64x); it wrote over who labelled, when,
            # and the comment, with no trace of the first
            return q.as_dict(before)
        cur = await conn.execute(q.LABEL_SQL, (body.label, body.comment, principal.sub, episode_id))
        row = await cur.fetchone()
        if row is None:
            raise HTTPException(status_code=404, detail="no such anomaly")
        episode = q.as_dict(row)
        event = {
            "episode_id": episode["id"],
            "entity": episode["entity"],
            "metric": episode["metric"],
            "label": body.label,
            "comment": body.comment,
            "by": principal.sub,
            "at": episode["labelled_at"].astimezone(UTC).isoformat(),
        }
        try:
            await producer.send_and_wait(
                state.settings.topic_feedback,
                orjson.dumps(event),
                key=episode["entity"].encode(),
            )
        except KafkaError as exc:  # leaving the block rolls the label back
            raise HTTPException(
                status_code=503, detail="Kafka unavailable; label not stored"
            ) from exc
    return episode
