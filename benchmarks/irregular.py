"""Readings at irregular times: a shift among key-hold times, and the budget per unit of time.

Key-hold times (seconds, gamma noise around 0.25) read as the keys are pressed: the
intervals are log-normal around a median of 5 minutes with ``sigma`` 0 (a regular
grid), 0.5, 1, 1.5 (seconds to hours; the mean is ``exp(sigma**2 / 2)`` times the
median). Each of ``--draws`` series (4,000 readings, seeds 1..N) has two shifts of
2-3x lasting 30-100 readings, labelled at their first reading and scored with NAB's
windows: tsguard's episode onsets against the rolling z-score with the threshold that
suits these very series best (an upper bound for it). The same number of anomaly-free
series (seeds 1001..) count the false episodes a week after NAB's probation, against
the budget of one::

    python -m benchmarks.irregular [--draws 30] [--json]

>>> row = run(1, sigmas=(1.0,))[0]
>>> row["sigma"], row["series"], 0.0 <= row["false_per_week"] < 3.0
(1.0, 1, True)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from benchmarks.noise_shapes import Row, draws_cli, onsets_and_false_rate, opened_after_probation
from stream_app.core import EngineConfig
from stream_app.offline import nab
from stream_app.offline.evaluate import LabelledSeries
from stream_app.offline.families import key_holds

START = 1_767_571_200.0  # 2026-01-05T00:00:00Z
MEDIAN_S = 300.0
POINTS = 4000
SIGMAS = (0.0, 0.5, 1.0, 1.5)
FloatArray = npt.NDArray[np.float64]


def one_series(seed: int, sigma: float, shifts: bool) -> tuple[FloatArray, FloatArray, list[int]]:
    """Timestamps, hold times and point labels of one series."""
    rng = np.random.default_rng(seed)
    times, holds = key_holds(rng, POINTS, MEDIAN_S, sigma)
    ts = START + times
    labels = [0] * POINTS
    if shifts:
        third = int(0.35 * POINTS)
        for k in range(2):
            lo = int(0.25 * POINTS) + k * third
            start = int(rng.integers(lo, lo + third - 100))
            holds[start : start + int(rng.integers(30, 100))] *= rng.uniform(2.0, 3.0)
            labels[start] = 1
    return ts, holds, labels


def _false_per_week(seed: int, sigma: float) -> tuple[int, float]:
    ts, holds, _ = one_series(seed, sigma, shifts=False)
    return opened_after_probation(ts, holds, EngineConfig.default(), "kbd", "key_hold_s")


def run(draws: int, sigmas: tuple[float, ...] = SIGMAS) -> list[Row]:
    rows: list[Row] = []
    for sigma in sigmas:
        series = []
        for seed in range(1, draws + 1):
            ts, holds, labels = one_series(seed, sigma, shifts=True)
            windows = nab.nab_windows(labels)
            series.append(LabelledSeries(f"keys/{seed}", ts.tolist(), holds.tolist(), windows))
        free = [_false_per_week(1000 + seed, sigma) for seed in range(1, draws + 1)]
        scored = onsets_and_false_rate(series, EngineConfig(), free)
        rows.append({"sigma": sigma, "series": draws, **scored})
    return rows


def _line(r: Row) -> str:
    return (
        f"interval sigma {r['sigma']:<4} onsets {r['nab_onsets']:6.2f}  F1 {r['f1']:.3f}"
        f"  z-score (its best threshold) {r['zscore_nab_onsets']:6.2f}"
        f"  anomaly-free: {r['false_per_week']:.2f} false episodes a week (budget 1)"
    )


def main(argv: list[str] | None = None) -> int:
    return draws_cli(argv, __doc__.splitlines()[0], run, _line)


if __name__ == "__main__":
    raise SystemExit(main())
