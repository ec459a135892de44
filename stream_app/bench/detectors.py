"""``tsguard bench detectors``: per-point throughput of tsguard against River.

All three detectors see the same generated series (daily seasonality, trend,
noise, a few spikes, dips and level shifts) one point at a time on one core:

* ``tsguard``: ``SeriesProcessor.process`` with the default configuration;
* ``river_hst``: MinMaxScaler then HalfSpaceTrees(10, 8, 250), score then learn;
* ``river_sad``: StandardAbsoluteDeviation, ``score_one`` then ``learn_one`` (value as ``y``).

Each is timed with ``time.perf_counter`` over several rounds (the three
detectors interleaved, a fresh model each time) and the median is reported.

>>> data = make_series(1000)
>>> len(data.values), data.timestamps[1] - data.timestamps[0]
(1000, 60.0)
"""

from __future__ import annotations

import gc
import math
import pickle
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_app.build_info import build

if TYPE_CHECKING:
    from stream_app.core import EngineConfig

STEP_S = 60.0
START_TS = 1_764_151_200.0  # 2025-11-26T10:00:00Z
DAY_POINTS = int(86_400 / STEP_S)


@dataclass(frozen=True, slots=True)
class BenchSeries:
    """Plain Python lists, so no detector pays for numpy scalar conversions."""

    timestamps: list[float]
    values: list[float]


def make_series(points: int, seed: int = 7) -> BenchSeries:
    """Seasonal series with noise and injected anomalies, deterministic under ``seed``."""
    rng = np.random.default_rng(seed)
    index = np.arange(points, dtype=np.float64)
    values = (
        50.0
        + 10.0 * np.sin(2 * math.pi * index / DAY_POINTS)
        + 0.0005 * index
        + rng.normal(0.0, 1.5, points)
    )
    for position in rng.choice(points, size=max(1, points // 2000), replace=False):
        kind = rng.integers(3)
        if kind == 0:
            values[position] += rng.choice([-1.0, 1.0]) * rng.uniform(10.0, 30.0)
        elif kind == 1:
            values[position : position + 30] -= rng.uniform(8.0, 15.0)
        else:
            values[position:] += rng.uniform(-6.0, 6.0)
    timestamps = (START_TS + index * STEP_S).tolist()
    return BenchSeries(timestamps, values.tolist())


def time_tsguard(data: BenchSeries, config: EngineConfig) -> tuple[float, int]:
    """Seconds for one pass, and the serialised state size at the end."""
    from stream_app.core import SeriesProcessor

    processor = SeriesProcessor.create(entity="bench/series", metric="value", config=config)
    process = processor.process
    started = time.perf_counter()
    for ts, value in zip(data.timestamps, data.values, strict=True):
        process(ts=ts, value=value)
    elapsed = time.perf_counter() - started
    return elapsed, len(processor.to_bytes())


def time_hst(data: BenchSeries) -> tuple[float, int]:
    from river import anomaly, preprocessing

    # River's methods are untyped: hold the models as Any
    scaler: Any = preprocessing.MinMaxScaler()
    model: Any = anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=42)
    started = time.perf_counter()
    for value in data.values:
        x = {"x": value}
        scaler.learn_one(x)
        scaled = scaler.transform_one(x)
        model.score_one(scaled)
        model.learn_one(scaled)
    elapsed = time.perf_counter() - started
    return elapsed, len(pickle.dumps((scaler, model)))


def time_sad(data: BenchSeries) -> tuple[float, int]:
    from river import anomaly

    model: Any = anomaly.StandardAbsoluteDeviation()
    started = time.perf_counter()
    for value in data.values:
        # a supervised anomaly detector in River: the value is ``y``, ``x`` is ignored
        model.score_one(None, value)
        model.learn_one(None, value)
    elapsed = time.perf_counter() - started
    return elapsed, len(pickle.dumps(model))


def run_bench(
    points: int, repeats: int, config: EngineConfig, on_step: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Measure all three detectors; a JSON-ready dict."""
    data = make_series(points)
    runs: dict[str, Callable[[], tuple[float, int]]] = {
        "tsguard": lambda: time_tsguard(data, config),
        "river_hst": lambda: time_hst(data),
        "river_sad": lambda: time_sad(data),
    }
    # tsguard's points/s depend on the build: the wheel's compiled hot path or the sources
    result: dict[str, Any] = {"build": build(), "points": points, "repetitions": repeats}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    sizes = dict.fromkeys(runs, 0)
    # Interleave the detectors round by round, so that a noisy neighbour on the
    # machine slows all of them alike instead of one detector's whole series.
    for _ in range(repeats):
        for name, run in runs.items():
            if on_step is not None:
                on_step(name)
            gc.collect()  # start every run from the same heap, not the last run's garbage
            elapsed, sizes[name] = run()
            seconds[name].append(elapsed)
    for name, times in seconds.items():
        result[f"{name}_points_per_s"] = round(points / statistics.median(times))
        result[f"{name}_runs_points_per_s"] = [round(points / t) for t in times]
    result["ratio_hst"] = round(
        result["tsguard_points_per_s"] / result["river_hst_points_per_s"], 3
    )
    result["ratio_sad"] = round(
        result["tsguard_points_per_s"] / result["river_sad_points_per_s"], 3
    )
    result["state_bytes_per_series"] = sizes["tsguard"]
    result["river_hst_pickle_bytes"] = sizes["river_hst"]
    result["river_sad_pickle_bytes"] = sizes["river_sad"]
    return result
