"""Artificial probes shaped like NAB's artificial series (our own generators, not its data).

``python -m benchmarks.probes [--json]``

14 days at 5-minute steps: a daily trapezoid (low at night, ramps 06-09 and
17-20 h, a plateau between, unit noise) with one anomalous day (40 % higher or
lower, a flat middle value, no rise at all), Gaussian noise whose spikes grow
denser, a level that moves by ten noise sigmas and stays (in noise, and down on the
trapezoid; a second page in the 1,100 points after the move's first 100 is a false
onset), and anomaly-free shapes (the trapezoid without noise, a square wave, a
constant, noise; and, on the UTC clock, weekday schedules from 09:30 and from 08:10
and a nightly batch job at 02:15, the shapes that paged every day until the
detector learned outliers that recur at their time of day; and a random walk with
gaps in its data, missing points given as NaN, which the cleaner rejects). For
each probe the default configuration's value episodes are counted: onsets from the
anomaly's start back by one anomaly length up to its end, and false onsets after
NAB's probation (the first 15 %) elsewhere.

``--seeds N`` draws every probe's noise N times (seeds 1..N; seed 1 is the
default single draw) and reports, per probe, in how many draws the anomaly was
found, the false onsets and the draws with any: one draw decides little.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from stream_app.core import EngineConfig, SeriesProcessor

FloatArray = npt.NDArray[np.float64]
N = 4032
STEP = 300.0
START = 1_700_000_000.0
DAY = 288
AT = 2800  # where the anomalous day starts


def _trapezoid(rng: np.random.Generator, noise: float = 1.0) -> FloatArray:
    hours = (np.arange(N) % DAY) / DAY * 24.0
    rise = np.clip(np.minimum((hours - 6.0) / 3.0, (20.0 - hours) / 3.0), 0.0, 1.0)
    return np.asarray(20.0 + 60.0 * rise + rng.normal(0.0, noise, N), np.float64)


def _with_day(
    change: Callable[[FloatArray, np.random.Generator], FloatArray], seed: int
) -> FloatArray:
    rng = np.random.default_rng(seed)
    values = _trapezoid(rng)
    day = slice(AT, AT + DAY)
    values[day] = change(values[day], rng)
    return values


def spike_density(seed: int) -> FloatArray:
    """Noise around 10 (sd 1) with spikes of +15 on 0.5 % of the points (1.4 a day), and
    on 5 % more from ``AT`` on: a spike density that grows (the unit tests use it too)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(10.0, 1.0, N)
    denser = (np.arange(N) >= AT) & (rng.random(N) < 0.05)
    values[(rng.random(N) < 0.005) | denser] += 15.0
    return np.asarray(values, np.float64)


def _shift_that_stays(seed: int, base: str) -> FloatArray:
    """A level that moves by ten noise sigmas at ``AT`` and stays there, in noise around
    50 (``base`` "noise") or on the trapezoid, down (``base`` "trapezoid"): one page is
    news; a second one, a drift against the level the profiles still lag, is not (the
    window is the 100 points after the move, as a two-window NAB series has)."""
    rng = np.random.default_rng(seed + 9)
    if base == "noise":
        values = rng.normal(50.0, 1.0, N)
        values[AT:] += 10.0
    else:
        values = _trapezoid(rng)
        values[AT:] -= 10.0
    return np.asarray(values, np.float64)


def _schedule(seed: int, start: float, end: float) -> FloatArray:
    """Weekdays from ``start`` to ``end`` o'clock UTC (the probes' clock starts at 22:13)."""
    rng = np.random.default_rng(seed + 6)
    ts = START + STEP * np.arange(N)
    hours = (ts % 86400.0) / 3600.0
    weekday = ((ts // 86400.0) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    on = (hours >= start - 1e-9) & (hours < end - 1e-9) & (weekday < 5)
    return np.asarray(np.where(on, 60.0, 10.0) + rng.normal(0.0, 1.0, N), np.float64)


def _nightly_job(seed: int) -> FloatArray:
    """Noise around 40 and a batch job's spike (+20 to +30) at 02:15 UTC every night."""
    rng = np.random.default_rng(seed + 7)
    hours = ((START + STEP * np.arange(N)) % 86400.0) / 3600.0
    values = 40.0 + rng.normal(0.0, 1.0, N)
    job = np.abs(hours - 2.25) < 1e-9
    values[job] += rng.uniform(20.0, 30.0, int(job.sum()))
    return np.asarray(values, np.float64)


def _walk_with_gaps(seed: int) -> FloatArray:
    """A price-like random walk; 1 % of its points start a gap of 2-150 missing points."""
    rng = np.random.default_rng(seed + 8)
    values = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, N)))
    for start in np.nonzero(rng.random(N) < 0.01)[0]:
        values[start : start + int(rng.integers(2, 151))] = np.nan
    values[:50] = 100.0 + rng.normal(0.0, 0.01, 50)
    return np.asarray(values, np.float64)


