"""The batching PostgreSQL sink (implements :class:`~stream_app.storage.sink.Sink`).

Contract (after quix-streams' sinks): ``add_*`` buffers, ``flush`` writes the
whole buffer in one transaction and clears it only once the transaction has
committed. When the database is unreachable ``flush`` raises
:class:`SinkBackpressure` and keeps the buffer; ``flush_with_retry`` retries
with capped exponential backoff, so a caller that awaits it stops consuming
(backpressure) instead of dropping data. Every write is idempotent: points on
``(entity, metric, ts)``, episodes on their id, so replays never duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from stream_app.storage.errors import UNAVAILABLE, closed_if_read_only
from stream_app.storage.retention import apply_retention
from stream_app.storage.sink import (
    ObservationRow,
    SinkBackpressure,
    SinkBatch,
    SinkStats,
    SourceMark,
)
from stream_app.storage.tables import EPISODE_COLUMNS, OBSERVATION_COLUMNS, OBSERVATION_TYPES

log = logging.getLogger(__name__)

# what makes a write wait and try again (a server away or read-only, a timeout)
_BACKPRESSURE: tuple[type[BaseException], ...] = (*UNAVAILABLE, TimeoutError)


def to_datetime(value: datetime | float | str | None) -> datetime | None:
    """Epoch seconds, RFC 3339 text or a datetime to an aware UTC datetime."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.fromtimestamp(value, tz=UTC)


_COLUMN_LIST = sql.SQL(", ").join(sql.Identifier(c) for c in OBSERVATION_COLUMNS)
_COPY_STAGE = sql.SQL("COPY _obs_stage ({}) FROM STDIN (FORMAT BINARY)").format(_COLUMN_LIST)
# DO NOTHING also skips a key repeated within the batch (a replayed reading),
# so the staged rows need no de-duplicating sort.
_INSERT_FROM_STAGE = sql.SQL(
    "INSERT INTO observations ({cols}) SELECT {cols}"
    " FROM _obs_stage ON CONFLICT (entity, metric, ts) DO NOTHING"
).format(cols=_COLUMN_LIST)

# An episode row takes an event's values only if the event is at least as
# recent as the row (by event time), so writes that overlap or replay in any
# order end in the same row: the newest values, the highest peak, resolved
# once resolved.
_EPISODE_UPSERT = (
    "INSERT INTO anomalies ("
    + ", ".join(EPISODE_COLUMNS)
    + ")"
    + """
VALUES (%(episode_id)s, %(entity)s, %(metric)s, %(kind)s, %(status)s, %(started_at)s,
        %(ended_at)s, %(ts)s, %(value)s, %(expected)s, %(lower)s, %(upper)s, %(score)s,
        %(peak_score)s, %(severity)s, %(direction)s, %(detector)s, %(explanation)s, now())
ON CONFLICT (id) DO UPDATE SET
    status      = CASE WHEN anomalies.status = 'resolved' THEN 'resolved' ELSE EXCLUDED.status END,
    ended_at    = COALESCE(EXCLUDED.ended_at, anomalies.ended_at),
    last_ts     = GREATEST(anomalies.last_ts, EXCLUDED.last_ts),
    value       = CASE WHEN {newer} THEN EXCLUDED.value ELSE anomalies.value END,
    expected    = CASE WHEN {newer} THEN EXCLUDED.expected ELSE anomalies.expected END,
    lower       = CASE WHEN {newer} THEN EXCLUDED.lower ELSE anomalies.lower END,
    upper       = CASE WHEN {newer} THEN EXCLUDED.upper ELSE anomalies.upper END,
    score       = CASE WHEN {newer} THEN EXCLUDED.score ELSE anomalies.score END,
    peak_score  = GREATEST(anomalies.peak_score, EXCLUDED.peak_score),
    severity    = CASE WHEN {newer} THEN EXCLUDED.severity ELSE anomalies.severity END,
    explanation = CASE WHEN {newer} THEN EXCLUDED.explanation ELSE anomalies.explanation END,
    updated_at  = now()
"""
).replace("{newer}", "EXCLUDED.last_ts >= anomalies.last_ts")

