"""Every base behaviour with every anomaly kind, at two sizes: where the default is blind.

The generated families (:mod:`stream_app.offline.families`) inject into each base only
the kinds that suit it (a drift ramp only into a stationary metric, a burst only into
counts), and their anomalies are large. This benchmark crosses them: each of nine base
behaviours (business hours, schedules, a smooth daily cycle, a daily cycle whose noise is
in proportion to its level, a price, bursty counts, a quantised sensor, a stationary
metric, a CPU % that spikes at random) gets each of eleven kinds (spike, level shift,
bump, variance, flat line, drift ramp, dropout; and four shaped after NAB's descriptions
of its series, not its data: spikes that come densely for half a day, a day whose
pattern does not happen, a day that runs hours late, a surge of requests), blended in at
``size`` 1 (as the families inject it) and 0.4 (the same anomaly, 40 % as far from
normal). The two kinds that move a daily pattern go only into the bases that have one.
Each cell is ``--draws`` series of 14 days at 5 minutes with one anomaly after the first
fifth, scored with NAB's windows: tsguard's episode onsets, episode F1 and episodes,
against the rolling z-score with the threshold that suits the cell's series best (an
upper bound for it)::

    python -m benchmarks.kinds_matrix [--draws 6] [--json]

A cell where the z-score scores higher is marked ``<`` in the report, which ends with
the means by kind and by base.

>>> rows = run(1, bases=("stationary",), kinds=("level_shift",), sizes=(1.0,), points=1500)
>>> [(r["base"], r["kind"], r["size"]) for r in rows]
[('stationary', 'level_shift', 1.0)]
>>> [r["kind"] for r in run(1, bases=("stationary",), kinds=("late_day", "surge"), sizes=(1.0,), points=1500)]
['surge']
"""

from __future__ import annotations

import numpy as np

from benchmarks.noise_shapes import Row, draws_cli, onsets_against_zscore
from stream_app.core import EngineConfig
from stream_app.offline import families, nab
from stream_app.offline.evaluate import LabelledSeries

STEP_S = 300.0
POINTS = 4032
DAY = 288  # points a day at 5 minutes
BASES: dict[str, families.Base] = {
    "business_hours": families.business_hours,
    "schedules": families.schedules,
    "seasonal": families.seasonal,
    "cycle_in_proportion": families.cycle_in_proportion,
    "random_walk": families.random_walk,
    "counts": families.counts,
    "quantised": families.quantised,
    "stationary": families.stationary,
    "spiky": families.random_spikes,
}