def probes(seed: int = 1) -> dict[str, tuple[FloatArray, tuple[int, int] | None]]:
    hours = (np.arange(N) % DAY) / DAY * 24.0
    square = np.where((hours >= 9.0) & (hours < 17.0), 80.0, 20.0)
    return {
        "day 40 % higher": (_with_day(lambda d, r: 20.0 + (d - 20.0) * 1.4, seed), (AT, AT + DAY)),
        "day 40 % lower": (_with_day(lambda d, r: 20.0 + (d - 20.0) * 0.6, seed), (AT, AT + DAY)),
        "flat middle day (noisy)": (
            _with_day(lambda d, r: 50.0 + r.normal(0.0, 1.0, d.size), seed),
            (AT, AT + DAY),
        ),
        "flat middle day (exact)": (
            _with_day(lambda d, r: np.full(d.size, 50.0), seed),
            (AT, AT + DAY),
        ),
        "day without its rise": (
            _with_day(lambda d, r: 20.0 + r.normal(0.0, 1.0, d.size), seed),
            (AT, AT + DAY),
        ),
        "spikes grow denser": (spike_density(seed), (AT, AT + 300)),
        "shift stays (noise)": (_shift_that_stays(seed, "noise"), (AT, AT + 100)),
        "shift stays (trapezoid)": (_shift_that_stays(seed, "trapezoid"), (AT, AT + 100)),
        "trapezoid, no noise": (_trapezoid(np.random.default_rng(seed + 2), noise=0.0), None),
        "square wave": (np.asarray(square, np.float64), None),
        "constant": (np.full(N, 42.0), None),
        "noise": (np.random.default_rng(seed + 4).normal(50.0, 5.0, N), None),
        "weekdays 09:30-17:30": (_schedule(seed, 9.5, 17.5), None),
        "weekdays 08:10-16:50": (_schedule(seed, 8.0 + 10.0 / 60.0, 16.0 + 50.0 / 60.0), None),
        "nightly job at 02:15": (_nightly_job(seed), None),
        "random walk with gaps": (_walk_with_gaps(seed), None),
    }


class Outcome(NamedTuple):
    found: bool | None  # None: an anomaly-free probe
    first_onset: list[int]
    false: list[int]


def probation(points: int) -> int:
    """The points at the start of a series whose onsets :func:`score` does not count:
    NAB's first 15 % (not capped at 750 points as NAB's scorer caps it)."""
    return int(0.15 * points)


def score(
    values: FloatArray,
    window: tuple[int, int] | None,
    step: float = STEP,
    start: float = START,
) -> Outcome:
    """The default configuration's value episodes on ``values`` read every ``step`` s:
    false onsets are those after NAB's probation (the first 15 % of the points)."""
    proc = SeriesProcessor.create("probe", "value", EngineConfig.default())
    unscored = probation(values.size)
    onsets = []
    for i, value in enumerate(values.tolist()):
        _, events = proc.process(start + step * i, value)
        onsets += [i for e in events if e.event == "opened" and e.kind == "value"]
    if window is None:
        near: list[int] = []
        false = [i for i in onsets if i >= unscored]
    else:
        lo, hi = window
        near = [i for i in onsets if lo - (hi - lo) <= i <= hi]
        false = [i for i in onsets if i >= unscored and i not in near]
    return Outcome(bool(near) if window else None, near[:1], false)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seeds", type=int, default=0, help="draw each probe N times")
    args = parser.parse_args(argv)
    if args.seeds:
        return _over_seeds(args.seeds, args.json)
    results = {name: score(values, window) for name, (values, window) in probes().items()}
    if args.json:
        print(json.dumps({name: r._asdict() for name, r in results.items()}))
        return 0
    for name, r in results.items():
        print(f"{name:26s} found {r.found!s:5s} first {r.first_onset} false {r.false}")
    total = sum(len(r.false) for r in results.values())
    print("false onsets after probation, all probes:", total)
    return 0


def _over_seeds(seeds: int, as_json: bool) -> int:
    table: dict[str, dict[str, int]] = {}
    for seed in range(1, seeds + 1):
        for name, (values, window) in probes(seed).items():
            r = score(values, window)
            row = table.setdefault(
                name, {"found": 0, "false": 0, "draws_with_false": 0, "anomaly": window is not None}
            )
            row["found"] += bool(r.found)
            row["false"] += len(r.false)
            row["draws_with_false"] += bool(r.false)
    if as_json:
        print(json.dumps({"seeds": seeds, "probes": table}))
        return 0
    for name, row in table.items():
        found = f"{row['found']}/{seeds}" if row["anomaly"] else "-"
        print(
            f"{name:26s} found {found:>7s}  false onsets {row['false']:4d}"
            f"  in {row['draws_with_false']}/{seeds} draws"
        )
    print("false onsets after probation, all probes:", sum(r["false"] for r in table.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
