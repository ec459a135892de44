"""``tsguard evaluate``: tsguard and two baselines on a labelled folder, side by side.

DATA holds ``timestamp,value,label`` CSVs (searched recursively; other CSVs are
skipped) and optionally ``windows.json`` (``{relative path: [[start, end], ...]}``,
inclusive ISO-8601 or epoch-second ends; a malformed one is an error naming its
entry). Without an entry there, a series' windows follow NAB's rule from its label
runs (:func:`stream_app.offline.nab.nab_windows`).

The NAB score sweeps a threshold on each detector's ``anomaly_score``
(``nab_*``); ``nab_*_onsets`` score only the first point of each decided episode
as a detection (the product's decision: what an alerting consumer sees). Each is
also given as ``*_reference``, normalised the way NAB's reference code does it
(every labelled window counts in the perfect score, even one inside a
probationary period). Results come per series, per family (a folder of the
dataset, or a generated family) and overall, with NAB leave-one-family-out
(``lofo_nab``: each family scored at the threshold chosen on all others).
Episode metrics use each detector's decisions: tsguard's episode policy
(``is_anomaly``), and for the baselines the threshold on their score that gives
the best corpus-wide episode F1 (chosen in hindsight, which favours the baselines).
"""

from __future__ import annotations

import itertools
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from stream_app.offline import baselines, episodes, nab, quality
from stream_app.offline.csvio import (
    MalformedCsvError,
    SeriesTable,
    find_csvs,
    has_columns,
    one_series_each,
    parse_timestamp,
    read_series_csv,
    read_text,
)
from stream_app.offline.terminal import first_of, text_name

if TYPE_CHECKING:
    from stream_app.core import EngineConfig


# The headline metrics, per detector, of `tsguard evaluate` (table, JSON and report).
TABLE_KEYS = (
    "nab_standard",
    "nab_low_fp",
    "nab_low_fn",
    "episode_f1",
    "episode_precision",
    "episode_recall",
    "mean_delay_points",
)

DETECTORS = ("tsguard", "river_hst", "zscore")
PROFILE_KEYS = {
    "standard": "nab_standard",
    "reward_low_fp": "nab_low_fp",
    "reward_low_fn": "nab_low_fn",
}
DECISION_QUANTILES = (0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999)
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(slots=True)
class DetectorRun:
    """One detector's output on one series."""

    scores: FloatArray
    flags: BoolArray
    expected: list[float | None] | None = None
    lower: list[float | None] | None = None
    upper: list[float | None] | None = None


@dataclass(slots=True)
class LabelledSeries:
    """One series of the dataset and what every detector made of it."""

    name: str
    timestamps: list[float]
    values: list[float | None]
    windows: list[nab.Window]
    runs: dict[str, DetectorRun] = field(default_factory=dict)

    @property
    def probation(self) -> int:
        return nab.probation_length(len(self.timestamps))


def read_windows_json(path: Path) -> dict[str, list[tuple[float, float]]]:
    """``windows.json``: ``{relative path: [[start, end], ...]}`` with ISO-8601 or epoch
    ends, as epoch seconds; a ``ValueError`` naming the file and the entry otherwise.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "windows.json"
    >>> _ = f.write_text('{"a.csv": [["2018-07-03 12:00:00", 1530622800]]}')
    >>> read_windows_json(f)
    {'a.csv': [(1530619200.0, 1530622800.0)]}
    >>> _ = f.write_text('{"a.csv": [1, 2]}')
    >>> read_windows_json(f)
    Traceback (most recent call last):
    ...
    ValueError: ...windows.json: a.csv: window 1 is not a [start, end] pair: 1
    """
    import orjson

    try:
        raw = orjson.loads(read_text(path))
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object of path: [[start, end], ...]")
    out: dict[str, list[tuple[float, float]]] = {}
    for name, pairs in raw.items():
        if not isinstance(pairs, list):
            raise ValueError(f"{path}: {name}: expected a list of [start, end] pairs")
        windows = []
        for k, pair in enumerate(pairs, start=1):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ValueError(f"{path}: {name}: window {k} is not a [start, end] pair: {pair}")
            try:
                start, end = (parse_timestamp(str(edge)) for edge in pair)
            except ValueError as exc:
                raise ValueError(f"{path}: {name}: window {k}: {exc}") from None
            if not start <= end:
                raise ValueError(f"{path}: {name}: window {k} ends before it starts: {pair}")
            windows.append((start, end))
        out[name] = windows
    return out


