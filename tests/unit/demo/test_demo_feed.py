"""The demo's feed: the same simulated values whenever it runs, moved to end at "now"."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

import connectors.simulate.run as sim_run
from connectors.simulate import GroundTruth, IoTFleet, Shifted
from connectors.simulate.base import Simulator
from connectors.simulate.run import RunStats, bounded
from stream_app import demo
from stream_app.settings import load_settings

WEEKDAY_MORNING = datetime(2026, 3, 4, 8, 10, 7, 250_000, tzinfo=UTC).timestamp()  # Wednesday
SATURDAY_NIGHT = datetime(2026, 3, 7, 22, 47, 33, tzinfo=UTC).timestamp()


def feed(now: float) -> tuple[list[dict[str, Any]], list[GroundTruth]]:
    """Everything the bounded demo sends, simulator after simulator."""
    readings: list[dict[str, Any]] = []
    truth: list[GroundTruth] = []
    for sim in demo.history(now):
        for batch, gt in bounded(sim, None, demo.SIM_SPAN_S):
            readings.extend(batch)
            truth.extend(gt)
    return readings, truth


def without_ts(readings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "ts"} for r in readings]


def test_the_same_values_in_the_same_order_at_any_hour_and_weekday() -> None:
    morning, saturday = feed(WEEKDAY_MORNING), feed(SATURDAY_NIGHT)
    assert without_ts(morning[0]) == without_ts(saturday[0])
    by = demo.demo_shift(SATURDAY_NIGHT) - demo.demo_shift(WEEKDAY_MORNING)
    assert by == 3 * 86_400 + 52_646  # Wednesday 08:10:07.25 to Saturday 22:47:33, whole seconds
    assert [round(r["ts"] + by, 3) for r in morning[0]] == [r["ts"] for r in saturday[0]]
    moved = [(t.entity, t.metric, t.kind, round(t.start + by, 3)) for t in morning[1]]
    assert moved == [(t.entity, t.metric, t.kind, t.start) for t in saturday[1]]


@pytest.mark.parametrize("now", [WEEKDAY_MORNING, SATURDAY_NIGHT])
def test_the_market_opens_inside_the_span_and_injects_faults(now: float) -> None:
    readings, truth = feed(now)
    market = [r["ts"] for r in readings if r["source"] == "market"]
    start = now - demo.SIM_SPAN_S
    # an hour closed, then the open and five hours of the session
    assert min(market) == pytest.approx(start + 3600.0, abs=1.0)
    assert max(market) > now - 60.0
    assert len(market) == 5 * 600  # 5 instruments, 600 quotes of 30 s
    assert {t.source for t in truth} == {"iot", "market"}
    assert sum(t.source == "market" and t.metric == "price" for t in truth) == 2  # two jumps


@pytest.mark.parametrize("now", [WEEKDAY_MORNING, SATURDAY_NIGHT])
def test_timestamps_end_within_one_interval_of_now(now: float) -> None:
    readings, truth = feed(now)
    stamps = [r["ts"] for r in readings]
    assert now - demo.SIM_SPAN_S - 1.0 < min(stamps)
    assert now - demo.DEMO_INTERVAL_S < max(stamps) <= now
    # a fault may outlast the span (its readings are cut), none starts after it
    assert all(now - demo.SIM_SPAN_S - 1.0 < t.start <= now for t in truth)


def test_the_live_fleet_goes_on_on_the_history_clock() -> None:
    """Live readings start at the wall clock; their values depend only on the time since."""
    a = demo.live(WEEKDAY_MORNING + 200.0, demo.demo_shift(WEEKDAY_MORNING))
    b = demo.live(SATURDAY_NIGHT + 200.0, demo.demo_shift(SATURDAY_NIGHT))
    (first_a, _), (first_b, _) = next(a.ticks()), next(b.ticks())
    assert first_a[0]["ts"] == pytest.approx(WEEKDAY_MORNING + 200.0, abs=1e-3)
    assert first_b[0]["ts"] == pytest.approx(SATURDAY_NIGHT + 200.0, abs=1e-3)
    assert without_ts(first_a) == without_ts(first_b)


class Clock:
    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


async def test_simulate_feeds_the_history_then_live_from_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Live mode (seconds <= 0): six hours up to the first reading of the clock, then live."""
    runs: list[tuple[Simulator, float | None, float | None]] = []

    async def run_simulation(
        sim: Simulator,
        settings: object,
        *,
        duration: float | None = None,
        pace: sim_run.Pace,
        truth_file: demo.Tally,
    ) -> RunStats:
        runs.append((sim, duration, pace.speedup))
        ticks = bounded(sim, None, duration) if duration else itertools.islice(sim.ticks(), 3)
        sent = 0
        for readings, truth in ticks:
            sent += len(readings)
            truth_file.write(truth)
        return RunStats(sent, 0, 0.0)

    monkeypatch.setattr(sim_run, "run_simulation", run_simulation)
    tally = demo.Tally()
    later = SATURDAY_NIGHT + 180.5
    await demo._simulate(load_settings(), 0.0, tally, clock=Clock(SATURDAY_NIGHT, later))
    history, live = runs[:2], runs[2]
    assert [(d, s) for _, d, s in history] == [(demo.SIM_SPAN_S, 120.0)] * 2
    assert tally.produced == len(feed(SATURDAY_NIGHT)[0])
    assert [round(sim.start) for sim, _, _ in history] == [round(SATURDAY_NIGHT - 6 * 3600)] * 2
    sim, duration, speedup = live
    assert (duration, speedup) == (None, 1.0)
    assert sim.start == pytest.approx(later, abs=1e-6)


def test_shifted_moves_readings_and_truth_alike_in_either_timestamp_format() -> None:
    def fleet(fmt: str) -> IoTFleet:
        return IoTFleet(devices=4, anomaly_rate=0.05, seed=5, ts_format=fmt)

    plain = list(itertools.islice(fleet("epoch").ticks(), 200))
    moved = list(itertools.islice(Shifted(fleet("epoch"), 86_400.5).ticks(), 200))
    text = list(itertools.islice(Shifted(fleet("rfc3339"), 86_400.5).ticks(), 200))
    assert Shifted(fleet("epoch"), 86_400.5).start == fleet("epoch").start + 86_400.5
    truth = [t for _, gt in plain for t in gt]
    assert truth  # faults were injected
    assert [t for _, gt in moved for t in gt] == [
        GroundTruth(t.entity, t.metric, t.kind, t.start + 86_400.5, t.end + 86_400.5,
                    t.expect_episode, t.source)
        for t in truth
    ]  # fmt: skip
    for (a, _), (b, _), (c, _) in zip(plain, moved, text, strict=True):
        assert without_ts(a) == without_ts(b) == without_ts(c)
        assert [round(r["ts"] + 86_400.5, 3) for r in a] == [r["ts"] for r in b]
        assert all(isinstance(r["ts"], str) and r["ts"].endswith("Z") for r in c)
    assert text[0][0][0]["ts"] == "2026-01-06T00:00:00.500Z"
