"""NAB-style scoring (Lavin & Ahmad 2015, the Numenta Anomaly Benchmark).

Pure functions over numpy arrays; no I/O. The rules, as published:

* Each labelled anomaly has a *window*. A detection inside a window earns a
  reward from a scaled sigmoid of its relative position: ``tp_weight`` at the
  window's left edge, falling towards 0 at the right edge. Only the earliest
  (highest-reward) detection of a window counts; a window with no detection
  costs ``-fn_weight``.
* A detection outside every window costs ``fp_weight`` times a scaled sigmoid
  of its distance past the preceding window (a detection just after a window
  costs little, one far away or before any window costs the full weight).
* The first 15 % of each series (at most 750 points) is a probationary period
  and is not scored.
* One threshold on the anomaly score is chosen for the whole corpus (a
  detection is ``score >= threshold``), per profile, by sweeping every score.
* The summed raw score is normalised so that a detector that never fires
  scores 0 and a perfect one (a detection at every window's start) scores 100.

Windows are inclusive ``(first_index, last_index)`` pairs of point indices.

>>> s = NabSeries("a", np.zeros(100), [(50, 59)])
>>> perfect = np.zeros(100); perfect[50] = 1.0
>>> score_corpus([NabSeries("a", perfect, [(50, 59)])]).score
100.0
>>> score_corpus([s]).score
0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from stream_app.offline.windows import (
    Window,
    index_windows,
    label_runs,
    merge_windows,
    nab_windows,
)

__all__ = [
    "PROFILES",
    "REWARD_LOW_FN",
    "REWARD_LOW_FP",
    "STANDARD",
    "CostProfile",
    "NabResult",
    "NabSeries",
    "Window",
    "index_windows",
    "label_runs",
    "merge_windows",
    "nab_windows",
    "normalised_series_score",
    "perfect_series_raw",
    "probation_length",
    "reference_score",
    "score_corpus",
    "score_series_raw",
    "sweep_scores",
    "thresholds_without",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PROBATION_FRACTION = 0.15
PROBATION_CAP_ROWS = 5000.0  # NAB caps probation at fraction * 5000 rows
_MAX_TP = 2.0 / (1.0 + math.exp(-5.0)) - 1.0  # scaled_sigmoid(-1.0)


@dataclass(frozen=True, slots=True)
class CostProfile:
    """Weights of one NAB application profile (``A_TP``, ``-A_FP``, ``-A_FN``)."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


STANDARD = CostProfile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
REWARD_LOW_FP = CostProfile("reward_low_fp", tp_weight=1.0, fp_weight=0.22, fn_weight=1.0)
REWARD_LOW_FN = CostProfile("reward_low_fn", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0)
PROFILES: tuple[CostProfile, ...] = (STANDARD, REWARD_LOW_FP, REWARD_LOW_FN)


@dataclass(frozen=True, slots=True)
class NabSeries:
    """One scored series: an anomaly score per point and its labelled windows."""

    name: str
    scores: Sequence[float] | FloatArray
    windows: Sequence[Window]


@dataclass(frozen=True, slots=True)
class NabResult:
    """Corpus score of one detector under one profile."""

    profile: str
    score: float  # normalised: never fires = 0, perfect = 100
    raw: float
    null_raw: float
    perfect_raw: float
    threshold: float  # detections are score >= threshold (inf: nothing fires)
    detected_windows: int
    missed_windows: int
    false_positives: int  # points, after probation
    per_series_raw: dict[str, float] = field(default_factory=dict)


def scaled_sigmoid(position: FloatArray) -> FloatArray:
    """NAB's reward curve: ~0.987 at -1 (window start), 0 at 0, -1 from 3 on.

    >>> [round(float(v), 4) for v in scaled_sigmoid(np.array([-1.0, -0.5, 0.0, 1.0, 3.0]))]
    [0.9866, 0.8483, 0.0, -0.9866, -1.0]
    """
    with np.errstate(over="ignore"):
        curve = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position >= 3.0, -1.0, curve)


def probation_length(n_points: int, fraction: float = PROBATION_FRACTION) -> int:
    """Points at the start of a series that NAB leaves unscored.

    >>> probation_length(1000), probation_length(100_000)
    (150, 750)
    """
    return int(min(math.floor(fraction * n_points), fraction * PROBATION_CAP_ROWS))


def sweep_scores(
    n_points: int, windows: Sequence[Window], profile: CostProfile
) -> tuple[FloatArray, IntArray]:
    """Per point: the score a detection there would earn, and its window (or -1).

    >>> sweep, wid = sweep_scores(6, [(1, 2)], STANDARD)
    >>> [round(float(v), 3) for v in sweep], wid.tolist()
    ([-0.11, 1.0, 0.86, -0.109, -0.11, -0.11], [-1, 0, 0, -1, -1, -1])
    """
    sweep = np.full(n_points, -profile.fp_weight, dtype=np.float64)
    window_id = np.full(n_points, -1, dtype=np.int64)
    merged = merge_windows(windows)
    for k, (start, end) in enumerate(merged):
        width = end - start + 1
        inside = np.arange(start, end + 1, dtype=np.float64)
        sweep[start : end + 1] = (
            profile.tp_weight * scaled_sigmoid(-(end - inside + 1) / width) / _MAX_TP
        )
        window_id[start : end + 1] = k
        stop = merged[k + 1][0] if k + 1 < len(merged) else n_points
        after = np.arange(end + 1, stop, dtype=np.float64)
        sweep[end + 1 : stop] = profile.fp_weight * scaled_sigmoid(
            (after - end) / max(width - 1, 1)
        )
    return sweep, window_id