# Episodes stored open whose model was lost (see SinkBatch.orphans): resolved at the
# time given, which is after their last event; those the loaded models know, and every
# episode with an event from that time on, are left to them. A loaded model's own
# episode can start before that time (a silence starts at the series' last point, a
# stuck run at its first, a value episode at the first of its min_points), in this
# batch, in an overlapping one, or again in the replay of what a crash lost: judged by
# its start, it was resolved at once, its alert with it, while the model kept it open.
# The batch's own episodes are left too (a late point's can end before that time).
# Rows are locked in id order, as the upserts lock them (no deadlock between overlapping
# writes). Those an earlier write resolved at that same time are returned again (ended
# after their last event: no model's resolve leaves that), so that their events are sent:
# a worker that died between the commit and the send (a broker away), or a write retried
# after a commit whose answer was lost, found them resolved and sent nothing, and their
# alerts fired for ever. A replay after that reaches the same first reading, so the same
# time; anomalies_lost_idx holds those rows alone.
_RESOLVE_ORPHANS = """
WITH o AS (
    SELECT * FROM unnest(%(entities)s::text[], %(cutoffs)s::timestamptz[]) AS o(entity, cutoff)
), lost AS (
    SELECT a.id, o.cutoff
    FROM anomalies AS a
    JOIN o ON a.entity = o.entity
    WHERE a.status = 'open' AND a.last_ts < o.cutoff AND a.id <> ALL(%(known)s::text[])
    ORDER BY a.id
    FOR UPDATE OF a
), resolved AS (
    UPDATE anomalies AS a
    SET status = 'resolved', ended_at = lost.cutoff, updated_at = now()
    FROM lost
    WHERE a.id = lost.id
    RETURNING a.*
)
SELECT * FROM resolved
UNION ALL
SELECT a.*
FROM anomalies AS a
JOIN o ON a.entity = o.entity
WHERE a.status = 'resolved' AND a.ended_at > a.last_ts AND a.ended_at = o.cutoff
    AND a.id <> ALL(%(known)s::text[])
"""

# the status of a point whose metric is one series too many for its entity
# (stream_app.core.entity_processor.TOO_MANY_SERIES; not imported: the sink stays apart
# from the detectors)
_TOO_MANY_SERIES = "too_many_series"

# One statement for all series spans (an executemany of one upsert per series
# cost more than the COPY itself); ORDER BY keeps a stable lock order.
_SERIES_UPSERT = """
INSERT INTO series (entity, metric, first_ts, last_ts)
SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[])
    AS s(entity, metric, first_ts, last_ts)
ORDER BY entity, metric
ON CONFLICT (entity, metric) DO UPDATE SET
    first_ts = LEAST(series.first_ts, EXCLUDED.first_ts),
    last_ts  = GREATEST(series.last_ts, EXCLUDED.last_ts)
"""

