"""Every base behaviour with every anomaly kind, at two sizes: where the default is blind.

The generated families (:mod:`stream_app.offline.families`) inject into each base only
the kinds that suit it (a drift ramp only into a stationary metric, a burst only into
counts), and their anomalies are large. This benchmark crosses them: each of eight base
behaviours (business hours, schedules, a smooth daily cycle, a daily cycle whose noise is
in proportion to its level, a price, bursty counts, a quantised sensor, a stationary
metric) gets each of seven kinds (spike, level shift, bump, variance, flat line, drift
ramp, dropout), blended in at ``size`` 1 (as the families inject it) and 0.4 (the same
anomaly, 40 % as far from normal). Each cell is ``--draws`` series of 14 days at 5
minutes with one anomaly after the first fifth, scored with NAB's windows: tsguard's
episode onsets, episode F1 and episodes, against the rolling z-score with the threshold
that suits the cell's series best (an upper bound for it)::

    python -m benchmarks.kinds_matrix [--draws 6] [--json]

A cell where the z-score scores higher is marked ``<`` in the report, which ends with
the means by kind and by base.

>>> rows = run(1, bases=("stationary",), kinds=("level_shift",), sizes=(1.0,), points=1500)
>>> [(r["base"], r["kind"], r["size"]) for r in rows]
[('stationary', 'level_shift', 1.0)]
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
}
KINDS: dict[str, families.Inject] = {
    "spike": families.spike,
    "level_shift": families.level_shift,
    "bump": families.bump,
    "variance": families.variance,
    "flatline": families.flatline,
    "drift_ramp": families.drift_ramp,
    "dropout": families.dropout,
}
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