def spike_density(
    rng: np.random.Generator, x: families.FloatArray, n: int, day: int
) -> tuple[families.FloatArray, slice]:
    """Spikes come at 15 % of the points for half a day to a day, each as large as a
    spike (a machine that starts to fail; what the name of NAB's ``art_increase_spike_density``
    describes).

    >>> x, where = spike_density(np.random.default_rng(1), np.zeros(2000), 2000, 288)
    >>> bool((x[:where.start] == 0).all() and (x[where.stop:] == 0).all())
    True
    >>> 0.05 < float(np.mean(x[where] > 0)) < 0.3
    True
    """
    where = families._span(rng, n, day // 2, day)
    hit = np.nonzero(rng.random(where.stop - where.start) < 0.15)[0] + where.start
    x[hit] += rng.uniform(0.6, 1.2, hit.size) * families._scale(x)
    return x, where


def missed_peak(
    rng: np.random.Generator, x: families.FloatArray, n: int, day: int
) -> tuple[families.FloatArray, slice]:
    """A day whose pattern does not happen: the series stays near that day's low (a
    holiday on a weekday, a job that never ran; what the name of NAB's
    ``art_daily_nojump`` describes), with half the noise, in whole numbers where the series
    is.

    >>> t = np.arange(2000) * 300.0
    >>> x, where = missed_peak(np.random.default_rng(1), np.sin(t / 86400 * 2 * np.pi), 2000, 288)
    >>> where.stop - where.start, bool(np.ptp(x[where]) < 0.5)
    (288, True)
    """
    start = int(rng.integers(int(0.2 * n), n - day - 10))
    where = slice(start, start + day)
    low = float(np.percentile(x[where], 5))
    noise = families._noise(x[where])
    quiet = low + rng.normal(0.0, 0.5 * noise, day)
    whole = bool(np.all(x % 1.0 == 0.0))
    x[where] = np.maximum(np.round(quiet), 0.0) if whole else quiet
    return x, where


def late_day(
    rng: np.random.Generator, x: families.FloatArray, n: int, day: int
) -> tuple[families.FloatArray, slice]:
    """A day whose pattern runs four to eight hours late (a clock or a batch that
    slipped): each of its points repeats the value from that long before.

    >>> x, where = late_day(np.random.default_rng(1), np.arange(2000.0), 2000, 288)
    >>> lag = where.start - int(x[where.start])
    >>> 48 <= lag <= 96 and bool((x[where] == np.arange(where.start, where.stop) - lag).all())
    True
    """
    lag = int(rng.integers(day // 6, day // 3 + 1))
    start = int(rng.integers(max(int(0.2 * n), lag), n - day - 10))
    where = slice(start, start + day)
    x[where] = x[start - lag : start - lag + day].copy()
    return x, where


def surge(
    rng: np.random.Generator, x: families.FloatArray, n: int, day: int
) -> tuple[families.FloatArray, slice]:
    """A surge (a flood of requests, an event): the series rises by one to two times its
    usual range over an hour and stays there for two to six hours in all.

    >>> x, where = surge(np.random.default_rng(1), np.tile([0.0, 1.0], 1000), 2000, 288)
    >>> bool(x[where][12:].min() >= 1.0 and (x[where.stop:] <= 1.0).all())
    True
    """
    where = families._span(rng, n, day // 12, day // 4)
    rise = np.minimum(np.arange(where.stop - where.start) / (day / 24.0), 1.0)
    spread = max(families._spread(x), 1e-9)
    x[where] += rise * rng.uniform(1.0, 2.0) * spread
    return x, where


KINDS: dict[str, families.Inject] = {
    "spike": families.spike,
    "level_shift": families.level_shift,
    "bump": families.bump,
    "variance": families.variance,
    "flatline": families.flatline,
    "drift_ramp": families.drift_ramp,
    "dropout": families.dropout,
    "spike_density": spike_density,
    "missed_peak": missed_peak,
    "late_day": late_day,
    "surge": surge,
}
# kinds that move a daily pattern, and the bases that have none to move
PATTERN_KINDS = frozenset({"missed_peak", "late_day"})
NO_PATTERN = frozenset({"random_walk", "stationary", "spiky"})
SIZES = (0.4, 1.0)


def one_series(base: str, kind: str, size: float, draw: int, points: int) -> LabelledSeries:
    """One draw of a cell: the base behaviour with the anomaly blended in at ``size``."""
    key = [draw, sum(map(ord, base)), sum(map(ord, kind)), round(size * 100)]
    rng = np.random.default_rng(key)
    # a series begins at any 5-minute mark of the week (seconds since a Monday 00:00 UTC)
    t = (int(rng.integers(7 * DAY)) + np.arange(points, dtype=np.float64)) * STEP_S
    normal = BASES[base](rng, t)
    injected, where = KINDS[kind](np.random.default_rng([*key, 1]), normal.copy(), points, DAY)
    values = normal + size * (injected - normal)
    labels = np.zeros(points, dtype=np.int64)
    labels[where] = 1
    name = f"{base}/{kind}/{size:g}/{draw}"
    timestamps = (families.START + t).tolist()
    return LabelledSeries(name, timestamps, values.tolist(), nab.nab_windows(labels))


def run(
    draws: int,
    bases: tuple[str, ...] = tuple(BASES),
    kinds: tuple[str, ...] = tuple(KINDS),
    sizes: tuple[float, ...] = SIZES,
    points: int = POINTS,
) -> list[Row]:
    """One row per cell: tsguard's onset NAB, F1 and episodes, and the z-score's onset NAB."""
    config = EngineConfig.default()
    rows: list[Row] = []
    for base in bases:
        for kind in kinds:
            if kind in PATTERN_KINDS and base in NO_PATTERN:
                continue
            for size in sizes:
                series = [one_series(base, kind, size, d, points) for d in range(1, draws + 1)]
                scored = onsets_against_zscore(series, config)
                rows.append({"base": base, "kind": kind, "size": size, **scored})
    return rows


def _line(r: Row) -> str:
    f1 = r["f1"] if isinstance(r["f1"], float) else 0.0
    behind = "<" if float(str(r["zscore_nab_onsets"])) > float(str(r["nab_onsets"])) else " "
    return (
        f"{r['base']!s:20s} {r['kind']!s:12s} {r['size']:>4}  onsets {r['nab_onsets']:6.2f}"
        f"  F1 {f1:.3f}  episodes {r['episodes']:4d}  z-score {r['zscore_nab_onsets']:6.2f} {behind}"
    )


def _means(rows: list[Row], key: str) -> list[str]:
    """The mean onsets of tsguard and the z-score for each value of ``key``."""
    lines = []
    for value in dict.fromkeys(str(r[key]) for r in rows):
        some = [r for r in rows if str(r[key]) == value]
        ours = np.mean([float(str(r["nab_onsets"])) for r in some])
        theirs = np.mean([float(str(r["zscore_nab_onsets"])) for r in some])
        lines.append(f"  {value:20s} onsets {ours:6.2f}  z-score {theirs:6.2f}")
    return lines


def _report(rows: list[Row]) -> str:
    lines = [_line(r) for r in rows]
    ours = [float(str(r["nab_onsets"])) for r in rows]
    theirs = [float(str(r["zscore_nab_onsets"])) for r in rows]
    behind = sum(z > o for o, z in zip(ours, theirs, strict=True))
    lines += ["by kind:", *_means(rows, "kind"), "by base:", *_means(rows, "base")]
    lines.append(
        f"mean over {len(rows)} cells: onsets {np.mean(ours):.2f}, z-score {np.mean(theirs):.2f};"
        f" cells where the z-score scores higher: {behind}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return draws_cli(argv, __doc__.splitlines()[0], run, _line, _report, draws=6)


if __name__ == "__main__":
    raise SystemExit(main())
