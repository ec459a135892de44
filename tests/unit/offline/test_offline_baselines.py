"""The z-score baseline of ``tsguard evaluate``: the same scores whatever the size of the
chunks it is computed in (its chunk was cut from 8,192 rows to about 1,000, for memory)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream_app.offline import baselines

ODD = (None, math.nan, math.inf, 1e300)


def _values(n: int, seed: int, odd: tuple[float | None, ...] = ODD) -> list[float | None]:
    rng = np.random.default_rng(seed)
    values: list[float | None] = [float(v) for v in rng.normal(10.0, 3.0, size=n)]
    for k, i in enumerate(rng.integers(0, n, size=n // 40)):
        values[int(i)] = odd[k % len(odd)]
    values[n // 3 : n // 3 + 700] = [4.0] * 700  # a flat stretch longer than the window
    return values


@pytest.mark.parametrize("window", [1, 7, 500, 2_000])
def test_zscore_scores_do_not_depend_on_the_chunk_size(
    window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = _values(5_000, seed=window)
    whole = baselines.zscore_scores(values, window=window, min_points=1)
    for chunk_values in (1, window * 3 + 1, 1 << 14):
        monkeypatch.setattr(baselines, "_CHUNK_VALUES", chunk_values)
        chunked = baselines.zscore_scores(values, window=window, min_points=1)
        assert chunked.tobytes() == whole.tobytes(), chunk_values


def test_zscore_scores_are_the_z_of_each_point_against_the_window_before_it() -> None:
    values = _values(1_200, seed=3, odd=(None, math.nan, math.inf))
    scores = baselines.zscore_scores(values, window=50, min_points=30)
    finite = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    for k, (i, value) in enumerate(finite):
        past = np.array([v for _, v in finite[max(0, k - 50) : k]])
        if len(past) < 30:
            assert scores[i] == 0.0
            continue
        mean, std = past.mean(), past.std()
        deviation = abs(value - mean)
        z = deviation / std if std > 0 else (math.inf if deviation > 0 else 0.0)
        assert scores[i] == pytest.approx(1.0 if math.isinf(z) else z / (z + 3.0), abs=1e-9)
