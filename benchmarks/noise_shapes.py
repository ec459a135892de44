"""Anomaly-free noise shapes against the false-alarm budget: where the default still pages.

Each shape is normal behaviour that real metrics show and the generated families do
not cover: spiky log-normal noise (bytes written, request latency), a daily cycle
whose noise grows with its level (traffic, sales, tweets), a metric that switches
between a few levels, bytes written (in whole bytes too: a count whose zeros are its
normal behaviour), and a flow read in whole units that flickers by one unit on
a fifth of its readings with float-rounding wiggles in between; isolated spikes that
are a metric's normal behaviour (CPU, latency, bytes written); and plain noise, normal
or with a heavier tail (Laplace, Student t with 3 degrees of freedom). Every shape is read
at the step and for the points :data:`RUNS` gives it, ``--draws`` times (counted by
:func:`benchmarks.probes.score`); false episodes are counted
after NAB's probation (the first 15 %) and reported per 10k points next to the
default budget at that step (one false episode per 7 days, and per 672 points where
that is longer), and how many of them came early: in the stretch as long as the
probation right after it, where a series is young (days 2.1-4.2 of 14 days)::

    python -m benchmarks.noise_shapes [--draws 20] [--json]

>>> sorted(shapes())[:3]
['cycle, noise x level (sd 0.10)', 'cycle, noise x level (sd 0.25)', 'disk writes: 70 % zeros, bursts']
>>> values = shapes()["flickering flow"](np.random.default_rng(0), np.arange(1000) * 1.0)
>>> bool((np.round(values) == 32.0).mean() > 0.6)
True
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from benchmarks.probes import probation, score
from stream_app.core import EngineConfig, SeriesProcessor
from stream_app.core.config import PolicyConfig
from stream_app.offline import nab
from stream_app.offline.evaluate import LabelledSeries, evaluate, run_all
from stream_app.offline.families import (
    bytes_written,
    cycle_in_proportion,
    flickering_flow,
    random_spikes,
)

FloatArray = npt.NDArray[np.float64]
Shape = Callable[[np.random.Generator, FloatArray], FloatArray]
Row = dict[str, object]  # one line of a benchmark's report
START = 1_767_571_200.0 + 2 * 86400.0 + 7 * 3600.0  # a Wednesday, 07:00 UTC
# (name, step in seconds, points): the shapes' steps and lengths, NAB-like
RUNS: tuple[tuple[str, float, int], ...] = (
    ("spiky log-normal (sd 0.8)", 300.0, 4032),
    ("cycle, noise x level (sd 0.10)", 3600.0, 1600),
    ("cycle, noise x level (sd 0.25)", 3600.0, 1600),
    ("cycle, noise x level (sd 0.25)", 1800.0, 3000),
    ("cycle, noise x level (sd 0.25)", 300.0, 4032),
    ("three levels, switching", 300.0, 4032),
    ("low CPU %, 2 % random spikes", 300.0, 4032),
    ("latency, AR(1), 1 % spikes x2-5", 300.0, 4032),
    ("disk writes: 70 % zeros, bursts", 300.0, 4032),
    ("disk writes: whole bytes, 70 % zeros", 300.0, 4032),
    ("flickering flow", 1.0, 1150),
    ("noise: normal", 300.0, 4032),
    ("noise: Laplace", 300.0, 4032),
    ("noise: Student t, 3 dof", 300.0, 4032),
)


def _cycle(sd: float) -> Shape:
    def make(rng: np.random.Generator, t: FloatArray) -> FloatArray:
        return cycle_in_proportion(rng, t, sd)

    return make


def _lognormal(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    return np.asarray(100.0 * np.exp(rng.normal(0.0, 0.8, t.size)), np.float64)


def _normal(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    return np.asarray(50.0 + rng.normal(0.0, 1.0, t.size), np.float64)


def _laplace(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    return np.asarray(50.0 + rng.laplace(0.0, 1.0, t.size), np.float64)


def _student_t(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """Noise with a power-law tail (3 degrees of freedom: a point beyond ten of its
    scale comes about once in 500): many real metrics' noise is heavier-tailed than
    normal, and none of the generated families' is."""
    return np.asarray(50.0 + rng.standard_t(3.0, t.size), np.float64)


