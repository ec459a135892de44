"""The PostgreSQL sink on the real database: overlapping writes, replays, episode order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stream_app.storage import ObservationRow, PostgresSink, SinkBackpressure, SinkBatch, migrate
from stream_app.storage.sink import SourceMark
from tests.integration.conftest import FreshSchema

T0 = 1_790_000_000.0


def _row(entity: str, metric: str, ts: float, value: float = 1.0) -> ObservationRow:
    at = datetime.fromtimestamp(ts, tz=UTC)
    return ObservationRow(entity, metric, at, value, 1.0, 0.0, 2.0, 0.1, False, "ok", "d")


def _event(
    kind: str, ts: float, score: float, severity: str, episode: str = "ep-1"
) -> dict[str, Any]:
    return {
        "event": kind,
        "episode_id": episode,
        "entity": "e1",
        "metric": "m",
        "kind": "value",
        "started_at": T0,
        "ended_at": ts if kind == "resolved" else None,
        "ts": ts,
        "value": score,
        "expected": 0.0,
        "lower": -1.0,
        "upper": 1.0,
        "score": score,
        "peak_score": score,
        "severity": severity,
        "direction": "up",
        "detector": "d",
        "explanation": f"at {ts}",
    }


@pytest.fixture
async def sink(fresh_schema: FreshSchema) -> Any:
    migrate(fresh_schema.conninfo)
    sink = PostgresSink(fresh_schema.conninfo, max_size=4)
    await sink.open()
    try:
        yield sink
    finally:
        await sink.close()


def _query(conninfo: str, text: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(text).fetchall()


@pytest.mark.integration
async def test_overlapping_writes_keep_their_own_rows(
    sink: PostgresSink, fresh_schema: FreshSchema
) -> None:
    batches = []
    for b in range(4):
        for i in range(500):
            sink.add_point(_row(f"e{i % 7}", "m", T0 + b * 500 + i))
        batches.append(sink.take())
    stats = await asyncio.gather(*(sink.write(batch, all_series=False) for batch in batches))
    assert [s.points_inserted for s in stats] == [500] * 4
    assert _query(fresh_schema.conninfo, "SELECT count(*), count(DISTINCT ts) FROM observations")[
        0
    ] == (2000, 2000)


@pytest.mark.integration
async def test_a_replayed_batch_and_duplicates_within_one_insert_nothing_twice(
    sink: PostgresSink, fresh_schema: FreshSchema
) -> None:
    for _ in range(2):  # the same reading twice in one batch
        sink.add_point(_row("e1", "m", T0, value=1.0))
    assert (await sink.flush()).points_inserted == 1
    sink.add_point(_row("e1", "m", T0, value=9.0))  # replayed after a crash
    assert (await sink.flush()).points_inserted == 0
    assert _query(fresh_schema.conninfo, "SELECT value FROM observations") == [(1.0,)]


@pytest.mark.integration
async def test_episode_events_written_out_of_order_end_in_the_newest_values(
    sink: PostgresSink, fresh_schema: FreshSchema
) -> None:
    newest = [_event("updated", T0 + 20, 7.0, "high"), _event("resolved", T0 + 30, 2.0, "low")]
    older = [_event("opened", T0, 9.0, "critical"), _event("updated", T0 + 10, 5.0, "medium")]
    for event in newest:
        sink.add_episode(event)
        await sink.flush()
    for event in older:  # an overlapping write of earlier batches commits last
        sink.add_episode(event)
        await sink.flush()
    row = _query(
        fresh_schema.conninfo,
        "SELECT status, score, peak_score, severity, explanation,"
        " extract(epoch FROM last_ts), extract(epoch FROM ended_at) FROM anomalies",
    )
    assert row == [("resolved", 2.0, 9.0, "low", f"at {T0 + 30}", T0 + 30, T0 + 30)]


@pytest.mark.integration
async def test_new_series_are_listed_at_once_and_last_times_when_all_are_asked_for(
    sink: PostgresSink, fresh_schema: FreshSchema
) -> None:
    def series() -> list[tuple[Any, ...]]:
        return _query(
            fresh_schema.conninfo,
            "SELECT entity, extract(epoch FROM first_ts), extract(epoch FROM last_ts)"
            " FROM series ORDER BY entity",
        )

    sink.add_point(_row("a", "m", T0))
    await sink.write(sink.take(), all_series=False)
    assert series() == [("a", T0, T0)]
    sink.add_point(_row("a", "m", T0 + 5))
    sink.add_point(_row("b", "m", T0 + 5))
    await sink.write(sink.take(), all_series=False)
    assert series() == [("a", T0, T0), ("b", T0 + 5, T0 + 5)]  # a's last time waits
    await sink.write(sink.take(), all_series=True)
    assert series() == [("a", T0, T0 + 5), ("b", T0 + 5, T0 + 5)]


@pytest.mark.integration
async def test_a_point_of_one_series_too_many_is_stored_but_lists_no_series(
    sink: PostgresSink, fresh_schema: FreshSchema
) -> None:
    """A producer putting a request id in the metric name: each such point is rejected as
    ``too_many_series`` and stored with that status, but added a row to ``series`` (and
    to ``GET /v1/series``) per reading."""
    sink.add_point(_row("a", "m", T0))
    for i in range(5):
        row = _row("a", f"req-{i}", T0 + i)
        sink.add_point(row._replace(status="too_many_series", score=None))
    await sink.write(sink.take())
    assert _query(fresh_schema.conninfo, "SELECT entity, metric FROM series") == [("a", "m")]
    stored = _query(fresh_schema.conninfo, "SELECT status, count(*) FROM observations GROUP BY 1")
    assert sorted(stored) == [("ok", 1), ("too_many_series", 5)]


@pytest.mark.integration
async def test_overlapping_writes_of_the_same_episodes_do_not_deadlock(
    sink: PostgresSink, fresh_schema: FreshSchema
) -> None:
    ids = [f"ep-{i:03d}" for i in range(300)]
    for episode in ids:  # the episodes exist: every later write updates rows
        sink.add_episode(_event("opened", T0, 5.0, "low", episode))
    await sink.flush()
    for round_ in range(3):
        batches = []
        for order in (ids, ids[::-1]):  # the same rows, met in opposite orders
            for episode in order:
                sink.add_episode(_event("updated", T0 + 1 + round_, 6.0, "low", episode))
            batches.append(sink.take())
        await asyncio.gather(*(sink.write(batch) for batch in batches))  # raises on deadlock
    assert _query(fresh_schema.conninfo, "SELECT count(*), min(score) FROM anomalies") == [
        (300, 6.0)
    ]


def _read_only(conninfo: str) -> str:
    """``conninfo`` whose sessions refuse writes, as a standby's do during a failover."""
    options = conninfo_to_dict(conninfo).get("options") or ""
    return make_conninfo(conninfo, options=f"{options} -c default_transaction_read_only=on")


