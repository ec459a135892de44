"""Episode-level detection quality: precision, recall, F1 and delay.

A detected episode is a maximal run of points flagged ``is_anomaly``. It is a
true positive when it overlaps a labelled window; a window is found when some
episode overlaps it, and its delay is the number of points from the window's
first point to its first flagged point (0 when an episode was already open).
Points before ``start`` (NAB's probationary period) are ignored: episodes and
windows are clipped to it.

>>> counts = episode_counts([0, 1, 0, 0, 0, 0, 1, 1, 0, 0], [(5, 8)])
>>> counts.episodes, counts.true_episodes, counts.windows, counts.found_windows, counts.delays
(2, 1, 1, 1, [1])
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

    def add(self, other: EpisodeCounts) -> None:
        self.episodes += other.episodes
        self.true_episodes += other.true_episodes
        self.windows += other.windows
        self.found_windows += other.found_windows
        self.delays.extend(other.delays)


def episode_counts(
    flags: Sequence[bool] | Sequence[int] | npt.NDArray[np.bool_],
    windows: Sequence[Window],
    start: int = 0,
) -> EpisodeCounts:
    """Match flagged runs against labelled windows (inclusive point indices)."""
    flagged = np.asarray(flags, dtype=bool).copy()
    flagged[:start] = False
    episodes = label_runs(flagged)
    scored = [(max(s, start), e) for s, e in windows if e >= start]
    counts = EpisodeCounts(episodes=len(episodes), windows=len(scored))
    in_window = np.zeros(len(flagged) + 1, dtype=np.int64)
    for w_start, w_end in scored:
        in_window[w_start + 1 : w_end + 2] = 1
        hits = np.flatnonzero(flagged[w_start : w_end + 1])
        if len(hits):
            counts.found_windows += 1
            counts.delays.append(int(hits[0]))
    covered = np.cumsum(in_window)  # covered[i] = window points before index i
    counts.true_episodes = sum(1 for s, e in episodes if covered[e + 1] > covered[s])
    return counts


def summarise(counts: Iterable[EpisodeCounts]) -> dict[str, float | None]:
    """Micro-averaged precision, recall, F1 and mean delay (points) over ``counts``.

    Precision is 0 with no episode; recall is None with no window.
    """
    total = EpisodeCounts()
    for item in counts:
        total.add(item)
    precision = total.true_episodes / total.episodes if total.episodes else 0.0
    recall = total.found_windows / total.windows if total.windows else None
    if recall is None or precision + recall == 0:
        f1: float | None = None if recall is None else 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall)
    delay = float(np.mean(total.delays)) if total.delays else None
    return {
        "episode_precision": round(precision, 6),
        "episode_recall": None if recall is None else round(recall, 6),
        "episode_f1": None if f1 is None else round(f1, 6),
        "mean_delay_points": None if delay is None else round(delay, 3),
        "episodes": total.episodes,
        "true_episodes": total.true_episodes,
        "windows": total.windows,
        "found_windows": total.found_windows,
    }
