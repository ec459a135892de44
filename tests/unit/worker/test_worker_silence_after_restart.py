"""Silence of the entities that send nothing more after their worker restarted.

Entities are loaded from the state table when they send a reading, and only live
entities were judged silent: a device that stopped just before a restart, a deploy or a
rebalance was never loaded again, and its silence never opened (review rev66d, live: 500
devices stopped before a restart, 0 silence episodes; 1,000 without the restart).
"""

from __future__ import annotations

import orjson
import pytest

from stream_app.core import EngineConfig
from stream_app.worker import scoring
from stream_app.worker.decode import ReadingDecoder
from stream_app.worker.feed import Record
from stream_app.worker.scoring import ReadingScorer
from stream_app.worker.states import (
    EntityStates,
    Follow,
    compress_blob,
    decompress_blob,
    read_follow,
)

T0 = 1_790_000_000.0
NOW = T0 + 10 * 86400


def _scorer(store: dict[str, bytes]) -> ReadingScorer:
    scorer = ReadingScorer(EntityStates(EngineConfig.default(), store.get), ReadingDecoder())
    scorer.saved_entities = lambda: list(store)
    return scorer


def _reading(entity: str, ts: float, offset: int, value: float, source: str = "fleet") -> Record:
    doc = {"entity": entity, "ts": ts, "metrics": {"m": value}, "source": source}
    return Record(orjson.dumps(doc), entity.encode(), "r", 0, offset)


def _before_the_restart(scorer: ReadingScorer, quiet: str, lag_s: float = 0.0) -> None:
    """``quiet`` and ``busy`` send a reading a minute for 40 minutes; ``quiet``'s come
    ``lag_s`` late (a gateway that forwards them late)."""
    for i in range(40):
        scorer.process([_reading(quiet, T0 + 60 * i - lag_s, i, 20.0 + i % 4)], NOW)
        scorer.process([_reading("busy", T0 + 60 * i, 500 + i, 5.0 + i % 3)], NOW)


def _after(scorer: ReadingScorer, minutes: int, quiet: str) -> list[dict[str, object]]:
    """``busy`` goes on for ``minutes``; the silence events of ``quiet`` meanwhile, each
    with the minute it came in (``minute``)."""
    found: list[dict[str, object]] = []
    for i in range(minutes):
        out = scorer.process([_reading("busy", T0 + 2400 + 60 * i, 1000 + i, 5.0 + i % 3)], NOW)
        events = out.events + scorer.advance(NOW).events
        found += [
            {**e, "minute": i} for e in events if e["entity"] == quiet and e["kind"] == "silence"
        ]
    return found


def _restarted(first: ReadingScorer, store: dict[str, bytes]) -> ReadingScorer:
    for entity in first.states.entities():  # the checkpoint before the restart
        store[entity] = first.states.dump(entity)
    return _scorer(store)


def test_a_device_that_stops_just_before_a_restart_is_found_silent() -> None:
    unbroken = _scorer({})
    _before_the_restart(unbroken, "quiet")
    expected = _after(unbroken, 60, "quiet")
    assert [e["event"] for e in expected] == ["opened"]

    store: dict[str, bytes] = {}
    first = _scorer(store)
    _before_the_restart(first, "quiet")
    restarted = _restarted(first, store)
    found = _after(restarted, 60, "quiet")
    assert [(e["event"], e["minute"]) for e in found] == [("opened", expected[0]["minute"])]
    assert found[0]["started_at"] == expected[0]["started_at"]
    assert restarted.states.is_live("quiet")  # live while its episode is open


def test_an_entity_running_behind_its_clock_keeps_its_distance_after_a_restart() -> None:
    """Its state records how far behind the clock it runs: judged from the clock alone,
    a device whose gateway forwards readings 20 minutes late looked silent at once."""
    unbroken = _scorer({})
    _before_the_restart(unbroken, "late", lag_s=1200.0)
    expected = _after(unbroken, 90, "late")
    store: dict[str, bytes] = {}
    first = _scorer(store)
    _before_the_restart(first, "late", lag_s=1200.0)
    found = _after(_restarted(first, store), 90, "late")
    assert [e["minute"] for e in found] == [e["minute"] for e in expected]
    assert len(found) == 1 and int(str(found[0]["minute"])) > 3