@pytest.mark.integration
async def test_a_read_only_database_is_backpressure_and_the_batch_is_kept(
    fresh_schema: FreshSchema,
) -> None:
    """A server that is up but takes no writes (a standby not yet promoted, maintenance)
    is waited for like one that is down; before, ReadOnlySqlTransaction failed the batch
    and the worker exited, then failed again in its start-up migration."""
    migrate(fresh_schema.conninfo)
    errors: list[BaseException] = []
    sink = PostgresSink(_read_only(fresh_schema.conninfo), on_error=errors.append)
    await sink.open()
    try:
        sink.add_point(_row("e1", "m", T0))
        sink.add_episode(_event("opened", T0, 5.0, "high"))
        with pytest.raises(SinkBackpressure):
            await sink.flush()
        assert len(sink) == 2  # kept for the next try

        waits: list[float] = []

        async def give_up_after_three(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) == 3:
                raise asyncio.CancelledError

        with pytest.raises(asyncio.CancelledError):
            await sink.flush_with_retry(sleep=give_up_after_three)
    finally:
        await sink.close()
    assert waits == [0.1, 0.2, 0.4]
    assert [type(e) for e in errors] == [psycopg.errors.ReadOnlySqlTransaction] * 3
    assert _query(fresh_schema.conninfo, "SELECT count(*) FROM observations") == [(0,)]