# Each source's clock per partition (migrations 009, 011): seen_at is when a worker last
# saw it move, by the worker's wall clock; the slots and weekdays it reported in add up
# (OR) within a generation of a week (from live_since), and a write a week or more after
# it starts the next one (the current slots become prev_*; two weeks on, both go), so a
# slot not seen for one to two weeks is forgotten: a fleet moved to nights stops paging
# at its old day hours.
_SOURCES_UPSERT = """
INSERT INTO sources (source, partition, first_seen, seen_at, watermark, step_s, live_tod,
                     live_dow, live_since)
SELECT s.source, s.partition, %(seen)s, %(seen)s, s.watermark, s.step_s, s.tod::bit(288), s.dow,
       %(seen)s
FROM unnest(%(sources)s::text[], %(partitions)s::int[], %(watermarks)s::timestamptz[],
            %(steps)s::float8[], %(tods)s::text[], %(dows)s::int[])
    AS s(source, partition, watermark, step_s, tod, dow)
ORDER BY source, partition
ON CONFLICT (source, partition) DO UPDATE SET
    first_seen = LEAST(sources.first_seen, EXCLUDED.first_seen),
    seen_at    = GREATEST(sources.seen_at, EXCLUDED.seen_at),
    watermark  = GREATEST(sources.watermark, EXCLUDED.watermark),
    step_s     = COALESCE(EXCLUDED.step_s, sources.step_s),
    live_tod   = CASE WHEN EXCLUDED.seen_at < sources.live_since + interval '7 days'
                      THEN sources.live_tod | EXCLUDED.live_tod ELSE EXCLUDED.live_tod END,
    live_dow   = CASE WHEN EXCLUDED.seen_at < sources.live_since + interval '7 days'
                      THEN sources.live_dow | EXCLUDED.live_dow ELSE EXCLUDED.live_dow END,
    prev_tod   = CASE WHEN EXCLUDED.seen_at < sources.live_since + interval '7 days'
                      THEN sources.prev_tod
                      WHEN EXCLUDED.seen_at < sources.live_since + interval '14 days'
                      THEN sources.live_tod ELSE repeat('0', 288)::bit(288) END,
    prev_dow   = CASE WHEN EXCLUDED.seen_at < sources.live_since + interval '7 days'
                      THEN sources.prev_dow
                      WHEN EXCLUDED.seen_at < sources.live_since + interval '14 days'
                      THEN sources.live_dow ELSE 0 END,
    live_since = CASE WHEN EXCLUDED.seen_at < sources.live_since + interval '7 days'
                      THEN sources.live_since ELSE EXCLUDED.seen_at END
"""

# How long a write waits for a lock (a table another session locked: a migration, a
# VACUUM FULL, an operator's LOCK) before it fails as an outage and is tried again. A write
# that only waited counted as no progress: the stall watchdog ended the worker (exit 75,
# 122 s into a lock of observations) and the sink errors never showed it.
LOCK_TIMEOUT = "10s"


