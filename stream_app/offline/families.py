"""Generated families of labelled series: the development benchmark in code.

Each family is one *kind* of behaviour an operator meets (business-hours
steps, schedules whose edges and nightly jobs fall at any 5-minute mark, smooth
daily/weekly seasonality, random walks and prices, bursty counts, quantised
sensors, slow drifts), with anomalies of several kinds
injected at random places, plus anomaly-free families of the same kinds for
measuring false alarms. Everything is drawn from ``numpy``'s PCG64 with a
fixed seed per series, so a family is the same on every machine and run.

Series are 14 days at 5-minute steps (4,032 points) unless a family says
otherwise. A series begins at any 5-minute mark of the week (a weekday
afternoon, a Saturday night), drawn from a stream of its own so that the other
draws do not depend on it; schedules keep the UTC clock. ``sampling`` says how
the series is read (see :data:`SAMPLINGS`): on the 5-minute grid (the default),
with each timestamp off it by up to a tenth of a step (``jitter``), with 15 % of
the points lost at random (``holes``), with three outages of 2 to 8 hours
(``gaps``), or one of these per series (``mixed``); or at irregular times
(``events``: each timestamp anywhere in its step, in busy spells that keep 80 % of
the points and quiet ones that keep 5 %, so the mean interval is about twice the
median, as for readings sent on change or per event). Its draws come from a third
stream: a series with points lost keeps the values and anomalies of the regular
one, and a jittered one is the same draw read at its own times (only a count,
drawn at a slightly different rate, may differ after that). Labels mark the
anomalous points themselves (a level shift, the point it starts at; where none of a
lasting change's labelled points was read, the first reading after them);
:func:`stream_app.offline.nab.nab_windows` turns them into NAB-style windows.

(We write our own rather than depend on ``timeeval-gutentag``: it pins
numpy < 2.3 and scipy < 1.15, below what the runtime uses, and brings
matplotlib, pandas, scikit-learn and neurokit2 for a few dozen lines of
generators.)

>>> fams = generate_families(series_per_family=1)
>>> sorted(fams)[:3]
['business_hours', 'counts', 'drift']
>>> s = fams["business_hours"][0]
>>> len(s.timestamps) == len(s.values) == len(s.labels) == 4032, sum(s.labels) > 0
(True, True)
>>> sum(fams["free_business_hours"][0].labels)
0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
START = 1767571200.0  # 2026-01-05T00:00:00Z, a Monday
STEP = 300.0
POINTS = 4032


@dataclass(frozen=True, slots=True)
class GeneratedSeries:
    """One generated series with point labels (1 = anomalous)."""

    family: str
    name: str
    timestamps: list[float]
    values: list[float]
    labels: list[int]


# a base behaviour: its values at the given times (seconds since START, a Monday 00:00 UTC)
Base = Callable[[np.random.Generator, FloatArray], FloatArray]
# an anomaly kind: the series with it injected, and where; ``n`` points, ``day`` of them a day
Inject = Callable[[np.random.Generator, FloatArray, int, int], tuple[FloatArray, slice]]


def _hours(t: FloatArray) -> FloatArray:
    return np.asarray((t % 86400.0) / 3600.0, np.float64)


def _weekday(t: FloatArray) -> npt.NDArray[np.int64]:
    return (t // 86400.0).astype(np.int64) % 7


# --- base behaviours ------------------------------------------------------------------


def business_hours(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """Low overnight, high 09:00-18:00 on weekdays, low noise (a square wave)."""
    hours = _hours(t)
    on = (hours >= 9.0) & (hours < 18.0) & (_weekday(t) < 5)
    low, high = rng.uniform(5, 20), rng.uniform(40, 80)
    return np.asarray(
        np.where(on, high, low) + rng.normal(0, 0.02 * (high - low), t.size), np.float64
    )


def schedules(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """A schedule that does not start on the hour: business hours from a random
    5-minute mark (06:00-10:55 to 15:00-19:55; weekdays only or every day), and a
    nightly batch job, one point at a random 5-minute mark between 00:00 and 04:55."""
    hours = _hours(t)
    start = 6.0 + int(rng.integers(0, 60)) / 12.0
    end = 15.0 + int(rng.integers(0, 60)) / 12.0
    on = (hours >= start - 1e-9) & (hours < end - 1e-9)
    if rng.random() < 0.5:
        on &= _weekday(t) < 5
    low, high = rng.uniform(5, 20), rng.uniform(40, 80)
    values = np.where(on, high, low) + rng.normal(0, 0.02 * (high - low), t.size)
    job = int(rng.integers(0, 60)) / 12.0
    # the point read nearest the job's time (the one on it, on the 5-minute grid)
    half_step = float(np.median(np.diff(t))) / 7200.0 if t.size > 1 else 0.0
    values[np.abs(hours - job) < half_step] += rng.uniform(0.3, 0.8) * (high - low)
    return np.asarray(values, np.float64)


def seasonal(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """Smooth daily cycle, a weaker weekly one, Gaussian noise."""
    phase = rng.uniform(0, 2 * math.pi)
    daily = np.sin(2 * math.pi * t / 86400.0 + phase)
    weekly = 0.3 * np.sin(2 * math.pi * t / (7 * 86400.0))
    level, amp = rng.uniform(50, 100), rng.uniform(10, 30)
    return np.asarray(
        level + amp * (daily + weekly) + rng.normal(0, 0.08 * amp, t.size), np.float64
    )


def random_walk(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """A price: geometric random walk with slowly changing volatility."""
    vol = 0.002 * np.exp(np.cumsum(rng.normal(0, 0.02, t.size)).clip(-1, 1))
    walk = rng.uniform(20, 500) * np.exp(np.cumsum(rng.normal(0, 1, t.size) * vol))
    return np.asarray(walk, np.float64)


def counts(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """Bursty event counts: Poisson with a daily rate and short random bursts."""
    hours = _hours(t)
    rate = rng.uniform(3, 15) * (1.2 + np.sin(2 * math.pi * (hours - 6) / 24.0))
    bursts = rng.random(t.size) < 0.01
    rate = rate * np.where(bursts, rng.uniform(1.5, 2.5, t.size), 1.0)
    return rng.poisson(rate).astype(np.float64)


def quantised(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """A slow sensor (temperature) read with 0.5-unit resolution."""
    slow = np.cumsum(rng.normal(0, 0.02, t.size))
    value = 20 + 2 * np.sin(2 * math.pi * t / 86400.0) + slow + rng.normal(0, 0.15, t.size)
    return np.asarray(np.round(value * 2.0) / 2.0, np.float64)


def exact_steps(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """A noise-free daily square wave (a schedule, a synthetic test signal)."""
    hours = _hours(t)
    low, high = float(rng.integers(0, 20)), float(rng.integers(40, 90))
    return np.asarray(np.where((hours >= 9.0) & (hours < 18.0), high, low), np.float64)


def flat(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """A flat sensor read at 0.1 resolution: a constant that flickers by one step at times."""
    flicker = (rng.random(t.size) < 0.05) * rng.choice([-0.1, 0.1], t.size)
    return np.asarray(np.round(float(rng.uniform(10, 100)), 1) + flicker, np.float64)


def stationary(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """Noisy stationary metric (latency-like: log-normal around a level)."""
    return np.asarray(rng.uniform(50, 200) * np.exp(rng.normal(0, 0.1, t.size)), np.float64)


def cycle_in_proportion(rng: np.random.Generator, t: FloatArray, sd: float = 0.1) -> FloatArray:
    """A daily cycle from 5 to 95 (its peak at 15:00 UTC) whose noise is in proportion to
    its level (log-normal, ``sd`` of the log): sales, traffic, tweets. Not a family; the
    noise-shapes benchmark and the tests read it."""
    level = 50.0 * (1.0 + 0.9 * np.sin(2.0 * math.pi * (_hours(t) - 9.0) / 24.0))
    return np.asarray(level * np.exp(rng.normal(0.0, sd, t.size)), np.float64)


def flickering_flow(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """A flow of 32 read in whole units: a fifth of the readings one unit off, each led by
    a float-rounding wiggle (SKAB's valves). Not a family; read like the one above."""
    values = np.full(t.size, 32.0)
    off = np.nonzero(rng.random(t.size) < 0.2)[0]
    side = np.where(rng.random(off.size) < 0.9, 1.0, -1.0)
    values[off] += side * (1.0 - rng.uniform(0.002, 0.03, off.size))
    lead = off[off > 0] - 1
    values[lead] += np.sign(values[lead + 1] - 32.0) * rng.uniform(0.002, 0.01, lead.size)
    return values


def random_spikes(rng: np.random.Generator, t: FloatArray) -> FloatArray:
    """CPU % near 0.3, read to 1/15 and three decimals; 2 % of the readings spike by
    0.5-3 at random (a spiky machine's normal behaviour). Not a family; read like the
    two above."""
    values = np.round(np.round((0.2 + rng.gamma(2.0, 0.05, t.size)) * 15.0) / 15.0, 3)
    spikes = rng.random(t.size) < 0.02
    values[spikes] += rng.uniform(0.5, 3.0, int(spikes.sum()))
    return np.asarray(values, np.float64)


def bytes_written(rng: np.random.Generator, t: FloatArray, whole: bool = False) -> FloatArray:
    """Bytes written: nothing in 70 % of the intervals, else a log-normal burst around
    1e5; ``whole``: in whole bytes (a count whose zeros are its normal behaviour:
    zero-inflated). Not a family; read like the three above."""
    bursts = 1e5 * np.exp(rng.normal(0.0, 1.0, t.size))
    values = np.where(rng.random(t.size) < 0.3, bursts, 0.0)
    return np.asarray(np.round(values) if whole else values, np.float64)


def key_holds(
    rng: np.random.Generator, n: int, median_s: float, sigma: float
) -> tuple[FloatArray, FloatArray]:
    """Key-hold times (s, gamma around 0.25) read as the keys are pressed: the seconds
    since the first press, whose intervals are log-normal around ``median_s`` (``sigma``
    0: a regular grid), and the holds. Not a family: a series read at irregular times."""
    if sigma > 0.0:
        times = np.cumsum(rng.lognormal(np.log(median_s), sigma, n))
    else:
        times = median_s * np.arange(n, dtype=np.float64)
    holds = rng.gamma(3.0, 0.05, n) + 0.1
    return np.asarray(times, np.float64), np.asarray(holds, np.float64)


# --- anomaly kinds --------------------------------------------------------------------


def _span(rng: np.random.Generator, n: int, lo: int, hi: int) -> slice:
    length = int(rng.integers(lo, hi + 1))
    start = int(rng.integers(int(0.2 * n), n - length - 10))
    return slice(start, start + length)


def _spread(x: FloatArray) -> float:
    """The usual range: the 95th percentile less the 5th."""
    return float(np.percentile(x, 95) - np.percentile(x, 5))


def _noise(x: FloatArray) -> float:
    """The point-to-point noise: the spread of the steps over the square root of 2."""
    return float(np.std(np.diff(x))) / math.sqrt(2.0)


def _scale(x: FloatArray) -> float:
    diffs = np.abs(np.diff(x))
    return max(_spread(x), float(np.median(diffs)) * 10, 1e-9)


def spike(rng: np.random.Generator, x: FloatArray, n: int, day: int) -> tuple[FloatArray, slice]:
    where = _span(rng, n, 1, 1)
    x[where] += rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.2) * _scale(x)
    return x, where