@pytest.mark.integration
async def test_a_write_waiting_on_a_locked_table_is_backpressure_not_a_stall(
    fresh_schema: FreshSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that only waited for a lock (a table another session locked) raised
    nothing: the worker counted no sink error and its stall watchdog ended it (exit 75,
    122 s into a lock of observations). The sink's sessions give up a lock after
    LOCK_TIMEOUT, which is backpressure: counted, tried again, and the batch kept."""
    import stream_app.storage.postgres as postgres

    monkeypatch.setattr(postgres, "LOCK_TIMEOUT", "300ms")
    migrate(fresh_schema.conninfo)
    errors: list[BaseException] = []
    sink = PostgresSink(fresh_schema.conninfo, on_error=errors.append)
    await sink.open()
    locker = await psycopg.AsyncConnection.connect(fresh_schema.conninfo)
    try:
        await locker.execute("LOCK TABLE observations IN ACCESS EXCLUSIVE MODE")
        sink.add_point(_row("e1", "m", T0))
        waits: list[float] = []

        async def release_after_two(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) == 2:
                await locker.rollback()  # the lock goes

        stats = await asyncio.wait_for(sink.flush_with_retry(sleep=release_after_two), 30)
    finally:
        await locker.close()
        await sink.close()
    assert stats.points_inserted == 1 and waits == [0.1, 0.2]
    assert [type(e) for e in errors] == [psycopg.errors.LockNotAvailable] * 2
    assert _query(fresh_schema.conninfo, "SELECT count(*) FROM observations") == [(1,)]


def _opened(episode: str, entity: str, started: float) -> dict[str, Any]:
    return {**_event("opened", started, 0.9999, "high", episode), "entity": entity,
            "started_at": started}  # fmt: skip


@pytest.mark.integration
async def test_open_episodes_that_lost_their_model_are_resolved_and_told_again_on_replay(
    sink: PostgresSink, fresh_schema: FreshSchema
) -> None:
    """An entity's episodes stored open that its loaded models do not know, whose last
    event came before its first reading since the load, are resolved at that reading's
    time and returned (for their events); the models' own, later ones (even dated from
    before it) and other entities' stay."""
    for episode, entity, started in [
        ("lost-1", "e1", T0),  # its model lost: resolved
        ("lost-2", "e1", T0 + 60),  # a second one of the same entity (another metric)
        ("known", "e1", T0 + 30),  # the loaded model has it open: stays
        ("later", "e1", T0 + 600),  # opened at the first reading, by the loaded model: stays
        ("other", "e2", T0),  # another entity: stays
    ]:
        sink.add_episode(_opened(episode, entity, started))
    # the loaded model's own silence, dated from the series' last point, opened at the
    # first reading: it started before that reading, and stays
    sink.add_episode({**_opened("own", "e1", T0 + 90), "ts": T0 + 600})
    await sink.write(sink.take())
    # opened in the batch itself, by a late point before that first reading: the model's
    sink.add_episode(_opened("late", "e1", T0 + 300))
    batch = sink.take()
    batch.orphans = [("e1", T0 + 600, ("known",))]
    stats = await sink.write(batch)
    assert sorted(row["id"] for row in stats.resolved) == ["lost-1", "lost-2"]
    assert {row["ended_at"] for row in stats.resolved} == {datetime.fromtimestamp(T0 + 600, UTC)}
    assert dict(_query(fresh_schema.conninfo, "SELECT id, status FROM anomalies")) == {
        "lost-1": "resolved",
        "lost-2": "resolved",
        "known": "open",
        "later": "open",
        "own": "open",
        "late": "open",
        "other": "open",
    }
    # the same batch again (retried after a commit whose answer was lost, or replayed
    # after the worker died before sending their events): the same ones, for their events
    again = await sink.write(batch)
    assert sorted(row["id"] for row in again.resolved) == ["lost-1", "lost-2"]
    assert dict(_query(fresh_schema.conninfo, "SELECT id, status FROM anomalies"))["late"] == "open"
    later = sink.take()  # a later load of the entity, that knows none of the others
    later.orphans = [("e1", T0 + 900, ("known",))]
    resolved = (await sink.write(later)).resolved  # lost-1 and lost-2 are not told again
    assert sorted(row["id"] for row in resolved) == ["late", "later", "own"]


def _usual_slots(conninfo: str) -> tuple[list[int], int]:
    """The slots of the day and the weekdays the alert takes as the source's hours."""
    ((tod, dow),) = _query(
        conninfo, "SELECT (live_tod | prev_tod)::text, live_dow | prev_dow FROM sources"
    )
    return [i for i, bit in enumerate(tod) if bit == "1"], dow


@pytest.mark.integration
async def test_a_sources_hours_forget_a_slot_not_seen_for_one_to_two_weeks(
    sink: PostgresSink, fresh_schema: FreshSchema
) -> None:
    """The slots and weekdays a source reports in come in generations of a week: a slot
    not seen in the current one nor the one before is no longer usual (a fleet moved to
    nights paged at its old day hours for good), and the state stays two masks."""

    async def mark(day: float, slot: int, weekday: int) -> None:
        seen = datetime.fromtimestamp(T0 + day * 86400.0, UTC)
        batch = SinkBatch(
            sources=[SourceMark("fleet", 0, seen, 60.0, 1 << slot, 1 << weekday)], seen_at=seen
        )
        await sink.flush_with_retry(batch)

    await mark(0.0, 10, 0)
    await mark(6.0, 11, 1)
    assert _usual_slots(fresh_schema.conninfo) == ([10, 11], 0b11)
    await mark(8.0, 20, 2)  # a week on: the week before is still usual
    assert _usual_slots(fresh_schema.conninfo) == ([10, 11, 20], 0b111)
    await mark(15.0, 20, 2)  # two weeks on: slots 10 and 11 were last seen 9 days ago
    assert _usual_slots(fresh_schema.conninfo) == ([20], 0b100)
    await mark(40.0, 30, 3)  # back after 25 days quiet: nothing older is usual
    assert _usual_slots(fresh_schema.conninfo) == ([30], 0b1000)