def test_saved_entities_with_nothing_to_watch_stay_in_the_table_only() -> None:
    """A state saved with no clock (by a release before it was recorded), or with its
    silence already open, is looked at once and not kept in memory."""
    store: dict[str, bytes] = {}
    first = _scorer(store)
    _before_the_restart(first, "quiet")
    _after(first, 60, "quiet")  # its silence is open
    restarted = _restarted(first, store)
    store["old"] = compress_blob(decompress_blob(store["quiet"]))  # no clock recorded
    assert read_follow(store["old"]) is None
    assert _after(restarted, 5, "quiet") == []
    assert not restarted.states.is_live("quiet")
    assert not restarted.states.is_live("old")
    assert restarted.states.is_live("busy")


def test_the_scans_spend_a_bounded_time_waking(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan loads saved entities for at most WAKE_BUDGET_S, at most once a WAKE_EVERY_S;
    the rest wait for later scans (100,000 saved entities would otherwise hold the event
    loop 30 s, and a backlog's many scans would spend the worker's time on them)."""
    store: dict[str, bytes] = {}
    first = _scorer(store)
    for n in range(30):
        _before_the_restart(first, f"quiet-{n}")
    restarted = _restarted(first, store)
    ticks = iter(range(10**6))
    monkeypatch.setattr(scoring, "WAKE_EVERY_S", 1.0)
    monkeypatch.setattr(scoring.time, "perf_counter", lambda: next(ticks) * 0.03)
    restarted.process([_reading("busy", T0 + 2400, 2000, 5.0)], NOW)
    restarted.advance(NOW)
    woken = sum(restarted.states.is_live(f"quiet-{n}") for n in range(30))
    assert 0 < woken < 30
    restarted.advance(NOW)  # too soon after: none more
    assert sum(restarted.states.is_live(f"quiet-{n}") for n in range(30)) == woken
    for _ in range(1000):
        restarted.advance(NOW)
    assert all(restarted.states.is_live(f"quiet-{n}") for n in range(30))


def test_a_clock_record_that_does_not_read_is_none() -> None:
    blob = compress_blob(b"\x01\x00a\x00\x00\x00\x00", Follow("src", 2, 3.0))
    assert read_follow(blob) == Follow("src", 2, 3.0)
    for broken in (blob[:-7] + blob[-4:], blob[:10] + blob[-4:], blob + b"TSF1", b"TSF1"):
        assert read_follow(broken) is None
    assert read_follow(compress_blob(b"", Follow("s", -1, 0.0))) is None
    assert read_follow(compress_blob(b"", Follow("s", 0, float("nan")))) is None


# --- forgetting the entities that left -------------------------------------------------

DAY = 86400.0


@pytest.fixture(autouse=True)
def _unpaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scans wake saved entities at most once a second of real time: these runs take
    a month of event time in well under a second."""
    monkeypatch.setattr(scoring, "WAKE_EVERY_S", 0.0)


def _checkpoint(scorer: ReadingScorer, store: dict[str, bytes], touched: set[str]) -> None:
    """What the checkpointer does with the entities a batch changed: each saved, or
    deleted where its dump is empty (forgotten)."""
    for entity in touched:
        blob = scorer.states.dump(entity)
        if blob:
            store[entity] = blob
        else:
            store.pop(entity, None)


def _days_of_busy(
    scorer: ReadingScorer, store: dict[str, bytes], start: float, days: int
) -> list[dict[str, object]]:
    """``busy`` sends a reading an hour for ``days`` from ``start``; the events, each
    batch checkpointed."""
    events: list[dict[str, object]] = []
    for hour in range(24 * days):
        ts = start + 3600.0 * hour
        out = scorer.process([_reading("busy", ts, 10_000 + hour, 5.0 + hour % 3)], ts)
        out.add_judgement(scorer.advance(ts))
        events += out.events
        _checkpoint(scorer, store, {e for _, e in out.touched} | set(scorer.states.entities()))
    return events


def _forgetting_scorer(store: dict[str, bytes]) -> ReadingScorer:
    scorer = _scorer(store)
    scorer.forget_after_s = 30 * DAY
    return scorer


def test_a_device_that_left_is_forgotten_after_a_month_and_its_silence_resolves() -> None:
    """Its silence episode stayed open, its alert fired and its state stayed in the table
    for good (review rev66d: 4,000 departed devices, 4,000 open episodes after retention)."""
    store: dict[str, bytes] = {}
    scorer = _forgetting_scorer(store)
    _before_the_restart(scorer, "gone")
    _checkpoint(scorer, store, set(scorer.states.entities()))
    events = _days_of_busy(scorer, store, T0 + 2400, 33)
    mine = [(e["event"], e["kind"], e["explanation"]) for e in events if e["entity"] == "gone"]
    assert mine[0][:2] == ("opened", "silence")
    assert len(mine) == 2 and mine[1][:2] == ("resolved", "silence")
    assert str(mine[1][2]).startswith("forgotten: no data for 30.")
    assert "gone" not in store and not scorer.states.is_live("gone")
    assert "busy" in store
    # back after all: a new entity, scored from its warm-up
    out = scorer.process([_reading("gone", T0 + 40 * DAY, 99_999, 20.0)], T0 + 40 * DAY)
    assert [row.status for row in out.rows] == ["warmup"]


def test_a_departed_device_not_live_after_a_restart_is_forgotten_too() -> None:
    store: dict[str, bytes] = {}
    first = _forgetting_scorer(store)
    _before_the_restart(first, "gone")
    _checkpoint(first, store, set(first.states.entities()))
    _days_of_busy(first, store, T0 + 2400, 2)  # its silence opens and is saved
    restarted = _forgetting_scorer(store)
    events = _days_of_busy(restarted, store, T0 + 2400 + 2 * DAY, 31)
    mine = [(e["event"], e["explanation"]) for e in events if e["entity"] == "gone"]
    assert len(mine) == 1 and mine[0][0] == "resolved", mine
    assert str(mine[0][1]).startswith("forgotten")
    assert "gone" not in store


def test_nothing_is_forgotten_when_forgetting_is_off_or_the_device_is_watched() -> None:
    store: dict[str, bytes] = {}
    scorer = _scorer(store)  # forget_after_s 0
    _before_the_restart(scorer, "gone")
    _checkpoint(scorer, store, set(scorer.states.entities()))
    events = _days_of_busy(scorer, store, T0 + 2400, 33)
    assert [e["event"] for e in events if e["entity"] == "gone"] == ["opened"]
    assert "gone" in store


def test_a_forgotten_entity_is_not_read_back_from_the_table_before_its_deletion() -> None:
    """Between the scan that forgets it and the checkpoint that deletes it, the table
    still holds its old state: a reading then starts it afresh, and its dump is its new
    state, not the deletion."""
    store: dict[str, bytes] = {}
    states = EntityStates(EngineConfig.default(), store.get)
    scorer = ReadingScorer(states, ReadingDecoder())
    _before_the_restart(scorer, "gone")
    store["gone"] = states.dump("gone")
    states.forget_entity("gone")
    assert states.dump("gone") == b""
    assert states.scored("gone", "m") is None
    assert states.wake("gone") is None
    scorer.process([_reading("gone", T0 + 5000, 77_777, 20.0)], NOW)
    assert states.dump("gone") not in (b"", store["gone"])


def test_a_device_that_reports_every_ten_days_is_not_forgotten_between_reports() -> None:
    """Forgotten after the forget period and 100 of its usual steps: too young to judge
    for months, a slow device was forgotten (and started afresh) at each report."""
    store: dict[str, bytes] = {}
    scorer = _forgetting_scorer(store)
    for i in range(4):
        ts = T0 - 30 * DAY + 10 * DAY * i
        scorer.process([_reading("slow", ts, i, 20.0 + i)], ts)
    scorer.process([_reading("busy", T0, 50, 5.0)], T0)
    _checkpoint(scorer, store, set(scorer.states.entities()))
    events = _days_of_busy(scorer, store, T0 + 3600, 45)
    assert [e for e in events if e["entity"] == "slow"] == []
    assert "slow" in store


def test_a_device_whose_last_readings_are_replayed_after_a_crash_is_found_silent() -> None:
    """After a kill -9 the committed offsets are behind the saved states: the restarted
    worker reads the quiet device's last readings again and skips them as replayed, and
    the skip loaded it live without the clock it follows: neither judged by the scans
    (it followed no clock) nor woken (live), it never got its silence episode (review
    rev66f, live: 450 of 600 episodes after a kill -9; 1,000 of 1,000 with the fix)."""
    store: dict[str, bytes] = {}
    first = _scorer(store)
    _before_the_restart(first, "quiet")
    restarted = _restarted(first, store)
    for i in range(30, 40):  # replayed: its saved state has learned them
        out = restarted.process([_reading("quiet", T0 + 60 * i, i, 20.0 + i % 4)], NOW)
        assert out.replayed == 1
    found = _after(restarted, 60, "quiet")
    assert [e["event"] for e in found] == ["opened"]