def load_dataset(
    root: Path,
    labelling: str = "windows",
    windows_file: Path | None = None,
    on_note: Callable[[str], None] | None = None,
    on_unreadable: Callable[[Path, OSError | MalformedCsvError], None] | None = None,
) -> tuple[list[LabelledSeries], list[Path]]:
    """The labelled series under ``root`` (a folder, or one CSV file), and the CSVs
    skipped for lack of columns.

    ``labelling="windows"`` takes a series' windows from ``windows.json`` when it
    has an entry there (else NAB's rule); ``"nab"`` always applies NAB's rule to the
    point labels (windows centred on each anomaly, 10 % of the series in all), which
    rewards early detection the way NAB does.

    ``windows_file`` (NAB's layout: ``timestamp,value`` files and a windows file kept
    elsewhere, keyed by the path under ``root``) labels every series it names, with or
    without a ``label`` column (an empty list: an anomaly-free series); a CSV it does
    not name is skipped, and a file that names no CSV under ``root`` is an error.

    ``on_note`` hears of windows that cover none of their series' points (a window in
    another year or time zone than the data would silently make the series anomaly-free),
    and, for a folder, of windows-file keys that name none of its CSVs.

    ``on_unreadable`` hears of each CSV of a folder that cannot be read (no permission,
    gone since the folder was listed) or is malformed, which is then left out; without
    it, or for one file, the error is raised.
    """
    if labelling not in ("windows", "nab"):
        raise ValueError(f"labelling must be windows or nab, not {labelling!r}")
    if windows_file is not None and labelling != "windows":
        raise ValueError("a windows file gives the windows: NAB's rule needs point labels")
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    # one file: named and labelled as it would be in its own folder
    single = not root.is_dir()
    folder = root.parent if single else root
    ts_windows: dict[str, list[tuple[float, float]]] = {}
    if windows_file is not None:
        ts_windows = read_windows_json(windows_file)
    elif labelling == "windows" and (folder / "windows.json").is_file():
        ts_windows = read_windows_json(folder / "windows.json")
    loaded, skipped = [], []
    csvs = find_csvs(root)
    if not single:
        one_series_each(csvs, folder)
    if not single and on_note is not None:
        _note_unmatched_keys(ts_windows, csvs, folder, windows_file, on_note)
    for path in csvs:
        name = text_name(path.relative_to(folder).as_posix())
        if single and name not in ts_windows:
            # one file, given without the folder the windows file is keyed by: the one
            # key that ends with its name
            ends = [key for key in ts_windows if key.endswith("/" + name)]
            name = ends[0] if len(ends) == 1 else name
        try:
            with _read_twice(path) as readable:
                labelled = has_columns(readable, ("timestamp", "value", "label"))
                if windows_file is None:
                    keep = labelled
                else:
                    keep = name in ts_windows and (
                        labelled or has_columns(readable, ("timestamp", "value"))
                    )
                # a value that is not a number is left out of the series, as replay's
                # invalid_value: before, one such cell threw the whole series out
                table = (
                    read_series_csv(
                        readable, ("value",), with_labels=labelled, keep_invalid_values=True
                    )
                    if keep
                    else None
                )
        except (OSError, MalformedCsvError) as exc:
            if single or on_unreadable is None:
                raise
            # as in a replay: the folder's other files are still evaluated
            on_unreadable(path, exc)
            continue
        if table is None:
            skipped.append(path)
            continue
        bad = len(table.invalid.get("value", ()))
        if bad and on_note is not None:
            on_note(f"{name}: {bad} value(s) not a number, left out as replay's invalid_value")
        _sort_by_time(table, name, on_note)
        if name in ts_windows:
            # each window on its own first: one that covers no point is said
            each = [nab.index_windows(table.timestamps, [pair]) for pair in ts_windows[name]]
            windows = nab.merge_windows([w for found in each for w in found])
            missed = sum(not found for found in each)
            if missed and on_note is not None:
                on_note(f"{name}: {missed} of its {len(each)} window(s) cover none of its points")
        else:
            windows = nab.nab_windows(table.labels or [])
        loaded.append(LabelledSeries(name, table.timestamps, table.values["value"], windows))
    if windows_file is not None and not loaded:
        example = next(iter(ts_windows), None)
        raise ValueError(
            f"{windows_file}: names no timestamp,value CSV under {root}"
            + (f" (its first entry: {example!r}, a path under that folder)" if example else "")
        )
    return loaded, skipped