def level_shift(
    rng: np.random.Generator, x: FloatArray, n: int, day: int
) -> tuple[FloatArray, slice]:
    where = _span(rng, n, 1, 1)
    x[where.start :] += rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 0.8) * _scale(x)
    return x, slice(where.start, where.start + 1)


def bump(rng: np.random.Generator, x: FloatArray, n: int, day: int) -> tuple[FloatArray, slice]:
    """A temporary shift lasting an hour to half a day."""
    where = _span(rng, n, 12, 144)
    x[where] += rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 0.8) * _scale(x)
    return x, where


def variance(rng: np.random.Generator, x: FloatArray, n: int, day: int) -> tuple[FloatArray, slice]:
    """Noise several times larger for a few hours."""
    where = _span(rng, n, 24, 96)
    noise = _noise(x) + 1e-9
    x[where] += rng.normal(0, 6 * noise, where.stop - where.start)
    return x, where


def flatline(rng: np.random.Generator, x: FloatArray, n: int, day: int) -> tuple[FloatArray, slice]:
    """The series stops moving (a stuck process), e.g. a business day that never starts."""
    where = _span(rng, n, day // 2, day)
    x[where] = x[where.start]
    return x, where


def drift_ramp(
    rng: np.random.Generator, x: FloatArray, n: int, day: int
) -> tuple[FloatArray, slice]:
    """A ramp away from normal over several hours, then staying there."""
    where = _span(rng, n, 36, 144)
    length = where.stop - where.start
    size = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0) * _scale(x)
    x[where] += np.linspace(0, size, length)
    x[where.stop :] += size
    return x, where


