"""Every SQL a dashboard, variable, annotation or alert runs, on the real PostgreSQL.

Macros are expanded as Grafana's PostgreSQL datasource does, for several
interval sizes so the raw, 5-minute and 1-hour rollup branches all run, and
the queries run as the read-only Grafana role on data the real worker wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pglast
import psycopg
import pytest

from benchmarks.dashboard_rollups import set_rollups_stored
from connectors.grafana import expand
from connectors.grafana.files import walk_panels
from tests.dashboards.conftest import DemoDb
from tests.dashboards.queries import FILES, SqlQuery, sql_queries

pytestmark = pytest.mark.integration

# 20 s and 1 min read raw points, 5 min and 30 min the 5-minute rollup, 1 h and 1 d the hourly one.
INTERVALS_MS = (20_000, 60_000, 300_000, 1_800_000, 3_600_000, 86_400_000)
QUERIES = sql_queries()
NUMERIC = (int, float, Decimal)
SEVERITIES = {"low", "medium", "high", "critical"}


def _run(db: DemoDb, text: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        cur = conn.execute(text)  # type: ignore[arg-type, unused-ignore]
        assert cur.description is not None
        return [c.name for c in cur.description], cur.fetchall()


@pytest.fixture(scope="module")
def variables(demo_db: DemoDb) -> dict[str, str]:
    """$entity/$metric as the drill-down's own variable queries offer them: the busiest series."""
    with psycopg.connect(demo_db.conninfo) as conn:
        row = conn.execute(
            "SELECT entity, metric FROM anomalies GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1"
        ).fetchone()
    assert row is not None
    return {"entity": row[0], "metric": row[1]}


def timescaledb_flag(timescaledb: bool) -> bool:
    """The flag as the datasource file Grafana would load for this choice says it."""
    (pg,) = [d for d in FILES.datasources(timescaledb=timescaledb) if d["uid"] == "tsguard-pg"]
    flag = pg["jsonData"]["timescaledb"]
    assert flag is timescaledb
    return flag


def _window(db: DemoDb) -> tuple[datetime, datetime]:
    return db.start - timedelta(minutes=30), db.end + timedelta(minutes=5)


def _columns_named_by_panel(query: SqlQuery) -> set[str]:
    """Field names the panel's overrides and links rely on."""
    for dash in FILES.dashboards():
        for panel in walk_panels(dash):
            for target in panel["targets"]:
                if f"{dash['uid']}/{panel['title']}/{target['refId']}" == query.where:
                    return {
                        o["matcher"]["options"]
                        for o in panel.get("fieldConfig", {}).get("overrides", [])
                        if o["matcher"]["id"] == "byName"
                    }
    return set()


def _check_shape(query: SqlQuery, names: list[str], rows: list[tuple[Any, ...]]) -> None:
    # In time-series format the values of a "metric" column name the series.
    fields = set(names) | (SEVERITIES if "metric" in names else set())
    assert _columns_named_by_panel(query) <= fields, (query.where, names)
    if query.fmt == "time_series":
        assert names[0] == "time"
        for row in rows:
            for name, value in zip(names[1:], row[1:], strict=True):
                assert name == "metric" or value is None or isinstance(value, NUMERIC)
        times = [r[0] for r in rows]
        assert times == sorted(times), "time series must be sorted by time"
    elif query.fmt == "annotation":
        assert names == ["time", "timeend", "text", "tags"]
    elif query.fmt == "variable":
        assert len(names) == 1
    elif query.fmt == "alert":
        numeric = (
            [n for n, v in zip(names, rows[0], strict=True) if isinstance(v, NUMERIC)]
            if rows
            else []
        )
        assert not rows or len(numeric) == 1, (query.where, names)


@pytest.mark.parametrize("interval_ms", INTERVALS_MS)
@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_query_runs_on_real_postgres(
    demo_db: DemoDb, variables: dict[str, str], query: SqlQuery, interval_ms: int
) -> None:
    start, end = _window(demo_db)
    text = expand(
        query.sql,
        time_from=start,
        time_to=end,
        interval_ms=interval_ms,
        variables=variables,
        timescaledb=timescaledb_flag(False),
    )
    assert "$" not in text, text
    if "$__timeGroup" in query.sql:
        assert "time_bucket(" not in text and "floor(extract(epoch from" in text
    names, rows = _run(demo_db, text)
    _check_shape(query, names, rows)
    if query.fmt != "alert" and "status = 'open'" not in query.sql:
        assert rows, f"{query.where} returned no rows at {interval_ms} ms:\n{text}"


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_timescaledb_expansion_parses(query: SqlQuery) -> None:
    """TimescaleDB cannot run here: its time_bucket() form must at least be valid SQL."""
    start = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    text = expand(
        query.sql,
        time_from=start,
        time_to=start + timedelta(days=1),
        interval_ms=300_000,
        variables={"entity": "e", "metric": "m"},
        timescaledb=timescaledb_flag(True),
    )
    if "$__timeGroup" in query.sql:
        assert "time_bucket('" in text
    pglast.parse_sql(text)


