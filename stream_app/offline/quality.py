"""Quality per family, and NAB leave-one-family-out.

A *family* is a kind of series: a development collection's folder
(``msft-cloud-monitoring/<metric kind>``, ``skab/<group>``, ``tcpd``) or a
generated family (``gen/<family>``). Judging a change family by family, with
the NAB threshold chosen on the *other* families, shows whether a default
generalises or only fits the data it was tuned on.

>>> family_of("msft-cloud-monitoring/app1/app1-01.csv"), family_of("gen/counts/03")
('msft/app1', 'gen/counts')
>>> family_of("skab/valve1/3__Volume Flow RateRMS.csv"), family_of("tcpd/brent.csv")
('skab/valve1', 'tcpd')
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_app.offline import episodes, nab

if TYPE_CHECKING:
    from stream_app.offline.evaluate import LabelledSeries


def family_of(name: str) -> str:
    """The family of a series from its relative path."""
    parts = name.split("/")
    if parts[0] == "msft-cloud-monitoring" and len(parts) > 2:
        return f"msft/{parts[1]}"
    if len(parts) > 2:
        return f"{parts[0]}/{parts[1]}"
    return parts[0] if len(parts) > 1 else "other"


def onsets(flags: np.ndarray) -> np.ndarray:
    """1.0 at the first point of every run of flags, else 0.0.

    >>> onsets(np.array([0, 1, 1, 0, 1], dtype=bool)).tolist()
    [0.0, 1.0, 0.0, 0.0, 1.0]
    """
    first = np.asarray(flags, dtype=bool).copy()
    first[1:] &= ~np.asarray(flags, dtype=bool)[:-1]
    return first.astype(np.float64)


def onset_series(series: Sequence[LabelledSeries], detector: str) -> list[nab.NabSeries]:
    """``series`` for NAB with only each episode's first point of ``detector`` as a
    detection: what an alerting consumer of the episode events sees."""
    return [nab.NabSeries(s.name, onsets(s.runs[detector].flags), s.windows) for s in series]


def by_family(series: Sequence[LabelledSeries]) -> dict[str, list[LabelledSeries]]:
    groups: dict[str, list[LabelledSeries]] = defaultdict(list)
    for item in series:
        groups[family_of(item.name)].append(item)
    return dict(sorted(groups.items()))


def detector_metrics(series: Sequence[LabelledSeries], detector: str) -> dict[str, Any]:
    """NAB swept and on onsets, and onset-judged episode metrics for ``series``."""
    out: dict[str, Any] = {}
    has_windows = any(s.windows for s in series)
    if has_windows:
        swept = [nab.NabSeries(s.name, s.runs[detector].scores, s.windows) for s in series]
        out["nab_swept"] = round(nab.score_corpus(swept).score, 3)
        result = nab.score_corpus(onset_series(series, detector))
        out["nab_onsets"] = round(result.score, 3)
        out["nab_onsets_reference"] = round(nab.reference_score(result, series), 3)
    counts = [
        episodes.episode_counts(s.runs[detector].flags, s.windows, s.probation) for s in series
    ]
    summary = episodes.summarise(counts)
    out["f1"] = summary["episode_f1"]
    out["precision"] = summary["episode_precision"]
    out["recall"] = summary["episode_recall"]
    out["delay"] = summary["mean_delay_points"]
    out["outside_share"] = summary["outside_share"]
    out["median_len_ratio"] = summary["median_length_ratio"]
    out["max_len_ratio"] = summary["max_length_ratio"]
    out["episodes"] = summary["episodes"]
    if not has_windows:
        out["false_per_10k"] = summary["false_per_10k"]
    return out


def family_metrics(
    series: Sequence[LabelledSeries], detectors: Sequence[str] = ("tsguard", "zscore", "river_hst")
) -> dict[str, dict[str, Any]]:
    """Metrics of each detector, family by family (decisions already in ``flags``)."""
    return {
        family: {d: detector_metrics(items, d) for d in detectors}
        for family, items in by_family(series).items()
    }


def family_report(
    series: Sequence[LabelledSeries], detectors: Sequence[str] = ("tsguard", "zscore", "river_hst")
) -> dict[str, Any]:
    """Per family and overall metrics for each detector (decisions already in ``flags``)."""
    overall = {d: detector_metrics(series, d) for d in detectors}
    free = [s for s in series if not s.windows]
    for d in detectors:
        if free:
            overall[d]["false_per_10k_free"] = detector_metrics(free, d)["false_per_10k"]
    return {"families": family_metrics(series, detectors), "overall": overall}


def lofo_nab(series: Sequence[LabelledSeries], detector: str) -> dict[str, Any]:
    """NAB standard per family with the swept threshold chosen on every *other* family.

    Families without windows get no NAB score; they still shape the threshold
    chosen for the others (their points can only be false positives).
    """
    groups = by_family(series)
    inputs = [
        [nab.NabSeries(s.name, s.runs[detector].scores, s.windows) for s in items]
        for items in groups.values()
    ]
    scored = [k for k, items in enumerate(groups.values()) if any(s.windows for s in items)]
    thresholds = nab.thresholds_without(inputs, scored)
    scores: dict[str, float] = {}
    families = list(groups)
    for index, threshold in zip(scored, thresholds, strict=True):
        family, items = families[index], groups[families[index]]
        raw = null = perfect = 0.0
        for s in items:
            held = nab.NabSeries(s.name, s.runs[detector].scores, s.windows)
            series_raw, detected, missed, _fp = nab.score_series_raw(held, threshold)
            raw += series_raw
            null -= detected + missed
            perfect += nab.perfect_series_raw(held)
        span = perfect - null
        scores[family] = round(100.0 * (raw - null) / span, 3) if span > 0 else 0.0
    mean = float(np.mean(list(scores.values()))) if scores else 0.0
    return {"families": scores, "mean": round(mean, 3)}
