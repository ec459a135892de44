"""Retention on the real PostgreSQL: old rows go, recent ones and open episodes stay."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from stream_app.storage import migrate
from stream_app.storage.postgres import PostgresSink
from stream_app.storage.sink import SinkBatch, SourceMark
from tests.integration.conftest import FreshSchema
from tests.integration.test_sink import _event, _query, _row

pytestmark = pytest.mark.integration
DAY = 86_400.0


async def _seed(sink: PostgresSink, now: float) -> None:
    for age_days in (400, 45, 31, 29, 1):
        sink.add_point(_row("e1", "m", now - age_days * DAY))
    old_resolved = _event("resolved", now - 40 * DAY, 0.99, "high", episode="old-resolved")
    old_resolved["started_at"] = now - 41 * DAY
    old_open = _event("opened", now - 40 * DAY, 0.99, "high", episode="old-open")
    old_open["started_at"] = now - 41 * DAY
    recent = _event("resolved", now - DAY, 0.99, "high", episode="recent-resolved")
    recent["started_at"] = now - 2 * DAY
    for event in (old_resolved, old_open, recent):
        sink.add_episode(event)
    await sink.flush()


@pytest.fixture
async def sink(fresh_schema: FreshSchema) -> AsyncIterator[PostgresSink]:
    """A sink on a migrated schema holding 5 points (1-400 days old) and 3 episodes."""
    migrate(fresh_schema.conninfo)
    sink = PostgresSink(fresh_schema.conninfo)
    await sink.open()
    try:
        await _seed(sink, time.time())
        yield sink
    finally:
        await sink.close()


async def test_old_rows_go_and_recent_ones_stay(
    sink: PostgresSink, fresh_schema: FreshSchema
) -> None:
    assert await sink.apply_retention(30) == 3
    ages = _query(
        fresh_schema.conninfo,
        "SELECT round(extract(epoch FROM now() - ts) / 86400) FROM observations ORDER BY 1",
    )
    assert [int(a) for (a,) in ages] == [1, 29]
    episodes = _query(fresh_schema.conninfo, "SELECT id FROM anomalies ORDER BY id")
    assert [e for (e,) in episodes] == ["old-open", "recent-resolved"]
    assert await sink.apply_retention(30) == 0  # nothing left to delete


async def test_a_series_whose_points_all_went_is_forgotten_and_listed_again_when_back(
    fresh_schema: FreshSchema,
) -> None:
    """Retention never touched ``series``: a thousand entities last seen 60 days ago kept
    their rows after their points went, and the series list and Grafana's entity
    variable offered them for ever. A series without a point left goes with its points;
    one that reports again is listed again."""
    migrate(fresh_schema.conninfo)
    now = time.time()
    sink = PostgresSink(fresh_schema.conninfo)
    await sink.open()
    try:
        for entity in ("gone-1", "gone-2", "still-open"):
            sink.add_point(_row(entity, "m", now - 60 * DAY))
        sink.add_point(_row("kept", "m", now - DAY))
        # a series whose episode is still open (a silence that never ended) stays
        # listed while its alert fires
        still_open = _event("opened", now - 45 * DAY, 0.99, "high", episode="silent")
        still_open.update(entity="still-open", started_at=now - 45 * DAY)
        sink.add_episode(still_open)
        await sink.flush()
        await sink.apply_retention(30)
        listed = _query(fresh_schema.conninfo, "SELECT entity FROM series ORDER BY 1")
        assert [e for (e,) in listed] == ["kept", "still-open"]
        sink.add_point(_row("gone-1", "m", now))  # back, to the same sink that knew it
        await sink.flush()
    finally:
        await sink.close()
    listed = _query(fresh_schema.conninfo, "SELECT entity FROM series ORDER BY 1")
    assert [e for (e,) in listed] == ["gone-1", "kept", "still-open"]


async def test_a_source_not_seen_for_what_is_kept_and_a_week_is_forgotten(
    fresh_schema: FreshSchema,
) -> None:
    """Each (source, partition) the workers saw is a row of ``sources``: a producer that
    puts a request id in ``source`` added one per reading, kept for ever. A source goes
    once unseen for the time kept, and never within 8 days (its week of usual hours:
    a market quiet over a long weekend keeps what it learned)."""
    migrate(fresh_schema.conninfo)
    now = time.time()
    sink = PostgresSink(fresh_schema.conninfo)
    await sink.open()
    try:
        for name, age_days in (("gone", 40.0), ("weekend", 4.0), ("live", 0.0)):
            seen = datetime.fromtimestamp(now - age_days * DAY, UTC)
            batch = SinkBatch(sources=[SourceMark(name, 0, seen, 1.0, 1, 1)], seen_at=seen)
            await sink.flush_with_retry(batch)
        await sink.apply_retention(1)
    finally:
        await sink.close()
    kept = _query(fresh_schema.conninfo, "SELECT source FROM sources ORDER BY 1")
    assert [s for (s,) in kept] == ["live", "weekend"]


async def test_one_caller_at_a_time(sink: PostgresSink, fresh_schema: FreshSchema) -> None:
    key = "hashtext(current_schema() || '.tsguard_retention')"
    with psycopg.connect(fresh_schema.conninfo, autocommit=True) as other:
        other.execute(f"SELECT pg_advisory_lock({key})")  # another worker is at it
        assert await sink.apply_retention(30) is None
        assert _count(fresh_schema.conninfo) == 5
        other.execute(f"SELECT pg_advisory_unlock({key})")
    assert await sink.apply_retention(30) == 3
    assert _count(fresh_schema.conninfo) == 2


def _count(conninfo: str) -> Any:
    return _query(conninfo, "SELECT count(*) FROM observations")[0][0]


@pytest.mark.parametrize("days", [0, -5, True])
async def test_a_retention_under_a_day_deletes_nothing(
    sink: PostgresSink, fresh_schema: FreshSchema, days: int
) -> None:
    # 0 days would have deleted every observation up to now
    with pytest.raises(ValueError, match="at least 1 day"):
        await sink.apply_retention(days)
    assert _count(fresh_schema.conninfo) == 5