def burst(rng: np.random.Generator, x: FloatArray, n: int, day: int) -> tuple[FloatArray, slice]:
    """A count burst: several times the usual rate for an hour or two."""
    where = _span(rng, n, 6, 24)
    rate = 3 * (max(float(np.mean(x)), 0.0) + 1)  # a level shift may have taken x below 0
    x[where] = x[where] + rng.poisson(rate, where.stop - where.start)
    return x, where


def dropout(rng: np.random.Generator, x: FloatArray, n: int, day: int) -> tuple[FloatArray, slice]:
    """The metric drops to near zero for a while (an outage seen in the data)."""
    where = _span(rng, n, 12, 72)
    x[where] = x[where] * 0.05
    return x, where


FAMILIES: dict[str, tuple[Base, tuple[Inject, ...]]] = {
    "business_hours": (business_hours, (spike, flatline, level_shift, dropout)),
    "seasonal": (seasonal, (spike, bump, variance, flatline)),
    "random_walk": (random_walk, (spike, variance, level_shift)),
    "counts": (counts, (burst, dropout, level_shift)),
    "quantised": (quantised, (spike, level_shift, bump, flatline)),
    "drift": (stationary, (drift_ramp, spike, variance)),
    "schedules": (schedules, (spike, flatline, level_shift, dropout)),
}
FREE_FAMILIES: dict[str, Base] = {
    "free_business_hours": business_hours,
    "free_seasonal": seasonal,
    "free_random_walk": random_walk,
    "free_counts": counts,
    "free_quantised": quantised,
    "free_stationary": stationary,
    "free_exact_steps": exact_steps,
    "free_flat": flat,
    "free_schedules": schedules,
}


