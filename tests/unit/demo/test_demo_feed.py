"""The demo's feed: the same simulated values whenever it runs, moved to end at "now"."""

from __future__ import annotations

import itertools
import time
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


@pytest.mark.parametrize("now", [WEEKDAY_MORNING, SATURDAY_NIGHT])
def test_live_mode_goes_on_with_the_historys_own_fleet_and_market(now: float) -> None:
    """Live mode continues the history's simulators where they stopped: its ticks are
    those an uninterrupted run gives next (not a new fleet, whose levels jumped)."""
    live = demo.live(now)
    assert [sim.start for sim in live] == [float(int(now))] * 2
    # (a simulator's random state goes on from one `ticks()` to the next: fresh ones each)
    bounded_runs, whole_runs = demo.history(now), demo.history(now)
    for history, whole_run, going_on in zip(bounded_runs, whole_runs, live, strict=True):
        sent = len(list(bounded(history, None, demo.SIM_SPAN_S)))
        whole = list(itertools.islice(whole_run.ticks(), sent + 30))
        assert list(itertools.islice(going_on.ticks(), 30)) == whole[sent:]
    # the fleet's last reading in the history and its first live one: one interval apart
    readings, _ = feed(now)
    (first, _), *_ = itertools.islice(live[0].ticks(), 1)
    last = max(r["ts"] for r in readings if r["source"] == "iot")
    assert 0 < min(r["ts"] for r in first) - last <= demo.DEMO_INTERVAL_S


class Clock:
    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


async def test_simulate_feeds_the_history_then_live_from_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Live mode (seconds <= 0): six hours up to the first reading of the clock, then live."""
    runs: list[tuple[Simulator, float | None, float | None, bool]] = []

    async def run_simulation(
        sim: Simulator,
        settings: object,
        *,
        duration: float | None = None,
        pace: sim_run.Pace,
        truth_file: demo.Tally,
    ) -> RunStats:
        runs.append((sim, duration, pace.speedup, pace.realtime))
        ticks = bounded(sim, None, duration) if duration else itertools.islice(sim.ticks(), 3)
        sent = 0
        for readings, truth in ticks:
            sent += len(readings)
            truth_file.write(truth)
        return RunStats(sent, 0, 0.0)

    monkeypatch.setattr(sim_run, "run_simulation", run_simulation)
    tally = demo.Tally()
    await demo._simulate(load_settings(), 0.0, tally, clock=Clock(SATURDAY_NIGHT))
    history, live = runs[:2], runs[2:]
    assert [(d, s, r) for _, d, s, r in history] == [(demo.SIM_SPAN_S, 120.0, False)] * 2
    assert tally.produced == len(feed(SATURDAY_NIGHT)[0])
    assert [round(sim.start) for sim, *_ in history] == [round(SATURDAY_NIGHT - 6 * 3600)] * 2
    # the fleet and the market go on from where the history stopped, in real time
    assert [(sim.start, d, s, r) for sim, d, s, r in live] == [
        (float(int(SATURDAY_NIGHT)), None, None, True)
    ] * 2


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


async def test_a_realtime_pace_sends_past_ticks_at_once_and_waits_for_future_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(sim_run.asyncio, "sleep", sleep)
    pacer = sim_run.Pacer(sim_run.Pace(realtime=True))
    now = time.time()
    await pacer.wait(now - 180.0, 20)  # caught up: no wait
    await pacer.wait(now + 30.0, 20)  # due in 30 s
    assert len(slept) == 1 and 29.0 < slept[0] <= 30.0
