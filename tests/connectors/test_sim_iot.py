"""The IoT fleet simulator: deterministic, realistic enough, and its ground truth is true."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from connectors.simulate import IOT_KINDS, GroundTruth, IoTFleet
from connectors.simulate.run import bounded

SENSORS = ("temperature", "vibration", "pressure", "power", "humidity")


def run(fleet: IoTFleet, ticks: int) -> tuple[list[dict[str, Any]], list[GroundTruth]]:
    readings: list[dict[str, Any]] = []
    truth: list[GroundTruth] = []
    for batch, gt in itertools.islice(fleet.ticks(), ticks):
        readings.extend(batch)
        truth.extend(gt)
    return readings, truth


def by_point(readings: list[dict[str, Any]]) -> dict[tuple[str, float], dict[str, float]]:
    return {(r["entity"], r["ts"]): r["metrics"] for r in readings}


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    a = run(IoTFleet(devices=5, anomaly_rate=0.02, seed=42), 300)
    b = run(IoTFleet(devices=5, anomaly_rate=0.02, seed=42), 300)
    c = run(IoTFleet(devices=5, anomaly_rate=0.02, seed=43), 300)
    assert a == b
    assert a[0] != c[0]


def test_readings_are_schema_valid_in_both_time_formats(
    reading_schema: Draft202012Validator,
) -> None:
    for fmt in ("epoch", "rfc3339"):
        readings, _ = run(IoTFleet(devices=3, anomaly_rate=0.05, seed=1, ts_format=fmt), 50)
        for reading in readings:
            reading_schema.validate(reading)


def test_injected_faults_deviate_from_the_clean_run_and_nothing_else_does() -> None:
    """Normal behaviour and faults use separate random streams, so rate 0 is the same fleet clean."""
    ticks = 2000
    dirty, truth = run(IoTFleet(devices=8, anomaly_rate=0.01, seed=7), ticks)
    clean = by_point(run(IoTFleet(devices=8, anomaly_rate=0.0, seed=7), ticks)[0])
    kinds = Counter(t.kind for t in truth)
    assert set(kinds) == set(IOT_KINDS), kinds  # every kind gets exercised at this size
    sigma = {
        "temperature": 0.35,
        "vibration": 0.0015,
        "pressure": 0.04,
        "power": 0.12,
        "humidity": 0.5,
    }
    value_truth = [
        t for t in truth if t.kind in ("spike", "dip", "level_shift", "stuck", "trend_drift")
    ]
    for reading in dirty:
        key = (reading["entity"], reading["ts"])
        inside = [t for t in value_truth if t.entity == key[0] and t.start <= key[1] <= t.end]
        for metric, value in reading["metrics"].items():
            hits = [t for t in inside if t.metric == metric]
            if not hits and not any(
                t.kind == "variance_burst" and t.covers(key[0], metric, key[1]) for t in truth
            ):
                assert value == clean[key][metric], (key, metric)
            for t in hits:
                gap = value - clean[key][metric]
                if t.kind == "spike":
                    assert gap >= 7 * sigma[metric]
                elif t.kind == "dip":
                    assert gap <= -7 * sigma[metric] or value == 0.0
                elif t.kind == "level_shift":
                    assert abs(gap) >= 4 * sigma[metric]


def test_stuck_repeats_exactly_and_silence_sends_nothing() -> None:
    readings, truth = run(
        IoTFleet(devices=6, anomaly_rate=0.01, seed=3, kinds=["stuck", "silence"]), 1500
    )
    assert {t.kind for t in truth} == {"stuck", "silence"}
    for t in truth:
        inside = [
            r
            for r in readings
            if r["entity"] == t.entity and t.start <= r["ts"] <= t.end and t.metric in r["metrics"]
        ]
        if t.kind == "silence":
            assert inside == [], t
        else:
            assert len({r["metrics"][t.metric] for r in inside}) == 1
            assert len(inside) >= 20 or t.end > readings[-1]["ts"]  # cut by the end of the run
    silenced = {(t.entity, t.start) for t in truth if t.kind == "silence"}
    assert all(
        len([t for t in truth if (t.entity, t.start) == key]) == len(SENSORS) for key in silenced
    )


def test_delivery_faults_reorder_and_duplicate_but_expect_no_episode() -> None:
    readings, truth = run(
        IoTFleet(devices=4, anomaly_rate=0.02, seed=5, kinds=["out_of_order", "duplicate"]), 800
    )
    assert truth and not any(t.expect_episode for t in truth)
    seen = Counter((r["entity"], r["ts"]) for r in readings)
    dupes = {k for k, n in seen.items() if n > 1}
    assert dupes == {(t.entity, t.start) for t in truth if t.kind == "duplicate"}
    late = 0
    last: dict[str, float] = {}
    for r in readings:
        if r["ts"] < last.get(r["entity"], 0.0):
            late += 1
            assert any(
                t.kind == "out_of_order" and t.covers(r["entity"], "*", r["ts"]) for t in truth
            )
        last[r["entity"]] = max(last.get(r["entity"], 0.0), r["ts"])
    assert late > 0


def test_clean_fleet_is_in_time_order_with_correlated_sensors_and_cycles() -> None:
    readings, truth = run(IoTFleet(devices=3, anomaly_rate=0.0, seed=11, interval=60.0), 7 * 1440)
    assert truth == []
    stamps = [r["ts"] for r in readings]
    assert stamps == sorted(stamps)
    one = [r["metrics"] for r in readings if r["entity"] == "site-01/dev-0000"]
    temp = np.array([m["temperature"] for m in one])
    power = np.array([m["power"] for m in one])
    humidity = np.array([m["humidity"] for m in one])
    assert np.corrcoef(temp, power)[0, 1] > 0.8
    assert np.corrcoef(temp, humidity)[0, 1] < -0.8
    hours = (
        np.array([r["ts"] for r in readings if r["entity"] == "site-01/dev-0000"]) % 86400
    ) / 3600
    assert temp[(hours > 14) & (hours < 18)].mean() > temp[(hours > 2) & (hours < 6)].mean() + 10


def test_bounded_cuts_count_exactly_and_drops_truth_after_the_cut() -> None:
    fleet = IoTFleet(devices=7, anomaly_rate=0.05, seed=2)
    out = list(bounded(fleet, count=100, duration=None))
    readings = [r for batch, _ in out for r in batch]
    assert len(readings) == 100
    last = max(r["ts"] for r in readings)
    assert all(t.start <= last for _, gt in out for t in gt)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown anomaly kinds"):
        IoTFleet(kinds=["meteor"])
    with pytest.raises(ValueError):
        IoTFleet(devices=0)
