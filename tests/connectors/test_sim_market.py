"""The market simulator: deterministic, quiet when closed, and its ground truth is true."""

from __future__ import annotations

import bisect
import itertools
import math
from typing import Any

from jsonschema import Draft202012Validator

from connectors.simulate import MARKET_KINDS, GroundTruth, MarketSim
from connectors.simulate.base import weekday


def run(sim: MarketSim, ticks: int) -> tuple[list[dict[str, Any]], list[GroundTruth]]:
    readings: list[dict[str, Any]] = []
    truth: list[GroundTruth] = []
    for batch, gt in itertools.islice(sim.ticks(), ticks):
        readings.extend(batch)
        truth.extend(gt)
    return readings, truth


def is_open(ts: float) -> bool:
    seconds = ts % 86_400
    return weekday(ts) < 5 and 9.5 * 3600 <= seconds < 16 * 3600 + 1


def test_deterministic_and_schema_valid(reading_schema: Draft202012Validator) -> None:
    a = run(MarketSim(instruments=3, anomaly_rate=0.01, seed=9), 2000)
    assert a == run(MarketSim(instruments=3, anomaly_rate=0.01, seed=9), 2000)
    assert a[0] != run(MarketSim(instruments=3, anomaly_rate=0.01, seed=10), 2000)[0]
    for reading in a[0][:500]:
        reading_schema.validate(reading)


def test_closed_market_sends_nothing_and_is_never_labelled() -> None:
    """Six sessions (Mon..Mon) at 10 s: nights and the weekend are gaps, not silence."""
    readings, truth = run(
        MarketSim(instruments=2, anomaly_rate=0.005, seed=1, interval=10.0), 6 * 2340
    )
    assert all(is_open(r["ts"]) for r in readings)
    days = {math.floor(r["ts"] / 86_400) for r in readings}
    assert len(days) == 6 and any(weekday(d * 86_400) == 0 for d in days)  # crossed a weekend
    assert truth and {t.kind for t in truth} <= set(MARKET_KINDS)
    assert all(
        is_open(t.start)
        and is_open(t.end)
        and math.floor(t.start / 86_400) == math.floor(t.end / 86_400)
        for t in truth
    )


def test_faults_show_in_the_values() -> None:
    ticks = 4680  # one session at 5 s
    dirty, truth = run(MarketSim(instruments=4, anomaly_rate=0.005, seed=4, interval=5.0), ticks)
    clean_run = run(MarketSim(instruments=4, anomaly_rate=0.0, seed=4, interval=5.0), ticks)[0]
    clean = {(r["entity"], r["ts"]): r["metrics"] for r in clean_run}
    assert {t.kind for t in truth} == set(MARKET_KINDS)
    index = {(r["entity"], r["ts"]): r["metrics"] for r in dirty}
    stamps: dict[str, list[float]] = {}
    for r in dirty:
        stamps.setdefault(r["entity"], []).append(r["ts"])
    for t in truth:
        series = stamps[t.entity]
        lo, hi = bisect.bisect_left(series, t.start), bisect.bisect_right(series, t.end)
        window = [index[(t.entity, ts)] for ts in series[lo:hi]]
        base = [clean[(t.entity, ts)] for ts in series[lo:hi]]
        before = series[lo - 1]
        if t.kind == "volume_spike":
            assert all(w["volume"] >= 7 * b["volume"] for w, b in zip(window, base, strict=True))
        elif t.kind == "spread_widening" or (t.kind == "flash_crash" and t.metric == "spread"):
            assert all(
                w["spread"] >= 4 * b["spread"] - 0.01 for w, b in zip(window, base, strict=True)
            )
        elif t.kind == "flash_crash" and t.metric == "price":
            # earlier jumps moved this price for good: compare with the ratio just before
            ratio = index[(t.entity, before)]["price"] / clean[(t.entity, before)]["price"]
            trough = min(w["price"] / b["price"] for w, b in zip(window, base, strict=True)) / ratio
            assert trough < 0.96  # fell at least 4 % below where it would have been
        elif t.kind == "jump":
            assert abs(math.log(window[0]["price"] / index[(t.entity, before)]["price"])) > 0.015