@dataclass(frozen=True, slots=True)
class _Scorable:
    """All scorable (post-probation) points of a corpus, flattened."""

    scores: FloatArray
    sweep: FloatArray
    window: IntArray  # global window id, -1 outside every window
    series: IntArray
    n_windows: int


def _flatten(series: Sequence[NabSeries], profile: CostProfile, probation: float) -> _Scorable:
    scores, sweeps, windows, owners = [], [], [], []
    offset = 0
    for k, item in enumerate(series):
        values = np.nan_to_num(np.asarray(item.scores, dtype=np.float64), nan=0.0)
        sweep, window_id = sweep_scores(len(values), item.windows, profile)
        keep = slice(probation_length(len(values), probation), None)
        scorable_ids = window_id[keep]
        local = np.unique(scorable_ids[scorable_ids >= 0])
        # renumber the windows that keep at least one scorable point
        remap = np.full(len(merge_windows(item.windows)) + 1, -1, dtype=np.int64)
        remap[local] = np.arange(offset, offset + len(local))
        offset += len(local)
        scores.append(values[keep])
        sweeps.append(sweep[keep])
        windows.append(remap[scorable_ids])  # -1 maps through remap[-1] == -1
        owners.append(np.full(len(scorable_ids), k, dtype=np.int64))
    if not scores:
        empty = np.zeros(0)
        return _Scorable(empty, empty, empty.astype(np.int64), empty.astype(np.int64), 0)
    return _Scorable(
        np.concatenate(scores),
        np.concatenate(sweeps),
        np.concatenate(windows),
        np.concatenate(owners),
        offset,
    )


def _raw_by_threshold(flat: _Scorable, profile: CostProfile) -> tuple[FloatArray, FloatArray]:
    """Raw corpus score for every distinct threshold, highest threshold first.

    Returns ``(thresholds, raw)``; the first entry is ``inf`` (nothing fires).
    """
    order = np.argsort(-flat.scores, kind="stable")
    sorted_scores = flat.scores[order]
    sweep = flat.sweep[order]
    window = flat.window[order]
    delta = np.where(window < 0, sweep, 0.0)
    # Windows: the running maximum reward of each window as the threshold drops.
    in_window = np.flatnonzero(window >= 0)
    if len(in_window):
        by_window = in_window[np.lexsort((in_window, window[in_window]))]
        groups = window[by_window]
        # rewards lie in (0, tp]; offsetting groups makes one accumulate reset per window
        span = 2.0 * profile.tp_weight + profile.fn_weight + 1.0
        shifted = sweep[by_window] + groups * span
        running = np.maximum.accumulate(shifted) - groups * span
        first = np.r_[True, groups[1:] != groups[:-1]]
        previous = np.where(first, -profile.fn_weight, np.r_[0.0, running[:-1]])
        delta[by_window] = running - previous
    base = -profile.fn_weight * flat.n_windows
    cumulative = base + np.cumsum(delta)
    last_of_tie = np.r_[sorted_scores[1:] != sorted_scores[:-1], True] if len(order) else []
    thresholds = np.r_[math.inf, sorted_scores[last_of_tie]]
    raw = np.r_[base, cumulative[last_of_tie]]
    return thresholds, raw


def score_series_raw(
    item: NabSeries,
    threshold: float,
    profile: CostProfile = STANDARD,
    probation: float = PROBATION_FRACTION,
) -> tuple[float, int, int, int]:
    """Raw score of one series at a fixed threshold: ``(raw, detected, missed, fp)``."""
    flat = _flatten([item], profile, probation)
    fired = flat.scores >= threshold
    raw = float(flat.sweep[fired & (flat.window < 0)].sum())
    detected = 0
    for window in range(flat.n_windows):
        hits = fired & (flat.window == window)
        if hits.any():
            raw += float(flat.sweep[hits].max())
            detected += 1
        else:
            raw -= profile.fn_weight
    false_positives = int((fired & (flat.window < 0)).sum())
    return raw, detected, flat.n_windows - detected, false_positives