@contextmanager
def _read_twice(path: Path) -> Iterator[Path]:
    """``path``, or for a named pipe (``evaluate <(zcat x.csv.gz)``) a copy of all it gives
    in a temporary folder: a CSV is read for its header, then for its rows, and a pipe is
    read once (it said "no CSV with timestamp,value,label columns", as a folder without
    one would). An error in the copy names the pipe."""
    if not stat.S_ISFIFO(path.stat().st_mode):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="tsguard-evaluate-") as folder:
        copy = Path(folder) / "pipe.csv"
        with path.open("rb") as pipe, copy.open("wb") as handle:
            shutil.copyfileobj(pipe, handle)
        try:
            yield copy
        except MalformedCsvError as exc:
            raise MalformedCsvError(path, exc.line, exc.reason) from None


def _note_unmatched_keys(
    ts_windows: dict[str, list[tuple[float, float]]],
    csvs: Sequence[Path],
    folder: Path,
    windows_file: Path | None,
    on_note: Callable[[str], None],
) -> None:
    """Say which keys of a windows file name no CSV under ``folder``: a key in another
    case or without its subfolder left its series labelled by NAB's rule (or skipped),
    and a missing CSV left its windows out of the score, without a word."""
    names = {path.relative_to(folder).as_posix() for path in csvs}
    unmatched = [key for key in ts_windows if key not in names]
    if not unmatched or (windows_file is not None and len(unmatched) == len(ts_windows)):
        return  # all match, or a --windows file that names none, which is an error
    source = windows_file if windows_file is not None else folder / "windows.json"
    on_note(
        f"{source}: {len(unmatched)} of its {len(ts_windows)} entries name no CSV under "
        f"{folder} (keys are paths under that folder): {first_of([repr(k) for k in unmatched])}"
    )


def _sort_by_time(table: SeriesTable, name: str, on_note: Callable[[str], None] | None) -> None:
    """Put a series' rows in time order (their labels with them), and keep one row per
    time, and say so: an export newest first would leave every row but one unscored by
    the detector, which reads a stream, and be ranked as it never was by detectors that
    do not look at order; a row at a time an earlier row had is a duplicate to the
    detector (no score) but two points to the baselines and to NAB's point count."""
    stamps = table.timestamps
    if all(a < b for a, b in itertools.pairwise(stamps)):
        return
    unsorted = not all(a <= b for a, b in itertools.pairwise(stamps))
    order = sorted(range(len(stamps)), key=stamps.__getitem__)
    labels = table.labels
    keep: list[int] = []
    for i in order:
        if keep and stamps[i] == stamps[keep[-1]]:
            if labels is not None and labels[i] > labels[keep[-1]]:
                labels[keep[-1]] = labels[i]  # a label on either copy labels the time
            continue
        keep.append(i)
    table.timestamps = [stamps[i] for i in keep]
    table.raw_timestamps = [table.raw_timestamps[i] for i in keep]
    for metric, column in table.values.items():
        table.values[metric] = [column[i] for i in keep]
        table.raw_values[metric] = [table.raw_values[metric][i] for i in keep]
    if labels is not None:
        table.labels = [labels[i] for i in keep]
    if on_note is None:
        return
    if unsorted:
        on_note(f"{name}: its rows are not in time order; evaluated sorted by time")
    dropped = len(stamps) - len(keep)
    if dropped:
        on_note(
            f"{name}: {dropped} row(s) at a time an earlier row already had; evaluated "
            "with the first row at each time (a label on any of them kept)"
        )