ROLLUP_QUERIES = [q for q in QUERIES if "observations_1h" in q.sql]


@contextmanager
def rollups_stored(db: DemoDb) -> Iterator[None]:
    """The schema as TimescaleDB's migration leaves it in this respect: the dashboards
    read the rollups (here the views) from 5-minute intervals up."""
    with psycopg.connect(db.owner, autocommit=True) as conn:
        set_rollups_stored(conn, True)
        try:
            yield
        finally:
            set_rollups_stored(conn, False)


@pytest.mark.parametrize("interval_ms", INTERVALS_MS[2:])
@pytest.mark.parametrize("query", ROLLUP_QUERIES, ids=[q.id for q in ROLLUP_QUERIES])
def test_rollup_branches_run_where_the_rollups_are_stored(
    demo_db: DemoDb, variables: dict[str, str], query: SqlQuery, interval_ms: int
) -> None:
    """Plain PostgreSQL's dashboards never read the views: their branches run here as
    they would on TimescaleDB, on the same names and columns."""
    start, end = _window(demo_db)
    text = expand(
        query.sql, time_from=start, time_to=end, interval_ms=interval_ms, variables=variables
    )
    with rollups_stored(demo_db):
        names, rows = _run(demo_db, text)
        plan = _plan(demo_db, text)
    _check_shape(query, names, rows)
    assert rows, f"{query.where} returned no rows at {interval_ms} ms:\n{text}"
    assert any(s["Relation Name"].startswith("observations") for s in _scans(plan))


def _plan(db: DemoDb, text: str) -> dict[str, Any]:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        row = conn.execute(f"EXPLAIN (FORMAT JSON) {text}").fetchone()  # type: ignore[arg-type, unused-ignore]
    assert row is not None
    return dict(row[0][0]["Plan"])


def _scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "Relation Name" in node:
        yield node
    for child in node.get("Plans", []):
        yield from _scans(child)


@pytest.mark.parametrize("interval_ms", INTERVALS_MS)
@pytest.mark.parametrize("query", ROLLUP_QUERIES, ids=[q.id for q in ROLLUP_QUERIES])
def test_plain_postgresql_reads_only_the_points_in_range(
    demo_db: DemoDb, variables: dict[str, str], query: SqlQuery, interval_ms: int
) -> None:
    """A filter on a view's bucket cannot reach the index on observations.ts: through
    the views, a 7-day panel over 3 million points aggregated the whole table (4.4-6.3 s
    against 0.66 s from the raw points). On plain PostgreSQL every scan of observations
    is bounded by the panel's range on ts, at every interval."""
    start, end = _window(demo_db)
    text = expand(
        query.sql, time_from=start, time_to=end, interval_ms=interval_ms, variables=variables
    )
    scans = [s for s in _scans(_plan(demo_db, text)) if s["Relation Name"] == "observations"]
    assert scans, query.where
    for scan in scans:
        conditions = " ".join(
            str(scan.get(k, "")) for k in ("Index Cond", "Recheck Cond", "Filter")
        )
        assert "(ts >= " in conditions and "(ts <= " in conditions, (query.where, scan)


@pytest.mark.parametrize("stored", [False, True], ids=["postgresql", "timescaledb"])
@pytest.mark.parametrize("interval_ms", INTERVALS_MS)
def test_rollups_count_every_point_once(demo_db: DemoDb, interval_ms: int, stored: bool) -> None:
    """Points/s times the bucket width adds up to all points, whichever branch ran."""
    (query,) = [q for q in QUERIES if q.where.endswith("Scored points/s (stored)/A")]
    start, end = _window(demo_db)
    text = expand(query.sql, time_from=start, time_to=end, interval_ms=interval_ms)
    with rollups_stored(demo_db) if stored else nullcontext():
        _, rows = _run(demo_db, text)
    total = sum(float(r[1]) * interval_ms / 1000.0 for r in rows)
    assert round(total) == demo_db.points


def test_value_band_agrees_across_granularities(demo_db: DemoDb, variables: dict[str, str]) -> None:
    """The hourly rollup's mean value equals the mean of the raw points it summarises."""
    (query,) = [q for q in QUERIES if q.where.endswith("Value and expected band/A")]
    start, end = _window(demo_db)
    raw = _run(
        demo_db,
        expand(query.sql, time_from=start, time_to=end, interval_ms=60_000, variables=variables),
    )[1]
    with rollups_stored(demo_db):
        hourly = _run(
            demo_db,
            expand(
                query.sql, time_from=start, time_to=end, interval_ms=3_600_000, variables=variables
            ),
        )[1]
    assert len(hourly) < len(raw)
    assert (
        abs(sum(r[1] for r in raw) / len(raw) - sum(float(h[1]) for h in hourly) / len(hourly))
        < 1.0
    )
    assert min(r[3] for r in raw if r[3] is not None) == pytest.approx(
        min(h[3] for h in hourly if h[3] is not None)
    )


