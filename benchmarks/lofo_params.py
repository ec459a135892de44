"""Is a default chosen on some families right for the others? Parameter choice, leave-one-family-out.

    .venv/bin/python benchmarks/lofo_params.py [--dev ../shared/datasets/anomaly-dev] \\
        --grid 'policy.cooldown_points=3,5,10' --grid 'policy.false_episode_days=3,7,14'
    .venv/bin/python benchmarks/lofo_params.py --dev /nonexistent --per-family 8 \\
        --points 17280 --grid 'policy.budget_growth_max=1.0,2.0,3.0'   # 60-day series

``--seed``, ``--sampling``, ``--step`` and ``--points`` draw the generated families as
``quality.py`` does (other draws, coarser or longer series).

``--nab-density`` judges each family as if its labelled windows were as rare as NAB's
(116 in 365,558 points): a false positive costs NAB standard's 0.11 times the family's
windows per scored point over NAB's (at least 1, at most ``DENSITY_CAP``). The
development set's labels are several times denser than NAB's (its hourly crash rates
about 20 times), so a default chosen on them pages more than a sparser corpus wants;
to first order a false onset per normal point stays a false onset per normal point,
and only the windows it is weighed against thin out.

For every value of one parameter (the others at their defaults) tsguard runs on
every family. Then, for each family in turn, the value with the best mean onset
NAB (standard profile, ties broken by episode F1) on the *other* families is
"chosen", and the held-out family's own score under that choice is reported
beside its score under the shipped default. A default that generalises is the
one chosen for (nearly) every held-out family and loses nothing against it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks.quality import add_generation_arguments, load_all
from stream_app.core import EngineConfig
from stream_app.offline import nab
from stream_app.offline.evaluate import LabelledSeries, run_tsguard
from stream_app.offline.quality import by_family, detector_metrics, onset_series

NAB_WINDOWS_PER_POINT = 116 / 365558  # the NAB corpus: 58 series, 116 labelled windows
DENSITY_CAP = 20.0


def density_factor(items: list[LabelledSeries]) -> float:
    """How many times denser than NAB's the windows of ``items`` are, per point after
    probation (at least 1, at most :data:`DENSITY_CAP`).

    >>> item = LabelledSeries("a", [float(t) for t in range(3000)], [0.0] * 3000, [(100, 110)])
    >>> round(density_factor([item]), 2)
    1.24
    """
    windows = sum(len(s.windows) for s in items)
    points = sum(len(s.timestamps) - nab.probation_length(len(s.timestamps)) for s in items)
    return min(DENSITY_CAP, max(1.0, windows / max(points, 1) / NAB_WINDOWS_PER_POINT))


def onset_nab_at_density(items: list[LabelledSeries], factor: float) -> float:
    """Onset NAB (standard weights) of tsguard on ``items`` with false positives
    costing ``factor`` times as much."""
    profile = nab.CostProfile(
        "standard_at_nab_density",
        nab.STANDARD.tp_weight,
        nab.STANDARD.fp_weight * factor,
        nab.STANDARD.fn_weight,
    )
    return nab.score_corpus(onset_series(items, "tsguard"), profile).score


def _config(path: str, value: str) -> EngineConfig:
    section, _, key = path.rpartition(".")
    number: Any = float(value) if "." in value else int(value)
    if section in ("policy", "cleaning"):
        return EngineConfig.from_mapping({"defaults": {section: {key: number}}})
    return EngineConfig.from_mapping({"defaults": {"params": {key: number}}})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=Path("../shared/datasets/anomaly-dev"))
    parser.add_argument("--per-family", type=int, default=6)
    parser.add_argument("--grid", action="append", required=True, help="name=v1,v2,...")
    parser.add_argument(
        "--nab-density",
        action="store_true",
        help="weigh false positives as if each family's windows were as rare as NAB's",
    )
    add_generation_arguments(parser)
    args = parser.parse_args(argv)
    series = load_all(
        args.dev, args.per_family, "windows", args.seed, args.sampling, args.step, args.points
    )
    families = {f: items for f, items in by_family(series).items() if any(s.windows for s in items)}
    factors = {
        f: density_factor(items) if args.nab_density else 1.0 for f, items in families.items()
    }
    if args.nab_density:
        print("false positives weighed x " + ", ".join(f"{f} {x:.1f}" for f, x in factors.items()))
    for spec in args.grid:
        name, _, values = spec.partition("=")
        table: dict[str, dict[str, tuple[float, float]]] = {}
        for value in values.split(","):
            config = _config(name, value)
            for item in series:
                item.runs["tsguard"] = run_tsguard(item, config)
            table[value] = {}
            for family, items in families.items():
                m = detector_metrics(items, "tsguard")
                score = m["nab_onsets"]
                if args.nab_density:
                    score = onset_nab_at_density(items, factors[family])
                table[value][family] = (score, m["f1"] or 0.0)
            print(
                f"{name}={value}: mean onset NAB over families "
                f"{statistics.mean(v[0] for v in table[value].values()):.2f}",
                file=sys.stderr,
            )
        print(f"\n## {name} (values {values})\n")
        print("| held-out family | chosen on the others | held-out onset NAB | with each value |")
        print("| --- | --- | --- | --- |")
        held = []
        for family in families:

            def others(
                value: str, family: str = family, table: dict[str, Any] = table
            ) -> tuple[float, float]:
                rows = [v for f, v in table[value].items() if f != family]
                return (statistics.mean(r[0] for r in rows), statistics.mean(r[1] for r in rows))

            chosen = max(table, key=others)
            held.append(table[chosen][family][0])
            each = ", ".join(f"{v}: {table[v][family][0]:.1f}" for v in table)
            print(f"| {family} | {chosen} | {table[chosen][family][0]:.1f} | {each} |")
        print(
            f"\nmean held-out onset NAB with the LOFO choice: {statistics.mean(held):.2f}; "
            + "; ".join(
                f"fixed {v}: {statistics.mean(r[0] for r in table[v].values()):.2f}" for v in table
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