def generated_dataset(
    per_family: int,
    seed: int = 7,
    sampling: str = "regular",
    step: float = 300.0,
    points: int = 4032,
) -> list[LabelledSeries]:
    """The generated families (:mod:`stream_app.offline.families`) as labelled series."""
    from stream_app.offline.families import generate_families

    out = []
    for items in generate_families(per_family, seed, sampling, step, points).values():
        for g in items:
            windows = nab.nab_windows(g.labels)
            out.append(LabelledSeries(f"gen/{g.name}", g.timestamps, list(g.values), windows))
    return out


def run_tsguard(item: LabelledSeries, config: EngineConfig) -> DetectorRun:
    from stream_app.offline.replay import score_series

    entity, _, _ = item.name.rpartition(".")
    out = score_series(entity or item.name, "value", item.timestamps, item.values, config)
    scores = np.array([0.0 if s is None else s for s in out.scores], dtype=np.float64)
    return DetectorRun(
        scores, np.array(out.is_anomaly, dtype=bool), out.expected, out.lower, out.upper
    )


def run_all(
    series: Sequence[LabelledSeries],
    config: EngineConfig,
    detectors: Sequence[str] = DETECTORS,
    on_series: Callable[[LabelledSeries], None] | None = None,
) -> dict[str, float]:
    """Run every detector on every series; returns seconds spent per detector."""
    seconds = dict.fromkeys(detectors, 0.0)
    for item in series:
        for detector in detectors:
            started = time.perf_counter()
            if detector == "tsguard":
                item.runs[detector] = run_tsguard(item, config)
            elif detector == "river_hst":
                scores = baselines.hst_scores(item.values)
                item.runs[detector] = DetectorRun(scores, np.zeros(len(scores), dtype=bool))
            else:
                scores = baselines.zscore_scores(item.values)
                item.runs[detector] = DetectorRun(scores, np.zeros(len(scores), dtype=bool))
            seconds[detector] += time.perf_counter() - started
        if on_series is not None:
            on_series(item)
    return seconds


def _corpus_f1(series: Sequence[LabelledSeries], detector: str, threshold: float) -> float:
    counts = [
        episodes.episode_counts(s.runs[detector].scores >= threshold, s.windows, s.probation)
        for s in series
    ]
    return float(episodes.summarise(counts)["episode_f1"] or 0.0)


def choose_decision_threshold(
    series: Sequence[LabelledSeries], detector: str, extra: Sequence[float] = ()
) -> float:
    """The score threshold (from score quantiles) with the best corpus episode F1."""
    pooled = np.concatenate([s.runs[detector].scores[s.probation :] for s in series])
    quantiles = [float(q) for q in np.quantile(pooled, DECISION_QUANTILES)] if pooled.size else []
    candidates = [c for c in sorted({*quantiles, *extra}) if c > 0.0] or [1.0]
    return max(candidates, key=lambda t: (_corpus_f1(series, detector, t), t))


def _nab_inputs(series: Sequence[LabelledSeries], detector: str) -> list[nab.NabSeries]:
    return [nab.NabSeries(s.name, s.runs[detector].scores, s.windows) for s in series]