def switching_levels(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """Three levels (10, 50, 80); about one switch in 200 points, to any of them."""
    switch = rng.random(t.size) < 0.005
    picks = rng.integers(0, 3, t.size)
    state = np.maximum.accumulate(np.where(switch, np.arange(t.size), 0))
    level = np.array([10.0, 50.0, 80.0])[np.where(state > 0, picks[state], 0)]
    return np.asarray(level + rng.normal(0.0, 1.0, t.size), np.float64)


def latency(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """Request latency: log-AR(1) noise (0.7, sd 0.15); 1 % of requests 2-5 times slower."""
    log = np.zeros(t.size)
    shocks = rng.normal(0.0, 0.15, t.size)
    for i in range(1, t.size):
        log[i] = 0.7 * log[i - 1] + shocks[i]
    values = 0.05 * np.exp(log)
    slow = rng.random(t.size) < 0.01
    values[slow] *= rng.uniform(2.0, 5.0, int(slow.sum()))
    return np.asarray(values, np.float64)


def _whole_bytes(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    return bytes_written(rng, t, whole=True)


def shapes() -> dict[str, Shape]:
    return {
        "cycle, noise x level (sd 0.10)": _cycle(0.10),
        "cycle, noise x level (sd 0.25)": _cycle(0.25),
        "disk writes: 70 % zeros, bursts": bytes_written,
        "disk writes: whole bytes, 70 % zeros": _whole_bytes,
        "flickering flow": flickering_flow,
        "latency, AR(1), 1 % spikes x2-5": latency,
        "low CPU %, 2 % random spikes": random_spikes,
        "spiky log-normal (sd 0.8)": _lognormal,
        "three levels, switching": switching_levels,
        "noise: normal": _normal,
        "noise: Laplace": _laplace,
        "noise: Student t, 3 dof": _student_t,
    }


def run(draws: int) -> list[Row]:
    made = shapes()
    rows = []
    for name, step, points in RUNS:
        t = START + step * np.arange(points, dtype=np.float64)
        false = [
            i
            for seed in range(draws)
            for i in score(made[name](np.random.default_rng(seed), t), None, step, START).false
        ]
        total = len(false)
        unscored = probation(points)
        scored = draws * (points - unscored)
        budget = 1e4 * (1.0 - PolicyConfig().open_threshold(step))
        rows.append(
            {
                "shape": name,
                "step_s": step,
                "points": points,
                "false_episodes": total,
                # ... of them in the stretch as long as the probation right after it (days
                # 2.1-4.2 of 14): a young series' share, which a rate over the rest hides
                "false_early": sum(i < 2 * unscored for i in false),
                "per_10k": round(1e4 * total / scored, 2),
                "budget_per_10k": round(budget, 2),
            }
        )
    return rows


def opened_after_probation(
    ts: FloatArray, values: FloatArray, config: EngineConfig, entity: str, metric: str
) -> tuple[int, float]:
    """The value episodes one fresh series opens after NAB's probation, and the weeks of
    data that follow the probation (a false-alarm rate on anomaly-free series)."""
    proc = SeriesProcessor.create(entity, metric, config)
    unscored = nab.probation_length(len(ts))
    opened = 0
    for i, (t, v) in enumerate(zip(ts.tolist(), values.tolist(), strict=True)):
        events = proc.process(t, v)[1]
        if i >= unscored:
            opened += sum(e.event == "opened" and e.kind == "value" for e in events)
    return opened, float(ts[-1] - ts[unscored]) / (7 * 86400.0)


def onsets_against_zscore(series: list[LabelledSeries], config: EngineConfig) -> Row:
    """tsguard's onset NAB, episode F1 and episodes on the labelled ``series``, and the
    rolling z-score's onset NAB with the threshold that suits them best (an upper bound
    for it)."""
    result = evaluate(series, run_all(series, config, ("tsguard", "zscore")))
    ours, zscore = result["overall"]["tsguard"], result["overall"]["zscore"]
    return {
        "nab_onsets": ours["nab_standard_onsets"],
        "f1": ours["episode_f1"],
        "episodes": ours["episodes"],
        "zscore_nab_onsets": zscore["nab_standard_onsets"],
    }


def onsets_and_false_rate(
    series: list[LabelledSeries], config: EngineConfig, free: list[tuple[int, float]]
) -> Row:
    """:func:`onsets_against_zscore`, and the false episodes a week of anomaly-free runs
    (``free``: pairs from :func:`opened_after_probation`)."""
    weeks = sum(w for _, w in free)
    return {
        **onsets_against_zscore(series, config),
        "false_per_week": round(sum(n for n, _ in free) / weeks, 3) if weeks else 0.0,
    }


def draws_cli(
    argv: list[str] | None,
    description: str,
    run: Callable[[int], list[Row]],
    line: Callable[[Row], str],
    report: Callable[[list[Row]], str] | None = None,
    draws: int = 20,
) -> int:
    """The command line of a benchmark drawn ``--draws`` times (default ``draws``): its
    rows as JSON (``--json``), or one ``line`` each (or the whole ``report``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--draws", type=int, default=draws)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = run(args.draws)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(report(rows) if report else "\n".join(line(r) for r in rows))
    return 0


def _line(r: Row) -> str:
    return (
        f"{r['shape']!s:32s} step {r['step_s']:>6.0f} s x {r['points']:>4d}  false "
        f"{r['false_episodes']:4d} (early {r['false_early']:3d})  per 10k {r['per_10k']:7.2f}  "
        f"budget {r['budget_per_10k']:6.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    return draws_cli(argv, __doc__.splitlines()[0], run, _line)


if __name__ == "__main__":
    raise SystemExit(main())
