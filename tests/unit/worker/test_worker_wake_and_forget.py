"""Review rev66e: waking and forgetting saved entities."""

from __future__ import annotations

import time
from typing import Any

import pytest

from stream_app.worker import scoring
from tests.unit.worker.test_worker_silence_after_restart import (
    T0,
    _before_the_restart,
    _checkpoint,
    _forgetting_scorer,
    _reading,
    _restarted,
    _scorer,
)


@pytest.fixture(autouse=True)
def _unpaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scoring, "WAKE_EVERY_S", 0.0)


def _after_outage(scorer, minutes: int, gap_s: float) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """The whole source is quiet for ``gap_s`` (a feed outage, a market's night), then
    ``busy`` and, a minute later each time, ``quiet`` send again: quiet's silence events."""
    found = []
    start = T0 + 2340 + gap_s
    for i in range(minutes):
        ts = start + 60 * i
        out = scorer.process([_reading("busy", ts, 3000 + i, 5.0 + i % 3)], ts)
        events = out.events + scorer.advance(ts).events
        out = scorer.process([_reading("quiet", ts + 30, 4000 + i, 20.0 + i % 4)], ts + 30)
        events += out.events + scorer.advance(ts + 30).events
        found += [e for e in events if e["entity"] == "quiet" and e["kind"] == "silence"]
    return found


def test_no_silence_for_a_device_back_with_its_source_after_a_restart_in_an_outage() -> None:
    """Without the restart the clock sees the jump (``resumed``) and quiet, back 30 s
    after the source, is not silent. Restarted during the outage, the fresh clock's first
    reading is no jump, and quiet, woken by the scan, was judged silent for the outage."""
    unbroken = _scorer({})
    _before_the_restart(unbroken, "quiet")
    assert _after_outage(unbroken, 10, 3 * 3600.0) == []

    store: dict[str, bytes] = {}
    first = _scorer(store)
    _before_the_restart(first, "quiet")
    restarted = _restarted(first, store)
    assert _after_outage(restarted, 10, 3 * 3600.0) == []


def test_an_entity_whose_source_is_gone_is_not_queued_again_at_each_sweep() -> None:
    """A saved entity whose (source, partition) has no clock here waits in ``_waiting``:
    each hourly sweep appended it again (a source that left: N more entries an hour)."""
    store: dict[str, bytes] = {}
    first = _forgetting_scorer(store)
    _before_the_restart(first, "gone", lag_s=0.0)
    for i in range(60):  # its silence opens: nothing left to watch
        ts = T0 + 2400 + 60 * i
        first.process([_reading("busy", ts, 600 + i, 5.0 + i % 3)], ts)
        first.advance(ts)
    assert not first.states.entity("gone").watched()
    _checkpoint(first, store, set(first.states.entities()))
    # "gone" followed the clock of source "fleet"; after the restart only source "other"
    # sends (the fleet left)
    restarted = _forgetting_scorer(store)
    store.pop("busy")
    for hour in range(48):
        ts = T0 + 3000 + 3600.0 * hour
        restarted.process([_reading("busy2", ts, 9000 + hour, 5.0, source="other")], ts)
        restarted.advance(ts)
    waiting = sum(len(v) for v in restarted._waiting.values())
    assert waiting <= 1, waiting


def test_a_sweep_longer_than_the_sweep_interval_reaches_every_entity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each hourly sweep started over from the table's first entity: when a pass takes
    longer than SWEEP_EVERY_S, the entities at its end were never looked at."""
    store: dict[str, bytes] = {}
    first = _forgetting_scorer(store)
    for n in range(6):
        _before_the_restart(first, f"dev-{n}")
    _checkpoint(first, store, set(first.states.entities()))
    restarted = _forgetting_scorer(store)
    ticks = iter(range(10**7))
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks) * 0.06)
    monkeypatch.setattr(scoring, "SWEEP_EVERY_S", 2 * 3600.0)
    looked: set[str] = set()
    real_wake = restarted.states.wake

    def wake(entity: str, partitions: set[int] | None = None, **kw: Any) -> Any:
        looked.add(entity)
        return real_wake(entity, partitions, **kw)

    restarted.states.wake = wake  # type: ignore[method-assign]
    for hour in range(24 * 3):
        ts = T0 + 2400 + 3600.0 * hour
        restarted.process([_reading("busy", ts, 20_000 + hour, 5.0 + hour % 3)], ts)
        restarted.advance(ts)
    assert {f"dev-{n}" for n in range(6)} <= looked, sorted(looked)


def test_forgotten_entities_leave_the_forgotten_set_once_deleted() -> None:
    """``_forgotten`` only shrank at a reading or a rebalance: a fleet with churn (pods,
    ephemeral ids) kept every forgotten name in memory for the worker's life."""
    store: dict[str, bytes] = {}
    scorer = _forgetting_scorer(store)
    for n in range(5):
        _before_the_restart(scorer, f"pod-{n}")
    _checkpoint(scorer, store, set(scorer.states.entities()))
    for hour in range(24 * 33):
        ts = T0 + 2400 + 3600.0 * hour
        out = scorer.process([_reading("busy", ts, 30_000 + hour, 5.0 + hour % 3)], ts)
        out.add_judgement(scorer.advance(ts))
        touched = {e for _, e in out.touched}
        _checkpoint(scorer, store, touched)
        for entity in touched:
            if entity not in store:
                scorer.states.deleted(entity)  # what Checkpointer.save now reports
    assert not any(f"pod-{n}" in store for n in range(5))
    assert scorer.states._forgotten == set()


