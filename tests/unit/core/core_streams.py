"""Generated, seeded test streams (no files)."""

from __future__ import annotations

import math

import numpy as np

from stream_app.core import EngineConfig
from stream_app.core.detectors import REGISTRY


def config_for(name: str) -> EngineConfig:
    """Every series on detector ``name`` with its small test parameters."""
    spec = REGISTRY.spec(name)
    return EngineConfig.from_mapping(
        {"seed": 7, "defaults": {"detector": name, "params": dict(spec.test_params)}}
    )


def labelled_stream(
    seed: int, n: int = 3000, step: float = 300.0
) -> tuple[list[float], list[float], list[int]]:
    """Daily-seasonal noisy series with injected spikes and temporary level shifts.

    Every 150 points from point 400 on: two spikes in three, else a shift of
    the level lasting 30 points. Labels are 1 on a spike and on the first 3
    points of a shift.
    """
    rng = np.random.default_rng(seed)
    ts = [1_700_000_000.0 + step * i for i in range(n)]
    base = [10.0 + 1.5 * math.sin(2 * math.pi * t / 86400.0) for t in ts]
    values = (np.array(base) + rng.normal(0.0, 0.5, n)).tolist()
    labels = [0] * n
    for k, i in enumerate(range(400, n, 150)):
        sign = float(rng.choice([-1.0, 1.0]))
        if k % 3 == 2:
            for j in range(i, min(i + 30, n)):
                values[j] += sign * 5.0
            for j in range(i, min(i + 3, n)):
                labels[j] = 1
        else:
            values[i] += sign * rng.uniform(4.0, 7.0)
            labels[i] = 1
    return ts, values, labels


def auc(scores: list[float], labels: list[int]) -> float:
    """Area under the ROC curve (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = np.sort(np.array([s for s, y in zip(scores, labels, strict=True) if not y]))
    total = 0.0
    for s in pos:
        below = np.searchsorted(neg, s, side="left")
        equal = np.searchsorted(neg, s, side="right") - below
        total += below + 0.5 * equal
    return total / (len(pos) * len(neg))


def bursty_noise(size: float, weeks: int = 8, share: float = 0.007, seed: int = 3) -> np.ndarray:
    """``weeks`` of noise around 20 (sd 1) at 5-minute steps, ``share`` of its points
    ``size`` sigma high: bursts that are the series' normal behaviour."""
    rng = np.random.default_rng(seed)
    n = weeks * 2016
    values = 20.0 + rng.normal(0.0, 1.0, n)
    values[rng.random(n) < share] += size
    return values


def value_openings(config: EngineConfig, values: list[float], start: float) -> list[int]:
    """The points of ``values`` (5-minute steps from ``start``) where a value episode opened."""
    from stream_app.core import SeriesProcessor

    proc = SeriesProcessor.create("e", "m", config)
    opened = []
    for i, value in enumerate(values):
        _, events = proc.process(start + 300.0 * i, value)
        if any(e.event == "opened" and e.kind == "value" for e in events):
            opened.append(i)
    return opened