def test_the_silent_source_alert_reads_what_the_worker_wrote(demo_db: DemoDb) -> None:
    """The real worker recorded its source's clock per partition (``sources``). Seen for
    less than a day, the source is not paged, even an hour after the worker last saw it
    move; aged by a day with every hour usual (in a transaction rolled back), it is
    silent an hour after, and at that moment it is not. tests/dashboards/test_silence_alerts.py
    has the rule at night, at weekends, between a slow probe's readings and on a new
    source's first evening."""
    (silent,) = [q for q in QUERIES if q.where == "alert:tsguard-source-silent/A"]
    with psycopg.connect(demo_db.owner) as conn:
        row = conn.execute(
            "SELECT max(seen_at), min(step_s), sum(bit_count(live_tod)) FROM sources"
            " WHERE source = 'test'"
        ).fetchone()
    assert row is not None and row[0] is not None, "the worker wrote no sources row"
    seen, step, slots = row
    assert step > 0 and slots > 0

    def firing(conn: psycopg.Connection[Any], at: datetime) -> list[str]:
        text = expand(silent.sql, time_from=at - timedelta(minutes=10), time_to=at,
                      interval_ms=60_000)  # fmt: skip
        cur = conn.execute(text)  # type: ignore[arg-type, unused-ignore]
        assert cur.description is not None
        assert [c.name for c in cur.description] == ["reading_source", "silent_seconds"]
        return [r[0] for r in cur.fetchall() if r[0] == "test"]

    with psycopg.connect(demo_db.owner) as conn:
        assert firing(conn, seen + timedelta(hours=1)) == []  # young: its hours not known
        conn.execute(
            "UPDATE sources SET first_seen = first_seen - interval '1 day',"
            " live_tod = ~repeat('0', 288)::bit(288), live_dow = 127 WHERE source = 'test'"
        )
        for at, expected in ((seen, []), (seen + timedelta(hours=1), ["test"])):
            assert firing(conn, at) == expected, at
        conn.rollback()


def test_the_critical_episode_alert_fires_for_open_unacknowledged_critical_episodes(
    demo_db: DemoDb,
) -> None:
    """Its SQL may answer nothing (no episode open is its healthy state), so running it
    proved nothing: the test named for it checked the silent-source alert alone. Episodes
    as the sink writes them, in a transaction rolled back: only the open, critical and
    unacknowledged one is an alert instance, labelled by its series, valued 1."""
    (critical,) = [q for q in QUERIES if q.where == "alert:tsguard-critical-episode-open/A"]
    start, end = _window(demo_db)
    text = expand(critical.sql, time_from=start, time_to=end, interval_ms=60_000)
    episodes = [  # id, entity, status, severity, acknowledged
        ("crit-open", "alert/dev-1", "open", "critical", False),
        ("crit-acked", "alert/dev-2", "open", "critical", True),
        ("crit-resolved", "alert/dev-3", "resolved", "critical", False),
        ("high-open", "alert/dev-4", "open", "high", False),
    ]
    with psycopg.connect(demo_db.owner) as conn:
        for episode_id, entity, status, severity, acked in episodes:
            conn.execute(
                "INSERT INTO anomalies (id, entity, metric, status, started_at, ended_at,"
                " last_ts, score, peak_score, severity, detector, acknowledged_at)"
                " VALUES (%s, %s, 'temperature', %s, now() - interval '5 minutes',"
                " CASE WHEN %s = 'resolved' THEN now() END, now(), 9, 9, %s, 'test',"
                " CASE WHEN %s THEN now() END)",
                (episode_id, entity, status, status, severity, acked),
            )
        cur = conn.execute(text)  # type: ignore[arg-type, unused-ignore]
        assert cur.description is not None
        names = [c.name for c in cur.description]
        rows = [r for r in cur.fetchall() if str(r[0]).startswith("alert/")]
        conn.rollback()
    assert names == ["entity", "metric", "open_critical"]
    assert rows == [("alert/dev-1", "temperature", 1)]


def test_grafana_role_can_log_in_and_read(demo_db: DemoDb) -> None:
    """The datasource's tsguard_ro role (made by migrate) reads every table and rollup."""
    try:
        conn = psycopg.connect(demo_db.readonly, connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"tsguard_ro cannot log in ({exc}); migrate() creates it only when the migrating"
            " role has CREATEROLE",
            pytrace=False,
        )
    with conn:
        for table in ("observations", "observations_5m", "observations_1h", "anomalies", "series"):
            conn.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM anomalies")