def test_a_departed_device_saved_by_an_older_release_is_forgotten_too() -> None:
    """A state saved before the clock was recorded (no trailer) was never woken, so the
    devices that had left before the upgrade (review rev66d's 4,000) stayed for good."""
    from stream_app.worker.states import compress_blob, decompress_blob

    store: dict[str, bytes] = {}
    first = _forgetting_scorer(store)
    _before_the_restart(first, "gone")
    _before_the_restart(first, "left-just-before")
    for i in range(60):  # gone's silence opens (left-just-before sends on): rev66d's case
        ts = T0 + 2400 + 60 * i
        first.process([_reading("left-just-before", ts, 800 + i, 20.0 + i % 4)], ts)
        first.process([_reading("busy", ts, 900 + i, 5.0 + i % 3)], ts)
        first.advance(ts)
    assert not first.states.entity("gone").watched()
    _checkpoint(first, store, set(first.states.entities()))
    for entity in ("gone", "left-just-before", "busy"):  # as the old release saved them
        store[entity] = compress_blob(decompress_blob(store[entity]))
    restarted = _forgetting_scorer(store)
    for hour in range(24 * 33):
        ts = T0 + 6000 + 3600.0 * hour
        out = restarted.process([_reading("busy", ts, 40_000 + hour, 5.0 + hour % 3)], ts)
        out.add_judgement(restarted.advance(ts))
        _checkpoint(restarted, store, {e for _, e in out.touched})
    assert "gone" not in store and "left-just-before" not in store
    assert "busy" in store


async def test_the_checkpointer_reports_a_saved_deletion() -> None:
    from stream_app.metrics import build_metrics
    from stream_app.worker.checkpoint import Checkpointer

    class States:
        def __init__(self) -> None:
            self.gone: list[str] = []

        def dump(self, entity: str) -> bytes:
            return b""

        def deleted(self, entity: str) -> None:
            self.gone.append(entity)

    states = States()
    table = {b"e": b"old"}
    cp = Checkpointer(
        states,
        table,
        build_metrics(),
        every_s=0.0,
        ack=lambda r: None,
        generation=lambda: 0,
    )
    cp.touched([(0, "e")])
    assert await cp.save(await cp.snapshot(0))
    assert table == {} and states.gone == ["e"]


def test_saved_entities_of_a_partition_taken_away_are_not_woken() -> None:
    """Faust's memory store keeps the keys a worker wrote for a partition it lost (it drops
    only those its changelog recovery read): the scans woke them, and with no clock of
    their partition here a watched one stayed live for good, on a clock made for it."""
    from stream_app.worker.states import Follow, compress_blob, decompress_blob

    store: dict[str, bytes] = {}
    first = _scorer(store)
    _before_the_restart(first, "mine")
    _before_the_restart(first, "theirs")
    _checkpoint(first, store, set(first.states.entities()))
    packed = decompress_blob(store["theirs"])
    store["theirs"] = compress_blob(packed, Follow("fleet", 5, 0.0))  # partition 5, gone
    restarted = _scorer(store)
    restarted.partitions = {0}
    for i in range(5):
        ts = T0 + 2400 + 60 * i
        restarted.process([_reading("busy", ts, 7000 + i, 5.0)], ts)
        restarted.advance(ts)
    assert restarted.states.is_live("mine")
    assert not restarted.states.is_live("theirs")
    assert ("fleet", 5) not in restarted.watermarks
    assert not restarted._waiting
