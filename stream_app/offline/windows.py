"""Anomaly windows as inclusive ``(first_index, last_index)`` pairs of point indices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Window = tuple[int, int]
WINDOW_FRACTION = 0.10  # NAB: windows cover 10 % of a series, shared by its anomalies


def label_runs(labels: Sequence[int] | Sequence[bool] | npt.NDArray[Any]) -> list[Window]:
    """Maximal runs of non-zero labels as inclusive index windows.

    >>> label_runs([0, 1, 1, 0, 1])
    [(1, 2), (4, 4)]
    """
    flags = np.asarray(labels, dtype=bool).astype(np.int8)
    edges = np.diff(np.concatenate(([0], flags, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def merge_windows(windows: Sequence[Window]) -> list[Window]:
    """Sort windows and merge those that overlap or touch.

    >>> merge_windows([(5, 9), (0, 2), (8, 12), (13, 14)])
    [(0, 2), (5, 14)]
    """
    merged: list[Window] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def nab_windows(
    labels: Sequence[int] | npt.NDArray[Any], fraction: float = WINDOW_FRACTION
) -> list[Window]:
    """NAB's window rule applied to label runs.

    Each run of labels is one anomaly. Its window is ``fraction`` of the series
    length divided by the number of anomalies, centred on the run, and never
    narrower than the run itself; overlapping windows merge.

    >>> nab_windows([0] * 45 + [1] + [0] * 54)
    [(40, 50)]
    """
    runs = label_runs(labels)
    if not runs:
        return []
    n = len(labels)
    length = int(fraction * n / len(runs))
    half = length // 2
    windows = []
    for start, end in runs:
        centre = (start + end) // 2
        windows.append((max(0, min(start, centre - half)), min(n - 1, max(end, centre + half))))
    return merge_windows(windows)


def index_windows(
    timestamps: Sequence[float] | npt.NDArray[np.float64], ts_windows: Sequence[tuple[float, float]]
) -> list[Window]:
    """Map inclusive ``(start_ts, end_ts)`` windows onto point indices.

    >>> index_windows([10.0, 20.0, 30.0, 40.0], [(15.0, 30.0), (50.0, 60.0)])
    [(1, 2)]
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    windows = []
    for start_ts, end_ts in ts_windows:
        first = int(np.searchsorted(ts, start_ts, side="left"))
        last = int(np.searchsorted(ts, end_ts, side="right")) - 1
        if first <= last:
            windows.append((first, last))
    return merge_windows(windows)
