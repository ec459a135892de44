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
