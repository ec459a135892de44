"""The silence alerts page for outages, not for a source's normal quiet: on real PostgreSQL.

Readings go through the worker's own scoring and writing (``ReadingScorer`` and
``WorkerRuntime`` with a simulated wall clock, into the real ``PostgresSink``: no Kafka),
into a fresh migrated schema; the provisioned rules' SQL is then evaluated at chosen
times (``$__timeTo()``, as Grafana expands it for the rule's range ending now). The rule
before this one read the server's clock, so ``now()`` is read as that time too: the same
test runs against it.

- A market (14:30-21:00 UTC on weekdays) pages neither overnight, nor at the weekend,
  nor before the open; it pages a few minutes into a session it does not open, and
  minutes after its feed stops half an hour into a session.
- A probe that reports every 10 minutes does not page between readings; it pages once
  quiet for 10 of its intervals.
- A fleet quiet every night does not page at night; it pages within minutes when it
  stops in its working hours; one device that stops while the fleet reports pages as
  its series (the worker's silence episode).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg import sql
from psycopg.conninfo import make_conninfo

from connectors.grafana.macros import expand
from stream_app.core import EngineConfig
from stream_app.metrics import build_metrics
from stream_app.storage import migrate
from stream_app.storage.postgres import PostgresSink
from stream_app.worker.checkpoint import Checkpointer
from stream_app.worker.decode import ReadingDecoder
from stream_app.worker.feed import Record
from stream_app.worker.runtime import WorkerRuntime
from stream_app.worker.scoring import ReadingScorer
from stream_app.worker.states import EntityStates
from tests.dashboards.queries import alert_rules

MONDAY = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
SOURCE_RULE = "tsguard-source-silent"
SERIES_RULE = "tsguard-series-silent"


def _rule_sql(uid: str) -> str | None:
    for rule in alert_rules():
        if rule["uid"] == uid:
            return str(rule["data"][0]["model"]["rawSql"])
    return None


@pytest.fixture
def schema(pg_conninfo: str) -> Iterator[str]:
    name = f"silence_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    owner = make_conninfo(pg_conninfo, options=f"-c search_path={name}")
    try:
        migrate(owner)
        yield owner
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


class Worker:
    """The worker's scoring and writing, batch by batch, on a simulated wall clock."""

    def __init__(self, conninfo: str) -> None:
        self.now = 0.0
        metrics = build_metrics(CollectorRegistry())
        self.scorer = ReadingScorer(
            EntityStates(EngineConfig.default(), lambda _: None), ReadingDecoder(max_future_s=60)
        )
        checkpointer = Checkpointer(
            self.scorer.states,
            {},
            metrics,
            every_s=0.0,
            ack=lambda _: None,
            generation=lambda: 1,
            clock=self.clock,
        )
        self.sink = PostgresSink(conninfo)
        self.runtime = WorkerRuntime(
            self.scorer, self.sink, metrics, checkpointer, checkpoint_s=0.0, clock=self.clock
        )
        self.offsets: dict[int, int] = {}

    def clock(self) -> float:
        return self.now

    async def feed(
        self,
        readings: list[tuple[float, str, str, int]],
        every_s: float,
        lag_s: float = 1.0,
    ) -> None:
        """(ts, entity, source, partition) readings, sorted by time, each batch of
        ``every_s`` of them read and written ``lag_s`` after its last one is due (one
        second; longer for a backlog)."""
        i = 0
        while i < len(readings):
            end = readings[i][0] + every_s
            batch: list[Record] = []
            while i < len(readings) and readings[i][0] < end:
                ts, entity, source, partition = readings[i]
                doc = {"entity": entity, "ts": ts, "source": source, "metrics": {"x": 1.0 + i % 7}}
                offset = self.offsets.get(partition, 0)
                self.offsets[partition] = offset + 1
                batch.append(Record(orjson.dumps(doc), entity.encode(), "r", partition, offset))
                i += 1
            self.now = readings[i - 1][0] + lag_s
            out = self.runtime.score(batch)
            await self.runtime.write(out, all_series=True)

    async def __aenter__(self) -> Worker:
        await self.sink.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sink.close()


def _firing(conninfo: str, uid: str, at: datetime) -> set[tuple[str, ...]]:
    """The alert instances (their labels: the text columns) the rule has at ``at``."""
    text = _rule_sql(uid)
    if text is None:  # not provisioned (the rules before this change had no series rule)
        return set()
    text = expand(text, time_from=at - timedelta(minutes=10), time_to=at, interval_ms=60_000)
    text = text.replace("now()", f"'{at.isoformat()}'::timestamptz")
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(text).fetchall()  # type: ignore[arg-type, unused-ignore]
    return {tuple(v for v in row if isinstance(v, str)) for row in rows}


