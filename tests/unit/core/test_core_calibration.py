"""Calibrated scores: in [0, 1], few alarms on pure noise, comparable across scales."""

from __future__ import annotations

import numpy as np
import pytest

from stream_app.core import EngineConfig, SeriesProcessor, TailCalibrator


def scores_of(values: np.ndarray, step: float = 60.0) -> list[float]:
    """The default detector's calibrated scores (the published score ranks episode onsets
    and near onsets above them: see the policy), after its first 500 points."""
    proc = SeriesProcessor.create("noise", "x", EngineConfig.default())
    out = []
    for i, v in enumerate(values.tolist()):
        out.append(proc.detector.update(step * i, v)[0])
    return out[500:]


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e6])
def test_pure_noise_rarely_crosses_the_threshold(scale: float) -> None:
    rng = np.random.default_rng(11)
    scores = scores_of(rng.normal(100.0 * scale, scale, 20_000))
    assert all(0.0 <= s <= 1.0 for s in scores)
    above = sum(s >= 0.999 for s in scores) / len(scores)
    assert above < 0.005


def test_heavy_tailed_noise_is_also_calibrated() -> None:
    rng = np.random.default_rng(12)
    scores = scores_of(rng.standard_t(3, 20_000))
    assert sum(s >= 0.999 for s in scores) / len(scores) < 0.01


def test_calibrator_adapts_and_stays_in_range() -> None:
    cal = TailCalibrator()
    rng = np.random.default_rng(13)
    draws = np.abs(rng.normal(0, 10.0, 50_000))  # ten times wider than the prior
    scores = [cal.score_learn(float(a)) for a in draws]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert 15.0 < cal.q_lo < 18.0 and 23.0 < cal.q_hi < 29.0
    tail = sum(s >= 0.999 for s in scores[10_000:]) / 40_000
    assert tail < 0.003
