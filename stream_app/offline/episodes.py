"""Episode-level detection quality, judged by where an episode *opens*.

A detected episode is a maximal run of points flagged ``is_anomaly``. It is a
true positive when it **opens** inside a labelled window, or at most one
window-width before it (early warning); an episode that opens anywhere else is
false, however long it overlaps a window, and one episode can find at most one
window (the first it qualifies for). A window is found by the first true
episode that qualifies for it; its delay is the points from the window's first
point to that episode's onset (negative when it opened early).

Beside precision, recall and F1 the counts keep what an operator pays for:
points spent inside episodes outside every window, and each true episode's
length relative to the window it found.

Points before ``start`` (NAB's probationary period) are ignored: flags and
windows are clipped to it.

>>> counts = episode_counts([1, 0, 0, 0, 0, 0, 1, 1, 0, 0], [(5, 8)])
>>> counts.episodes, counts.true_episodes, counts.windows, counts.found_windows, counts.delays
(2, 1, 1, 1, [1])
>>> counts.outside_points, counts.length_ratios
(1, [0.5])
>>> summarise([counts])["episode_f1"]
0.666667
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream_app.offline.nab import Window, label_runs


@dataclass(slots=True)
class EpisodeCounts:
    """Counts for one series (or several, added up)."""

    episodes: int = 0
    true_episodes: int = 0
    windows: int = 0
    found_windows: int = 0
    delays: list[int] = field(default_factory=list)
    points: int = 0  # scored points
    outside_points: int = 0  # flagged points outside every window
    length_ratios: list[float] = field(default_factory=list)  # true episode length / window

    def add(self, other: EpisodeCounts) -> None:
        self.episodes += other.episodes
        self.true_episodes += other.true_episodes
        self.windows += other.windows
        self.found_windows += other.found_windows
        self.delays.extend(other.delays)
        self.points += other.points
        self.outside_points += other.outside_points
        self.length_ratios.extend(other.length_ratios)


def episode_counts(
    flags: Sequence[bool] | Sequence[int] | npt.NDArray[np.bool_],
    windows: Sequence[Window],
    start: int = 0,
) -> EpisodeCounts:
    """Match flagged runs against labelled windows (inclusive point indices) by onset."""
    flagged = np.asarray(flags, dtype=bool).copy()
    flagged[:start] = False
    episodes = label_runs(flagged)
    scored = sorted((max(s, start), e) for s, e in windows if e >= start)
    counts = EpisodeCounts(
        episodes=len(episodes), windows=len(scored), points=max(len(flagged) - start, 0)
    )
    in_window = np.zeros(len(flagged), dtype=bool)
    for w_start, w_end in scored:
        in_window[w_start : w_end + 1] = True
    counts.outside_points = int((flagged & ~in_window).sum())
    found = [False] * len(scored)
    for onset, end in episodes:
        for k, (w_start, w_end) in enumerate(scored):
            width = w_end - w_start + 1
            if w_start - width <= onset <= w_end:
                counts.true_episodes += 1
                if not found[k]:
                    found[k] = True
                    counts.delays.append(onset - w_start)
                    counts.length_ratios.append((end - onset + 1) / width)
                break
    counts.found_windows = sum(found)
    return counts


def summarise(counts: Iterable[EpisodeCounts]) -> dict[str, float | None]:
    """Micro-averaged precision, recall, F1, delay and alarm time over ``counts``.

    Precision is None with no episode, as recall is with no window: neither is defined
    (a 0 would read as every episode false). F1 is None with no window, and 0 where
    windows were found by no episode.
    """
    total = EpisodeCounts()
    for item in counts:
        total.add(item)
    precision = total.true_episodes / total.episodes if total.episodes else None
    recall = total.found_windows / total.windows if total.windows else None
    if recall is None:
        f1: float | None = None
    elif precision is None or precision + recall == 0:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall)
    delay = float(np.mean(total.delays)) if total.delays else None
    ratios = total.length_ratios
    return {
        "episode_precision": None if precision is None else round(precision, 6),
        "episode_recall": None if recall is None else round(recall, 6),
        "episode_f1": None if f1 is None else round(f1, 6),
        "mean_delay_points": None if delay is None else round(delay, 3),
        "episodes": total.episodes,
        "true_episodes": total.true_episodes,
        "windows": total.windows,
        "found_windows": total.found_windows,
        "outside_share": round(total.outside_points / total.points, 6) if total.points else 0.0,
        "median_length_ratio": round(float(np.median(ratios)), 3) if ratios else None,
        "max_length_ratio": round(float(np.max(ratios)), 3) if ratios else None,
        "false_per_10k": (
            round(1e4 * (total.episodes - total.true_episodes) / total.points, 3)
            if total.points
            else None
        ),
    }
