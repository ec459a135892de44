"""Detection quality per family, leave-one-family-out: the harness behind RESULTS.md.

    .venv/bin/python benchmarks/quality.py [--dev ../shared/datasets/anomaly-dev]
        [--config rules.yaml] [--per-family 6] [--json out.json]

Families: the development set's collections (each ``msft-cloud-monitoring/<kind>``,
``skab/<group>``, ``tcpd``) and the generated families of
:mod:`stream_app.offline.families` (anomaly-free ones included). For each family
it prints tsguard, rolling z-score and River HST side by side: NAB standard on
swept scores (the threshold chosen on the *other* families: leave-one-family-out),
NAB standard on episode onsets, onset-episode F1, time in episodes outside every
window, and false episodes per 10k points on anomaly-free families.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_app.offline import baselines
from stream_app.offline.evaluate import (
    DetectorRun,
    LabelledSeries,
    choose_decision_threshold,
    generated_dataset,
    load_dataset,
    run_tsguard,
)
from stream_app.offline.families import SAMPLINGS
from stream_app.offline.quality import family_of, family_report, lofo_nab
from stream_app.offline.replay import load_config
from stream_app.offline.windows import index_windows

CACHE = Path.home() / ".cache" / "tsguard" / "baselines"
# a coarsened series needs this many buckets (SKAB's 1-second runs of about 18 minutes
# would leave a handful)
COARSE_MIN_POINTS = 1000


def _cached(kind: str, item: LabelledSeries) -> npt.NDArray[np.float64]:
    values = np.array([np.nan if v is None else v for v in item.values])
    key = hashlib.sha1(kind.encode() + values.tobytes()).hexdigest()
    path = CACHE / f"{key}.npy"
    if path.exists():
        return np.asarray(np.load(path), dtype=np.float64)
    scores = (
        baselines.hst_scores(item.values) if kind == "hst" else baselines.zscore_scores(item.values)
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, scores)
    return scores


def coarsened(
    item: LabelledSeries, step: float, least: int = COARSE_MIN_POINTS
) -> LabelledSeries | None:
    """``item`` read every ``step`` seconds as the mean of each bucket of it (buckets
    start at whole multiples of ``step``; a bucket is stamped with its start, as a
    5-minute CloudWatch metric shows a 1-minute one), its windows kept in time: a
    window covers every bucket it touches. None where ``item`` is not read finer than
    ``step`` or leaves fewer than ``least`` buckets.

    >>> item = LabelledSeries("a", [0.0, 60.0, 120.0, 300.0, 360.0, 600.0], [1.0, 2.0, None, 4.0, 6.0, 8.0], [(3, 4)])
    >>> c = coarsened(item, 300.0)
    >>> c is None
    True
    >>> c = coarsened(item, 300.0, least=2)
    >>> c.timestamps, c.values, c.windows
    ([0.0, 300.0, 600.0], [1.5, 5.0, 8.0], [(1, 1)])
    """
    ts = np.asarray(item.timestamps, dtype=np.float64)
    if ts.size < 2 or not float(np.median(np.diff(ts))) < step:
        return None
    values = np.array([np.nan if v is None else v for v in item.values], dtype=np.float64)
    bucket = np.floor(ts / step)
    starts, inverse = np.unique(bucket, return_inverse=True)
    known = ~np.isnan(values)
    sums = np.bincount(inverse[known], weights=values[known], minlength=starts.size)
    counts = np.bincount(inverse[known], minlength=starts.size)
    keep = counts > 0
    if int(keep.sum()) < least:
        return None
    stamps = starts[keep] * step
    means = sums[keep] / counts[keep]
    windows = [(float(np.floor(ts[a] / step) * step), float(ts[b])) for a, b in item.windows]
    return LabelledSeries(
        item.name, stamps.tolist(), means.tolist(), index_windows(stamps, windows)
    )


def load_all(
    dev: Path | None,
    per_family: int,
    labelling: str = "windows",
    seed: int = 7,
    sampling: str = "regular",
    step: float = 300.0,
    points: int = 4032,
    coarsen: float = 0.0,
) -> list[LabelledSeries]:
    """The development set's series (under ``dev``, if there) and the generated families.
    With ``coarsen`` (seconds), only the development set's series read finer than that,
    each as :func:`coarsened`: its 1-minute real series seen at 5 minutes, the step of
    most NAB series, which the development set has none of."""
    series: list[LabelledSeries] = []
    if coarsen > 0.0:
        if dev is None or not dev.is_dir():
            raise SystemExit(f"--coarsen needs the development set: no folder {dev}")
        loaded, _ = load_dataset(dev, labelling)
        return [c for c in (coarsened(s, coarsen) for s in loaded) if c is not None]
    if dev is not None and dev.is_dir():
        loaded, _ = load_dataset(dev, labelling)
        series.extend(loaded)
    series.extend(generated_dataset(per_family, seed, sampling, step, points))
    return series


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    """``--seed``, ``--sampling``, ``--step`` and ``--points``: how the generated families
    are drawn (the arguments of :func:`load_all` after the labelling)."""
    parser.add_argument("--seed", type=int, default=7, help="the generated families' draw")
    parser.add_argument(
        "--sampling",
        choices=SAMPLINGS,
        default="regular",
        help="how the generated series are read: on their grid, jittered, with lost points, ...",
    )
    parser.add_argument("--step", type=float, default=300.0, help="generated series' step, s")
    parser.add_argument("--points", type=int, default=4032, help="generated series' length")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=Path("../shared/datasets/anomaly-dev"))
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--per-family", type=int, default=6)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--only", default="", help="comma-separated family prefixes")
    parser.add_argument("--labelling", choices=("windows", "nab"), default="windows")
    parser.add_argument(
        "--coarsen",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="only the development set's series read finer than this, as its means",
    )
    add_generation_arguments(parser)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    series = load_all(
        args.dev,
        args.per_family,
        args.labelling,
        args.seed,
        args.sampling,
        args.step,
        args.points,
        args.coarsen,
    )
    if args.only:
        prefixes = tuple(args.only.split(","))
        series = [s for s in series if family_of(s.name).startswith(prefixes)]
    started = time.perf_counter()
    for item in series:
        item.runs["tsguard"] = run_tsguard(item, config)
        zero = np.zeros(len(item.timestamps), dtype=bool)
        item.runs["zscore"] = DetectorRun(_cached("z", item), zero)
        item.runs["river_hst"] = DetectorRun(_cached("hst", item), zero)
    elapsed = time.perf_counter() - started
    for baseline in ("zscore", "river_hst"):  # their best corpus F1, chosen in hindsight
        threshold = choose_decision_threshold(series, baseline)
        for item in series:
            item.runs[baseline].flags = item.runs[baseline].scores >= threshold
    report: dict[str, Any] = family_report(series)
    report["lofo_nab"] = {d: lofo_nab(series, d) for d in ("tsguard", "zscore", "river_hst")}
    print(f"{len(series)} series in {elapsed:.1f} s", file=sys.stderr)
    print_report(report)
    if args.json:
        import orjson

        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0


def print_report(report: dict[str, Any]) -> None:
    keys = ("nab_lofo", "nab_onsets", "f1", "outside_share", "false_per_10k", "max_len_ratio")
    head = f"{'family':34s}" + "".join(f"{k:>16s}" for k in keys)
    print(head)
    for family, per in report["families"].items():
        for det in ("tsguard", "zscore", "river_hst"):
            m = dict(per[det])
            m["nab_lofo"] = report["lofo_nab"][det]["families"].get(family)
            cells = "".join(
                f"{'-' if m.get(k) is None else format(m[k], '.3g'):>16s}" for k in keys
            )
            print(f"{(family if det == 'tsguard' else ''):22s}{det:>12s}{cells}")
    for det, m in report["overall"].items():
        print(det, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()})
    for det, lofo in report["lofo_nab"].items():
        print("LOFO", det, round(lofo["mean"], 2))


if __name__ == "__main__":
    raise SystemExit(main())