SAMPLINGS = ("regular", "jitter", "holes", "gaps", "mixed", "events")
# the anomaly kinds whose change stays after the points they label (see ``_series``)
LASTING: tuple[Inject, ...] = (level_shift, drift_ramp)
JITTER = 0.1  # a jittered timestamp is off the grid by up to this fraction of a step
HOLES = 0.15  # the share of points lost at random
GAPS = 3  # outages, each of 24 to 96 points (2 to 8 hours)
EVENTS_SWITCH = 0.03  # events: the chance per step that a busy or quiet spell ends
EVENTS_KEEP = (0.8, 0.05)  # events: the share of points kept in busy, quiet spells


def _read(
    sampling: str, key: list[int], t: FloatArray, step: float
) -> tuple[FloatArray, npt.NDArray[np.bool_] | None]:
    """How the series is read: its times, and the points kept (``None``: all)."""
    rng = np.random.default_rng([*key, 2])
    if sampling == "mixed":
        sampling = SAMPLINGS[int(rng.integers(4))]  # of the first four
    if sampling == "jitter":
        return t + rng.uniform(-JITTER, JITTER, t.size) * step, None
    if sampling == "events":
        busy = np.cumsum(rng.random(t.size) < EVENTS_SWITCH) % 2 == 0
        keep = rng.random(t.size) < np.where(busy, *EVENTS_KEEP)
        keep[0] = True
        # anywhere in its step: [0, 1) of a step keeps the times in order
        return t + rng.uniform(0.0, 1.0, t.size) * step, keep
    if sampling == "holes":
        keep = rng.random(t.size) >= HOLES
    elif sampling == "gaps":
        keep = np.ones(t.size, dtype=np.bool_)
        for _ in range(GAPS):
            start = int(rng.integers(1, t.size))
            length = int(rng.integers(24, 97))  # 2 to 8 hours, in 5-minute steps
            keep[start : start + max(int(length * STEP / step), 1)] = False
    else:
        return t, None
    keep[0] = True
    return t, keep