def score_detector(series: Sequence[LabelledSeries], detector: str) -> dict[str, Any]:
    """NAB (three profiles) and episode metrics, overall and per series."""
    inputs = _nab_inputs(series, detector)
    overall: dict[str, Any] = {}
    per_series: dict[str, dict[str, Any]] = {s.name: {} for s in series}
    thresholds = {}
    for profile in nab.PROFILES:
        key = PROFILE_KEYS[profile.name]
        result = nab.score_corpus(inputs, profile)
        overall[key] = round(result.score, 3)
        overall[f"{key}_reference"] = round(nab.reference_score(result, series, profile), 3)
        thresholds[key] = result.threshold
        if profile is nab.STANDARD:
            overall["nab_standard_detail"] = {
                "raw": round(result.raw, 4),
                "detected_windows": result.detected_windows,
                "missed_windows": result.missed_windows,
                "false_positives": result.false_positives,
            }
        for item in inputs:
            normalised = nab.normalised_series_score(
                item, result.per_series_raw[item.name], profile
            )
            per_series[item.name][key] = None if normalised is None else round(normalised, 3)
    overall["nab_thresholds"] = thresholds
    # Supplementary: NAB with only the opening point of each decided episode as a
    # detection, i.e. what an alerting consumer of the episode events would see.
    onset_inputs = quality.onset_series(series, detector)
    for profile in nab.PROFILES:
        result = nab.score_corpus(onset_inputs, profile)
        overall[f"{PROFILE_KEYS[profile.name]}_onsets"] = round(result.score, 3)
        overall[f"{PROFILE_KEYS[profile.name]}_onsets_reference"] = round(
            nab.reference_score(result, series, profile), 3
        )
    scored_points = np.concatenate([s.runs[detector].scores[s.probation :] for s in series])
    flagged = np.concatenate([s.runs[detector].flags[s.probation :] for s in series])
    overall["flagged_share"] = round(float(flagged.mean()), 5) if len(flagged) else 0.0
    overall["top_score_share"] = (
        round(float(np.mean(scored_points >= scored_points.max())), 5)
        if len(scored_points)
        else 0.0
    )
    counts = []
    for s in series:
        count = episodes.episode_counts(s.runs[detector].flags, s.windows, s.probation)
        counts.append(count)
        per_series[s.name].update(episodes.summarise([count]))
    overall.update(episodes.summarise(counts))
    free = [c for c, s in zip(counts, series, strict=True) if not s.windows]
    overall["false_per_10k_free"] = episodes.summarise(free)["false_per_10k"] if free else None
    return {"overall": overall, "series": per_series}


def evaluate(series: Sequence[LabelledSeries], seconds: dict[str, float]) -> dict[str, Any]:
    """The JSON-ready result of a run (detectors already run on ``series``)."""
    detectors = list(seconds)
    points = sum(len(s.timestamps) for s in series)
    result: dict[str, Any] = {
        "series_count": len(series),
        "points": points,
        "windows": sum(len(s.windows) for s in series),
        "probation": "first 15% of each series, at most 750 points, not scored",
        "overall": {},
        "series": {s.name: {} for s in series},
    }
    for detector in detectors:
        if detector != "tsguard":
            extra = (0.5,) if detector == "zscore" else ()
            threshold = choose_decision_threshold(series, detector, extra)
            for s in series:
                s.runs[detector].flags = s.runs[detector].scores >= threshold
        scored = score_detector(series, detector)
        scored["overall"]["decision_threshold"] = (
            "episode policy" if detector == "tsguard" else round(threshold, 6)
        )
        scored["overall"]["seconds"] = round(seconds[detector], 3)
        scored["overall"]["points_per_s"] = round(points / max(seconds[detector], 1e-9))
        result["overall"][detector] = scored["overall"]
        for name, metrics in scored["series"].items():
            result["series"][name][detector] = metrics
    result["families"] = quality.family_metrics(series, detectors)
    result["lofo_nab"] = {d: quality.lofo_nab(series, d) for d in detectors}
    return result
