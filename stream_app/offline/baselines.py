"""Reference detectors that ``tsguard evaluate`` scores beside tsguard.

* ``river_hst``: River's HalfSpaceTrees at its default size (10 trees, height 8,
  window 250) behind a MinMaxScaler, scored then learned one point at a time.
* ``zscore``: ``|x - mean| / std`` over the previous 500 points, mapped to
  [0, 1] as ``|z| / (|z| + 3)`` so that 0.5 means three standard deviations.

Both see only the past: the score of a point never depends on later points.
Non-finite or missing values get score 0 and are not learned.

>>> round(float(zscore_scores([1.0, 2.0] * 10 + [50.0], min_points=10)[-1]), 3)
0.97
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

HST_TREES = 10
HST_HEIGHT = 8
HST_WINDOW = 250
ZSCORE_WINDOW = 500
ZSCORE_MIN_POINTS = 30
ZSCORE_SIGMAS = 3.0
# values in a chunk's window matrix (rows x window): 4 MB of float64 for each of the few
# arrays made from it. Rows of 8,192 (whatever the window) made 33 MB arrays, 137 MB at
# once, which was most of what `evaluate` held beyond its imports. Each row is summed
# alone, so a chunk's size does not change a score.
_CHUNK_VALUES = 1 << 19


def hst_scores(values: Sequence[float | None], seed: int = 42) -> FloatArray:
    """Scores of River HalfSpaceTrees (10/8/250) with a MinMaxScaler, point by point."""
    from river import anomaly, preprocessing

    # River's methods are untyped: hold the models as Any
    scaler: Any = preprocessing.MinMaxScaler()
    model: Any = anomaly.HalfSpaceTrees(
        n_trees=HST_TREES, height=HST_HEIGHT, window_size=HST_WINDOW, seed=seed
    )
    scores = np.zeros(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        if value is None or not math.isfinite(value):
            continue
        x = {"x": value}
        scaler.learn_one(x)
        scaled = scaler.transform_one(x)
        scores[i] = model.score_one(scaled)
        model.learn_one(scaled)
    return scores


def zscore_scores(
    values: Sequence[float | None] | FloatArray,
    window: int = ZSCORE_WINDOW,
    min_points: int = ZSCORE_MIN_POINTS,
) -> FloatArray:
    """Rolling z-score of each point against the ``window`` points before it.

    Missing and non-finite values are skipped (score 0, not part of any window).
    A flat window scores 0 for an equal value and 1 for any other.
    """
    raw = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(raw))
    scores = np.zeros(len(raw), dtype=np.float64)
    series = raw[finite]
    padded = np.concatenate((np.full(window, np.nan), series))
    rows = max(1, _CHUNK_VALUES // window)
    for start in range(0, len(series), rows):
        stop = min(start + rows, len(series))
        # row j holds the `window` values before series[start + j]
        past = np.lib.stride_tricks.sliding_window_view(padded[start : stop + window - 1], window)
        present = np.isfinite(past)
        count = present.sum(axis=1)
        filled = np.where(present, past, 0.0)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            mean = filled.sum(axis=1) / np.maximum(count, 1)
            centred = np.where(present, past - mean[:, None], 0.0)
            std = np.sqrt((centred**2).sum(axis=1) / np.maximum(count, 1))
            deviation = np.abs(series[start:stop] - mean)
            z = np.where(std > 0, deviation / std, np.where(deviation > 0, np.inf, 0.0))
            chunk = np.where(np.isinf(z), 1.0, z / (z + ZSCORE_SIGMAS))
        chunk[count < min_points] = 0.0
        scores[finite[start:stop]] = chunk
    return scores
