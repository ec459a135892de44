"""Leave-one-family-out at NAB's label density (``benchmarks/lofo_params.py --nab-density``)."""

from __future__ import annotations

import numpy as np

from benchmarks.lofo_params import DENSITY_CAP, density_factor, onset_nab_at_density
from stream_app.offline.evaluate import DetectorRun, LabelledSeries
from stream_app.offline.quality import detector_metrics


def _series(name: str, n: int, windows: list[tuple[int, int]], opened: list[int]) -> LabelledSeries:
    item = LabelledSeries(name, [60.0 * i for i in range(n)], [0.0] * n, windows)
    flags = np.zeros(n, dtype=bool)
    flags[opened] = True
    item.runs["tsguard"] = DetectorRun(flags.astype(np.float64), flags)
    return item


def test_sparse_windows_leave_the_standard_score_and_dense_ones_make_false_onsets_dear() -> None:
    # one window in 9,000 points: sparser than NAB's, weighed as in NAB standard
    sparse = [_series("a", 10000, [(5000, 5100)], [5010, 8000])]
    assert density_factor(sparse) == 1.0
    assert (
        round(onset_nab_at_density(sparse, 1.0), 3)
        == detector_metrics(sparse, "tsguard")["nab_onsets"]
    )
    # a window every 100 points: capped, and each false onset costs 20 times as much
    dense = [_series("b", 2000, [(i, i + 5) for i in range(400, 2000, 100)], [402, 450, 650])]
    assert density_factor(dense) == DENSITY_CAP
    standard, dear = onset_nab_at_density(dense, 1.0), onset_nab_at_density(dense, DENSITY_CAP)
    assert dear < standard