def _series(
    family: str,
    k: int,
    base: Base,
    kinds: tuple[Inject, ...],
    seed: int,
    sampling: str,
    step: float,
    points: int,
) -> GeneratedSeries:
    key = [seed, k, sum(map(ord, family))]
    rng = np.random.default_rng(key)
    # a series begins at any step of the week (seconds since START, a Monday)
    day = int(86400 / step)
    begin = np.random.default_rng([*key, 1])
    t = (int(begin.integers(7 * day)) + np.arange(points, dtype=np.float64)) * step
    t, keep = _read(sampling, key, t, step)
    values = base(rng, t)
    labels = np.zeros(points, dtype=np.int64)
    lasting: list[slice] = []  # anomalies whose change stays after their labelled points
    if kinds:
        for _ in range(int(rng.integers(1, 4))):
            kind = kinds[int(rng.integers(len(kinds)))]
            for _attempt in range(20):  # anomalies apart from each other
                trial = np.random.default_rng(rng.integers(1 << 62))
                candidate, where = kind(trial, values.copy(), points, day)
                lo, hi = max(where.start - day // 2, 0), where.stop + day // 2
                if not labels[lo:hi].any():
                    values = candidate
                    labels[where] = 1
                    if kind in LASTING:
                        lasting.append(where)
                    break
    if keep is not None:
        # a lasting change none of whose labelled points was read is seen, and labelled,
        # at the first reading after them (a level shift is one labelled point: read at
        # irregular times it was lost half the time, and the shift went on unlabelled)
        for where in lasting:
            if not keep[where].any():
                after = np.nonzero(keep[where.stop :])[0]
                if after.size:
                    labels[where.stop + int(after[0])] = 1
        t, values, labels = t[keep], values[keep], labels[keep]
    timestamps = (START + t).tolist()
    return GeneratedSeries(
        family, f"{family}/{k:02d}", timestamps, values.tolist(), labels.tolist()
    )


def generate_families(
    series_per_family: int = 6,
    seed: int = 7,
    sampling: str = "regular",
    step: float = STEP,
    points: int = POINTS,
) -> dict[str, list[GeneratedSeries]]:
    """Every family, ``series_per_family`` series each, deterministic for a ``seed``.

    ``step`` (seconds, a divisor of a day) and ``points`` make coarser or longer
    series: ``step=3600, points=1600`` are hourly series of about 67 days. Anomaly
    lengths stay in points, except a flat day, which stays a day.
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, not {sampling!r}")
    if not (step > 0.0 and 86400.0 % step == 0.0 and points >= 100):
        raise ValueError(f"need a step that divides a day and >= 100 points, not {step}, {points}")
    out: dict[str, list[GeneratedSeries]] = {}
    for family, (base, kinds) in FAMILIES.items():
        out[family] = [
            _series(family, k, base, kinds, seed, sampling, step, points)
            for k in range(series_per_family)
        ]
    for family, base in FREE_FAMILIES.items():
        out[family] = [
            _series(family, k, base, (), seed, sampling, step, points)
            for k in range(series_per_family)
        ]
    return out