def _market(days: list[int], minutes: range = range(0, 390)) -> list[tuple[float, str, str, int]]:
    out = []
    for day in days:
        open_ts = (MONDAY + timedelta(days=day, hours=14, minutes=30)).timestamp()
        for m in minutes:
            for name in ("mkt/AAA", "mkt/BBB"):
                out.append((open_ts + 60.0 * m, name, "market", 0))
    return out


async def test_a_market_pages_neither_at_night_nor_at_the_weekend_but_when_it_does_not_open(
    schema: str,
) -> None:
    def at(when: timedelta) -> datetime:
        return MONDAY + when

    async with Worker(schema) as worker:
        await worker.feed(_market([0, 1, 2, 3, 4, 7]), every_s=300.0)
        # the second Tuesday the feed stops at 15:00, half an hour into the session
        await worker.feed(_market([8], range(0, 30)), every_s=300.0)
        assert _firing(schema, SOURCE_RULE, at(timedelta(days=8, hours=15, minutes=5))) == set()
        assert _firing(schema, SOURCE_RULE, at(timedelta(days=8, hours=15, minutes=12))) == {
            ("market",)
        }
        # back at 16:00; the rest of the second week, through Thursday
        await worker.feed(_market([8], range(90, 390)) + _market([9, 10]), every_s=300.0)
        assert _firing(schema, SOURCE_RULE, at(timedelta(days=11, hours=3))) == set()  # Fri 03:00
        await worker.feed(_market([11]), every_s=300.0)
        quiet = [
            timedelta(days=11, hours=21, minutes=10),  # Friday, just after the close
            timedelta(days=12, hours=12),  # Saturday noon: a time of day it trades at
            timedelta(days=13, hours=18),  # Sunday
            timedelta(days=14, hours=14, minutes=25),  # Monday, before the open
            timedelta(days=14, hours=14, minutes=35),  # five minutes into the session
        ]
        for when in quiet:
            assert _firing(schema, SOURCE_RULE, at(when)) == set(), when
            assert _firing(schema, SERIES_RULE, at(when)) == set(), when
        # Monday: the feed does not open. Paged once quiet for 10 of its usual steps (a
        # minute) of the session.
        assert _firing(schema, SOURCE_RULE, at(timedelta(days=14, hours=14, minutes=42))) == {
            ("market",)
        }


def _every(
    entities: list[str], source: str, start: float, end: float, step: float, hours: range
) -> list[tuple[float, str, str, int]]:
    out = []
    t = start
    while t < end:
        hour = datetime.fromtimestamp(t, UTC).hour
        if hour in hours:
            for k, entity in enumerate(entities):
                out.append((t + k * step / len(entities), entity, source, k % 2))
        t += step
    return out


async def test_a_probe_reporting_every_ten_minutes_pages_only_after_ten_intervals(
    schema: str,
) -> None:
    start = MONDAY.timestamp()
    last = start + 3 * 86400.0
    async with Worker(schema) as worker:
        await worker.feed(
            _every(["field/probe-1"], "field", start, last + 1, 600.0, range(24)), every_s=600.0
        )
        between = datetime.fromtimestamp(last + 420.0, UTC)  # 7 minutes since its reading
        assert _firing(schema, SOURCE_RULE, between) == set()
        assert _firing(schema, SOURCE_RULE, between + timedelta(minutes=60)) == set()
        assert _firing(schema, SOURCE_RULE, between + timedelta(minutes=100)) == {("field",)}


async def test_a_fleet_pages_when_it_stops_in_working_hours_and_not_at_night(
    schema: str,
) -> None:
    devices = [f"plant/dev-{k}" for k in range(8)]
    start = MONDAY.timestamp()
    stop = (MONDAY + timedelta(days=8, hours=10)).timestamp()  # the ninth day, 10:00
    readings = _every(devices, "plant", start, stop, 120.0, range(6, 20))
    # dev-3 stops at 09:00 that day while the others report
    dev3_stop = stop - 3600.0
    readings = [r for r in readings if r[1] != "plant/dev-3" or r[0] < dev3_stop]
    async with Worker(schema) as worker:
        night = [r for r in readings if r[0] < stop - 11 * 3600.0]  # through 23:00 the day before
        await worker.feed(night, every_s=120.0)
        night_at = datetime.fromtimestamp(stop - 11 * 3600.0, UTC)  # 23:00: quiet since 20:00
        assert _firing(schema, SOURCE_RULE, night_at) == set()
        assert _firing(schema, SERIES_RULE, night_at) == set()
        await worker.feed([r for r in readings if r[0] >= stop - 11 * 3600.0], every_s=120.0)
        stopped = datetime.fromtimestamp(stop, UTC)
        # one device silent while its fleet reports: the worker's silence episode
        assert _firing(schema, SERIES_RULE, stopped) == {("plant/dev-3", "x")}
        assert _firing(schema, SOURCE_RULE, stopped + timedelta(minutes=2)) == set()
        # the whole fleet quiet at 10:00 on a working day: within minutes
        assert _firing(schema, SOURCE_RULE, stopped + timedelta(minutes=8)) == {("plant",)}