async def _configure_session(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("SELECT set_config('lock_timeout', %s, false)", (LOCK_TIMEOUT,))
    await conn.commit()


class PostgresSink:
    """Buffers scored points and episode events and writes them in batches."""

    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int = 1,
        max_size: int = 4,
        max_backoff_s: float = 5.0,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            open=False,
            check=AsyncConnectionPool.check_connection,
            reconnect_timeout=0,
            configure=_configure_session,
        )
        self._buffer = SinkBatch()
        # Time span per series not yet in the ``series`` table. Series new to
        # this sink are written with their first batch; the last_ts of known
        # ones only when a flush asks for all of them (the worker: at its state
        # checkpoints), since updating every series row in every batch cost a
        # third of the batch's database time.
        self._spans: dict[tuple[str, str], tuple[datetime, datetime]] = {}
        self._known: set[tuple[str, str]] = set()
        self._new: set[tuple[str, str]] = set()  # pending series not yet in the table
        self._max_backoff_s = max_backoff_s
        self._on_error = on_error
        # Sessions whose staging table exists (it outlives each transaction), so
        # a write does not ask for it again: one round trip less per batch. A
        # broken connection is replaced by a new object, which is not in here.
        self._staged: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()

    async def open(self) -> None:
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    def __len__(self) -> int:
        return len(self._buffer)

    def add_point(self, row: ObservationRow) -> None:
        self._buffer.points.append(row)
        if row.status == _TOO_MANY_SERIES:
            # stored as the point it was, but no series: a producer putting a request id
            # in the metric name added a row to `series` (and to its listing) per reading
            return
        key = (row.entity, row.metric)
        span = self._spans.get(key)
        if span is None:
            self._spans[key] = (row.ts, row.ts)
            if key not in self._known:
                self._new.add(key)
        elif row.ts > span[1]:
            self._spans[key] = (span[0], row.ts)
        elif row.ts < span[0]:
            self._spans[key] = (row.ts, span[1])

    def add_episode(self, event: Mapping[str, Any]) -> None:
        """Buffer an anomaly event (wire format); only the latest per episode is kept."""
        record = dict(event)
        record["status"] = "resolved" if record["event"] == "resolved" else "open"
        for key in ("started_at", "ended_at", "ts"):
            record[key] = to_datetime(record.get(key))
        previous = self._buffer.episodes.get(record["episode_id"])
        if previous is not None:
            record["peak_score"] = max(previous["peak_score"], record["peak_score"])
            if previous["status"] == "resolved":
                record["status"] = "resolved"
        self._buffer.episodes[record["episode_id"]] = record

    def take(self) -> SinkBatch:
        """Hand over what is buffered as one batch to :meth:`write`; the buffer starts empty."""
        batch, self._buffer = self._buffer, SinkBatch()
        return batch

    async def flush(self, *, all_series: bool = True) -> SinkStats:
        """Write the buffer in one transaction; raise SinkBackpressure and keep it on failure."""
        stats = await self.write(self._buffer, all_series=all_series)
        self._buffer = SinkBatch()
        return stats

    async def write(self, batch: SinkBatch, *, all_series: bool = True) -> SinkStats:
        """Write ``batch`` in one transaction; raise SinkBackpressure on failure.

        Several writes may be in flight at once: each is idempotent, and an
        episode row only takes the values of an event at least as recent as
        the one it holds. ``all_series=False`` writes only series new to this
        sink to ``series`` and keeps the others' latest times for a later write
        that asks for all.
        """
        stats = SinkStats(points=len(batch.points), episodes=len(batch.episodes))
        spans = dict(self._spans) if all_series else {k: self._spans[k] for k in self._new}
        if not batch and not spans:
            return stats
        seen_at = batch.seen_at or datetime.now(UTC)
        started = time.perf_counter()
        try:
            async with self._pool.connection(timeout=5.0) as conn:
                async with closed_if_read_only(conn), conn.transaction():
                    stats.points_inserted = await self._write_points(conn, batch.points)
                    await self._write_series(conn, spans)
                    await self._write_sources(conn, batch.sources, seen_at)
                    await self._write_episodes(conn, batch.episodes)
                    stats.resolved = await self._resolve_orphans(
                        conn, batch.orphans, batch.episodes
                    )
                if batch.points:
                    self._staged.add(conn)  # committed: the table stays with the session
        except _BACKPRESSURE as exc:
            raise SinkBackpressure(1.0, exc) from exc
        except Exception as exc:  # pool timeout and friends
            if type(exc).__name__ in ("PoolTimeout", "TooManyRequests"):
                raise SinkBackpressure(1.0, exc) from exc
            raise
        for key, span in spans.items():
            if self._spans.get(key) == span:  # else a later point widened it meanwhile
                del self._spans[key]
            self._known.add(key)
            self._new.discard(key)
        stats.seconds = time.perf_counter() - started
        return stats

    async def flush_with_retry(
        self,
        batch: SinkBatch | None = None,
        *,
        all_series: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> SinkStats:
        """Write ``batch`` (else the buffer) until it succeeds, backing off 0.1 s,
        0.2 s, ... up to max_backoff_s."""
        delay = 0.1
        while True:
            try:
                if batch is None:
                    return await self.flush(all_series=all_series)
                return await self.write(batch, all_series=all_series)
            except SinkBackpressure as exc:
                if self._on_error is not None:
                    self._on_error(exc.cause)
                log.warning("sink: %s", exc)
                await sleep(delay)
                delay = min(delay * 2.0, self._max_backoff_s)

    async def _write_points(
        self, conn: psycopg.AsyncConnection[Any], points: list[ObservationRow]
    ) -> int:
        if not points:
            return 0
        if conn not in self._staged:
            await conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _obs_stage (LIKE observations INCLUDING DEFAULTS)"
                " ON COMMIT DELETE ROWS"
            )
        async with conn.cursor() as cur:
            async with cur.copy(_COPY_STAGE) as copy:
                copy.set_types(list(OBSERVATION_TYPES))
                for row in points:
                    await copy.write_row(row)
            await cur.execute(_INSERT_FROM_STAGE)
            return cur.rowcount

    async def _write_series(
        self,
        conn: psycopg.AsyncConnection[Any],
        spans: dict[tuple[str, str], tuple[datetime, datetime]],
    ) -> None:
        if not spans:
            return
        await conn.execute(
            _SERIES_UPSERT,
            (
                [k[0] for k in spans],
                [k[1] for k in spans],
                [s[0] for s in spans.values()],
                [s[1] for s in spans.values()],
            ),
        )

    async def _write_sources(
        self, conn: psycopg.AsyncConnection[Any], marks: list[SourceMark], seen_at: datetime
    ) -> None:
        if not marks:
            return
        # one row per key in a statement (ON CONFLICT cannot touch a row twice)
        merged: dict[tuple[str, int], SourceMark] = {}
        for m in marks:
            old = merged.get((m.source, m.partition))
            if old is not None:
                m = m._replace(
                    watermark=max(m.watermark, old.watermark),
                    step_s=m.step_s if m.step_s is not None else old.step_s,
                    live_tod=m.live_tod | old.live_tod,
                    live_dow=m.live_dow | old.live_dow,
                )
            merged[(m.source, m.partition)] = m
        rows = list(merged.values())
        await conn.execute(
            _SOURCES_UPSERT,
            {
                "seen": seen_at,
                "sources": [m.source for m in rows],
                "partitions": [m.partition for m in rows],
                "watermarks": [m.watermark for m in rows],
                "steps": [m.step_s for m in rows],
                "tods": [format(m.live_tod, "0288b")[::-1] for m in rows],  # slot 0 first
                "dows": [m.live_dow for m in rows],
            },
        )

    async def _write_episodes(
        self, conn: psycopg.AsyncConnection[Any], episodes: dict[str, dict[str, Any]]
    ) -> None:
        if not episodes:
            return
        async with conn.cursor() as cur:
            # In id order: two overlapping writes that update the same episodes
            # in different orders deadlocked (PostgreSQL then aborts one after
            # deadlock_timeout, 1 s: throughput fell to a fifth every few seconds).
            await cur.executemany(_EPISODE_UPSERT, [episodes[k] for k in sorted(episodes)])

    async def _resolve_orphans(
        self,
        conn: psycopg.AsyncConnection[Any],
        orphans: list[tuple[str, float, tuple[str, ...]]],
        own: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        if not orphans:
            return []
        cutoffs: dict[str, float] = {}
        for entity, ts, _ in orphans:  # an entity twice: the earlier time
            cutoffs[entity] = min(ts, cutoffs.get(entity, ts))
        # the batch's own episodes have a model: one a late point opened (within the
        # cleaner's allowed lateness) is dated before the entity's first reading
        known = sorted({i for _, _, ids in orphans for i in ids}.union(own))
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                _RESOLVE_ORPHANS,
                {
                    "entities": list(cutoffs),
                    "cutoffs": [to_datetime(t) for t in cutoffs.values()],
                    "known": known,
                },
            )
            return await cur.fetchall()

    async def apply_retention(self, days: int) -> int | None:
        """Delete rows older than ``days`` (see :mod:`stream_app.storage.retention`);
        None when another worker is doing it."""
        async with self._pool.connection(timeout=5.0) as conn:
            await conn.set_autocommit(True)
            try:
                return await apply_retention(conn, days)
            finally:
                await conn.set_autocommit(False)