def score_corpus(
    series: Sequence[NabSeries],
    profile: CostProfile = STANDARD,
    probation: float = PROBATION_FRACTION,
) -> NabResult:
    """Choose the corpus-wide threshold that maximises the raw score, and normalise."""
    flat = _flatten(series, profile, probation)
    thresholds, raw = _raw_by_threshold(flat, profile)
    best = int(np.argmax(raw))
    threshold = float(thresholds[best])
    null_raw = -profile.fn_weight * flat.n_windows
    perfect_raw = _perfect_raw(flat, profile)
    span = perfect_raw - null_raw
    normalised = 100.0 * (float(raw[best]) - null_raw) / span if span > 0 else 0.0
    per_series: dict[str, float] = {}
    detected = missed = false_positives = 0
    for item in series:
        series_raw, hit, miss, fp = score_series_raw(item, threshold, profile, probation)
        per_series[item.name] = series_raw
        detected, missed, false_positives = detected + hit, missed + miss, false_positives + fp
    return NabResult(
        profile=profile.name,
        score=round(normalised, 6),
        raw=float(raw[best]),
        null_raw=null_raw,
        perfect_raw=perfect_raw,
        threshold=threshold,
        detected_windows=detected,
        missed_windows=missed,
        false_positives=false_positives,
        per_series_raw=per_series,
    )


def thresholds_without(
    groups: Sequence[Sequence[NabSeries]],
    held_out: Sequence[int],
    profile: CostProfile = STANDARD,
    probation: float = PROBATION_FRACTION,
) -> list[float]:
    """For each index in ``held_out``, the threshold :func:`score_corpus` chooses on the
    series of every *other* group (leave-one-group-out), the same to the bit.

    The corpus is flattened once and each group's points masked out, instead of
    flattening every other group's series again for each group: with one family per
    folder of 400 small series that took 14 s, growing with the square of the families.

    >>> hit = np.zeros(100); hit[50] = 1.0
    >>> a, b = NabSeries("a", hit, [(50, 59)]), NabSeries("b", hit * 0.5, [(50, 59)])
    >>> thresholds_without([[a], [b]], [0, 1])
    [0.5, 1.0]
    """
    members = [item for group in groups for item in group]
    flat = _flatten(members, profile, probation)
    group_of_series = np.repeat(np.arange(len(groups)), [len(group) for group in groups])
    point_group = group_of_series[flat.series]
    out = []
    for index in held_out:
        keep = point_group != index
        window = flat.window[keep]
        inside = window >= 0
        # windows are numbered in order of appearance; the kept ones are renumbered
        # 0, 1, ... in the same order, as flattening the other groups alone numbers them
        kept = np.unique(window[inside])
        renumbered = np.where(inside, np.searchsorted(kept, window), -1)
        others = _Scorable(
            flat.scores[keep], flat.sweep[keep], renumbered, flat.series[keep], len(kept)
        )
        thresholds, raw = _raw_by_threshold(others, profile)
        out.append(float(thresholds[int(np.argmax(raw))]))
    return out


def _perfect_raw(flat: _Scorable, profile: CostProfile) -> float:
    """Best reward of every scorable window (its first scorable point)."""
    if flat.n_windows == 0:
        return 0.0
    best = np.full(flat.n_windows, -np.inf)
    inside = flat.window >= 0
    np.maximum.at(best, flat.window[inside], flat.sweep[inside])
    return float(best.sum())


def normalised_series_score(
    item: NabSeries,
    raw: float,
    profile: CostProfile = STANDARD,
    probation: float = PROBATION_FRACTION,
) -> float | None:
    """A series' raw score on the 0 (never fires) .. 100 (perfect) scale; None without windows."""
    flat = _flatten([item], profile, probation)
    null_raw = -profile.fn_weight * flat.n_windows
    span = _perfect_raw(flat, profile) - null_raw
    return None if span <= 0 else 100.0 * (raw - null_raw) / span


def perfect_series_raw(
    item: NabSeries, profile: CostProfile = STANDARD, probation: float = PROBATION_FRACTION
) -> float:
    """Raw score of a perfect detector on one series (its scorable windows only)."""
    return _perfect_raw(_flatten([item], profile, probation), profile)


class HasWindows(Protocol):
    """Anything with labelled windows (a :class:`NabSeries`, a labelled series)."""

    @property
    def windows(self) -> Sequence[Window]: ...


def reference_score(
    result: NabResult, series: Sequence[HasWindows], profile: CostProfile = STANDARD
) -> float:
    """``result`` normalised as NAB's reference code does it.

    NAB's runner takes the perfect score as ``tp_weight`` times *every* labelled
    window, including windows that lie wholly inside a probationary period and so
    can never be detected; the null score only counts scorable windows. The
    figure is therefore lower than :attr:`NabResult.score` whenever windows fall
    in the probation. ``series`` are objects with a ``windows`` attribute.

    >>> s = NabSeries("a", np.zeros(100), [(5, 6), (50, 59)])
    >>> hit = np.zeros(100); hit[50] = 1.0
    >>> r = score_corpus([NabSeries("a", hit, s.windows)])
    >>> round(r.score, 1), round(reference_score(r, [s]), 1)
    (100.0, 66.7)
    """
    windows = sum(len(merge_windows(s.windows)) for s in series)
    perfect = profile.tp_weight * windows
    span = perfect - result.null_raw
    return 100.0 * (result.raw - result.null_raw) / span if span > 0 else 0.0