async def test_a_fleet_that_moved_to_a_night_shift_forgets_its_day_hours(schema: str) -> None:
    devices = ["depot/van-1", "depot/van-2"]
    start = MONDAY.timestamp()
    moved = (MONDAY + timedelta(days=8)).timestamp()  # the second Tuesday
    end = (MONDAY + timedelta(days=23, hours=6)).timestamp()  # the fourth Wednesday, 06:00
    day_shift = _every(devices, "depot", start, moved, 300.0, range(6, 20))
    night_shift = _every(devices, "depot", moved, end, 300.0, [*range(20, 24), *range(0, 6)])
    async with Worker(schema) as worker:
        await worker.feed(day_shift + night_shift, every_s=3600.0)
        # two weeks on nights: quiet at noon, at the hours it reported for its first week
        noon = MONDAY + timedelta(days=23, hours=12)
        assert _firing(schema, SOURCE_RULE, noon) == set()
        assert _firing(schema, SOURCE_RULE, noon + timedelta(hours=5)) == set()
        # quiet at 21:00 that evening, an hour into its shift: paged
        assert _firing(schema, SOURCE_RULE, MONDAY + timedelta(days=23, hours=21)) == {("depot",)}


async def test_a_source_seen_for_less_than_a_day_does_not_page_on_its_first_evening(
    schema: str,
) -> None:
    devices = ["shop/till-1", "shop/till-2"]
    first = (MONDAY + timedelta(hours=9)).timestamp()
    async with Worker(schema) as worker:
        await worker.feed(
            _every(devices, "shop", first, first + 8 * 3600.0, 120.0, range(24)), every_s=600.0
        )
        # closed at 17:00 on its first day: its hours are not known yet
        for when in (timedelta(hours=17, minutes=20), timedelta(hours=23), timedelta(days=1)):
            assert _firing(schema, SOURCE_RULE, MONDAY + when) == set(), when
        # the next day it opens at 09:00 and stops at 11:00, in its hours: paged
        second = first + 86400.0
        await worker.feed(
            _every(devices, "shop", second, second + 2 * 3600.0, 120.0, range(24)), every_s=600.0
        )
        at = MONDAY + timedelta(days=1, hours=11, minutes=25)  # 10 of its 2-minute steps
        assert _firing(schema, SOURCE_RULE, at) == {("shop",)}


async def test_a_backlog_read_after_a_long_outage_is_its_sources_sending(schema: str) -> None:
    """The workers were down for two hours while the mill went on sending into Kafka (no
    page meanwhile: ``TsguardNoWorkers`` holds the rule). The first worker back reads the
    backlog two hours behind: what it reads came from the mill, so the mill is not paged
    as stopped while the backlog is caught up (a change that took readings over an hour
    old for a replay, and no sight of their source, paged every source of the fleet)."""
    devices = [f"mill/press-{k}" for k in range(3)]
    start = MONDAY.timestamp()
    down = (MONDAY + timedelta(days=3, hours=10)).timestamp()  # Thursday 10:00
    readings = _every(devices, "mill", start, down + 3600.0, 120.0, range(24))
    async with Worker(schema) as worker:
        await worker.feed([r for r in readings if r[0] < down], every_s=600.0)
        backlog = [r for r in readings if r[0] >= down]
        await worker.feed(backlog, every_s=600.0, lag_s=2 * 3600.0)
    read_last = datetime.fromtimestamp(worker.now, UTC)  # the backlog's last batch
    for minutes in (2, 8):  # within ten of its usual steps (per partition: 11 minutes)
        assert _firing(schema, SOURCE_RULE, read_last + timedelta(minutes=minutes)) == set()
    # and it is paged once quiet that long after the backlog: the rule still speaks
    assert _firing(schema, SOURCE_RULE, read_last + timedelta(minutes=15)) == {("mill",)}
