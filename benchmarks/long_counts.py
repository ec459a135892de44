"""Long bursty counts (tweet-like): news bursts are normal, a few big events are not.

Counts at 5 minutes over 55 days (15,840 points, like a month or two of mentions of a
name): a level between 3 and 150 a point that wanders slowly, a daily cycle, weekends
30 % lower, overdispersion (a gamma factor), and on average one normal news burst every
two days (a boost of log-normal size that decays over 10-60 minutes). Each of
``--draws`` series (seeds 1..N) has one to three big events (a boost of 5-20x decaying
over 30 minutes to 3 hours) after its first fifth, labelled at their first point and
scored with NAB's windows: tsguard's episode onsets against the rolling z-score with the
threshold that suits these very series best (an upper bound for it). The same number of
series without big events (seeds 1001..) count tsguard's false episodes a week after
NAB's probation. Each row is one policy: the default, and the budget that does not grow
with the points a series has seen (``budget_growth_max`` 1), in the same run::

    python -m benchmarks.long_counts [--draws 10] [--json]

>>> rows = run(1, points=3000)
>>> [r["policy"] for r in rows], all(0.0 <= r["false_per_week"] < 5.0 for r in rows)
(['default', 'budget not grown'], True)
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from benchmarks.noise_shapes import Row, draws_cli, onsets_and_false_rate, opened_after_probation
from stream_app.core import EngineConfig
from stream_app.offline import nab
from stream_app.offline.evaluate import LabelledSeries

START = 1_767_571_200.0  # 2026-01-05T00:00:00Z, a Monday
STEP_S = 300.0
POINTS = 15_840
POLICIES: tuple[tuple[str, dict[str, float]], ...] = (
    ("default", {}),
    ("budget not grown", {"budget_growth_max": 1.0}),
)
FloatArray = npt.NDArray[np.float64]


def _boost(boost: FloatArray, start: int, size: float, tau: float, span: float) -> None:
    """Add a boost of ``size`` at ``start`` that decays with time constant ``tau`` points."""
    length = min(boost.size - start, int(tau * span))
    boost[start : start + length] += size * np.exp(-np.arange(length) / tau)


def one_series(seed: int, points: int, events: bool) -> tuple[FloatArray, FloatArray, list[int]]:
    """Timestamps, counts and point labels of one series."""
    rng = np.random.default_rng(seed)
    ts = np.asarray(START + STEP_S * np.arange(points), np.float64)
    hours = (ts % 86400.0) / 3600.0
    weekend = ((ts - START) // 86400.0) % 7 >= 5
    level = math.exp(rng.uniform(math.log(3.0), math.log(150.0)))
    wander = np.exp(np.clip(np.cumsum(rng.normal(0.0, 0.003, points)), -0.7, 0.7))
    rate = level * wander * (1.0 + 0.6 * np.sin(2.0 * math.pi * (hours - 10.0) / 24.0))
    rate *= np.where(weekend, 0.7, 1.0)
    boost = np.zeros(points)
    for start in rng.integers(0, points, rng.poisson(0.5 * points / 288.0)):
        _boost(boost, int(start), rng.lognormal(0.0, 0.7), rng.uniform(2.0, 12.0), 6.0)
    labels = [0] * points
    if events:
        for _ in range(int(rng.integers(1, 4))):
            start = int(rng.integers(int(0.2 * points), points - 300))
            _boost(boost, start, rng.uniform(5.0, 20.0), rng.uniform(6.0, 36.0), 4.0)
            labels[start] = 1
    counts = rng.poisson(rate * (1.0 + boost) * rng.gamma(8.0, 1.0 / 8.0, points))
    return ts, counts.astype(np.float64), labels


def _false_per_week(seed: int, points: int, config: EngineConfig) -> tuple[int, float]:
    ts, counts, _ = one_series(seed, points, events=False)
    return opened_after_probation(ts, counts, config, "news", "mentions")


def run(draws: int, points: int = POINTS) -> list[Row]:
    series = []
    for seed in range(1, draws + 1):
        ts, counts, labels = one_series(seed, points, events=True)
        windows = nab.nab_windows(labels)
        series.append(LabelledSeries(f"news/{seed}", ts.tolist(), counts.tolist(), windows))
    rows: list[Row] = []
    for name, policy in POLICIES:
        config = EngineConfig.from_mapping({"defaults": {"policy": policy}})
        free = [_false_per_week(1000 + seed, points, config) for seed in range(1, draws + 1)]
        scored = onsets_and_false_rate(series, config, free)
        rows.append({"policy": name, "series": draws, **scored})
    return rows


def _line(r: Row) -> str:
    return (
        f"{r['policy']!s:17s} onsets {r['nab_onsets']:6.2f}  F1 {r['f1']:.3f}"
        f"  episodes {r['episodes']:4d}  z-score (its best threshold) {r['zscore_nab_onsets']:6.2f}"
        f"  without big events: {r['false_per_week']:.2f} false episodes a week"
    )


def main(argv: list[str] | None = None) -> int:
    return draws_cli(argv, __doc__.splitlines()[0], run, _line)


if __name__ == "__main__":
    raise SystemExit(main())
