"""``tsguard replay``: score CSV files through the detector core, as the stream would.

Every row goes through :meth:`SeriesProcessor.process` strictly in file order,
one point at a time. The output has exactly one row per input row, in input
order; rows the cleaner rejects keep their place with an empty score and the
reason in ``status``. ``is_anomaly`` is 1 on every row inside an open value
episode; ``episode_event`` says ``opened`` on the row where an episode opens and
``resolved`` on the row where it resolves (empty elsewhere), which is what an
alerting consumer of the anomaly events sees.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import math
import os
import stat
from collections import Counter, deque
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from itertools import pairwise
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TextIO, TypeVar

from stream_app.offline.csvio import (
    MalformedCsvError,
    SeriesRow,
    find_csvs,
    has_columns,
    iter_series_csv,
    one_series_each,
    read_text,
    spreadsheet_text,
)
from stream_app.offline.terminal import writing

if TYPE_CHECKING:
    from stream_app.core import EngineConfig, EntityProcessor, EpisodeEvent

_Row = TypeVar("_Row")

RESULT_COLUMNS = (
    "anomaly_score",
    "is_anomaly",
    "expected",
    "lower",
    "upper",
    "status",
    "episode_event",
)
OUTPUT_COLUMNS = ("timestamp", "value", *RESULT_COLUMNS)
INVALID_VALUE = "invalid_value"
AHEAD = "ahead"
# how many rows after a row say whether the file goes on without it (see rows_dated_ahead)
AHEAD_LOOK = 8


@dataclass(frozen=True, slots=True)
class ReplayedFile:
    """What one replayed file held: rows written, value cells that were not numbers, and
    the cells the core did not score, by status (``late``, ``duplicate``, ...)."""

    rows: int
    invalid_values: int
    unscored: dict[str, int] = field(default_factory=dict)


# what a status the core gives instead of a score means in a file (the replay's summary)
UNSCORED_MEANING = {
    "late": "older than a row before them (a file is read in time order: newest first?)",
    AHEAD: (
        f"dated after most of the {AHEAD_LOOK} rows that follow them, which go on from the"
        " rows before (a wrong clock, or a typo in the year?)"
    ),
    "duplicate": "at a time a row before them already had",
    "non_finite": "not finite (nan, inf)",
    "bad_timestamp": "at a time before the year 1 or after the year 9999",
    "out_of_limits": "outside the configured limits or beyond +-1e150",
    "missing": "empty",
    "too_many_series": "beyond the series limit",
}


@dataclass(slots=True)
class ScoredColumns:
    """The core's output for one series, one entry per input row."""

    scores: list[float | None] = field(default_factory=list)
    is_anomaly: list[bool] = field(default_factory=list)
    expected: list[float | None] = field(default_factory=list)
    lower: list[float | None] = field(default_factory=list)
    upper: list[float | None] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    episode_event: list[str] = field(default_factory=list)  # "opened", "resolved" or ""

    def add(self, result: _Result) -> None:
        self.scores.append(result.score)
        self.is_anomaly.append(result.is_anomaly)
        self.expected.append(result.expected)
        self.lower.append(result.lower)
        self.upper.append(result.upper)
        self.status.append(result.status)
        self.episode_event.append(result.episode_event)


def load_config(path: Path | None) -> EngineConfig:
    """The default engine configuration, or one read from a YAML or JSON file."""
    from stream_app.core import EngineConfig

    if path is None:
        return EngineConfig.default()
    text = read_text(path)
    mapping: Any
    if path.suffix.lower() == ".json":
        import orjson

        try:
            mapping = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from None
    else:
        import yaml

        try:
            mapping = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(mapping, dict):
        raise ValueError(
            f"{path}: the configuration must be a mapping, got {type(mapping).__name__}"
        )
    return EngineConfig.from_mapping(mapping)


def rows_dated_ahead(
    timestamps: Iterable[float], lateness: float = 0.0, look: int = AHEAD_LOOK
) -> frozenset[int]:
    """Rows dated after most of the ``look`` rows that follow them, while those go on,
    in order, from the rows before: one row whose year is a typo, or a few from a
    clock that ran ahead.

    The stream would take such a row and mark every later row ``late`` until the
    file caught up with it (the worker caps a reading's time at an hour ahead of its
    own clock; a file has no clock). A file is at hand, so its next rows decide: the
    one row is left out instead of the rest of the file. A file written newest first
    is not this (its rows after do not go on in order), nor is one whose clock was
    set back for good (its rows after are older than the rows before), and the rows
    there stay ``late`` as the stream would have them. Nothing about a row's value is
    read; the rows kept are still scored in file order, each before it is learned.

    >>> sorted(rows_dated_ahead([1, 2, 3, 9e9, 4, 5, 6, 7, 8, 9, 10, 11, 12]))
    [3]
    >>> sorted(rows_dated_ahead(range(20, 0, -1))), sorted(rows_dated_ahead(range(10)))
    ([], [])
    """
    flags = flag_ahead(timestamps, lateness, look, ts=float)
    return frozenset(i for i, (_, ahead) in enumerate(flags) if ahead)


def score_series(
    entity: str,
    metric: str,
    timestamps: Sequence[float],
    values: Sequence[float | None],
    config: EngineConfig,
    invalid: Set[int] = frozenset(),
) -> ScoredColumns:
    """Feed one series through a fresh :class:`EntityProcessor` (the worker's step), point by point.

    Rows in ``invalid`` (a value that is not a number) keep their place with
    status ``invalid_value`` and no score; the core never sees them.
    """
    return score_entity(entity, timestamps, {metric: values}, config, {metric: invalid})[metric]


def score_entity(
    entity: str,
    timestamps: Sequence[float],
    values: Mapping[str, Sequence[float | None]],
    config: EngineConfig,
    invalid: Mapping[str, Set[int]] | None = None,
    ahead: Set[int] = frozenset(),
) -> dict[str, ScoredColumns]:
    """Score an entity's metrics row by row through one :class:`EntityProcessor`.

    Each row is one reading with every metric of the row, as the worker sees a
    reading, so a wide file gets the entity's joint score and explanations when a
    configuration rule enables them. A metric's invalid cells are left out of
    their row's reading and keep their place with status ``invalid_value``; rows in
    ``ahead`` (:func:`rows_dated_ahead`) never reach the core, status ``ahead``.
    """
    from stream_app.core import EntityProcessor

    processor = EntityProcessor.create(entity, config)
    bad = invalid or {}
    metrics = list(values)
    out = {metric: ScoredColumns() for metric in metrics}
    for i, ts in enumerate(timestamps):
        left_out = [j for j, m in enumerate(metrics) if i in bad.get(m, ())]
        row = [values[m][i] for m in metrics]
        results = _score_row(processor, metrics, ts, row, left_out, i in ahead)
        for metric, result in zip(metrics, results, strict=True):
            out[metric].add(result)
    return out


class _Result(NamedTuple):
    """What one metric of one row became: the output's result columns, parsed."""

    score: float | None
    is_anomaly: bool
    expected: float | None
    lower: float | None
    upper: float | None
    status: str
    episode_event: str


def _unscored(status: str) -> _Result:
    return _Result(None, False, None, None, None, status, "")


def _score_row(
    processor: EntityProcessor,
    metrics: Sequence[str],
    ts: float,
    values: Sequence[float | None],
    left_out: Container[int],
    ahead: bool,
) -> list[_Result]:
    """One row as the worker sees a reading: every metric of the row but those
    ``left_out`` (a cell that is not a number: ``invalid_value``) in one step; a row
    dated ``ahead`` never reaches the core."""
    if ahead:
        return [_unscored(AHEAD)] * len(metrics)
    reading = {
        m: v for j, (m, v) in enumerate(zip(metrics, values, strict=True)) if j not in left_out
    }
    step = processor.process(ts, reading)
    results = []
    for metric in metrics:
        point = step.points.get(metric)
        if point is None:
            results.append(_unscored(INVALID_VALUE))
            continue
        results.append(
            _Result(
                point.score,
                point.is_anomaly,
                point.expected,
                point.lower,
                point.upper,
                point.status,
                _episode_event(step.events, metric),
            )
        )
    return results


def _cells(result: _Result) -> list[str]:
    return [
        _number(result.score),
        "1" if result.is_anomaly else "0",
        _number(result.expected),
        _number(result.lower),
        _number(result.upper),
        result.status,
        result.episode_event,
    ]


def _episode_event(events: Sequence[EpisodeEvent], metric: str) -> str:
    """``opened`` / ``resolved`` when one of the metric's value or stuck episodes does
    (the episodes ``is_anomaly`` marks; ``opened`` wins when one ends as another starts)."""
    found = ""
    for event in events:
        if event.kind != "silence" and event.metric == metric and event.event != "updated":
            if event.event == "opened":
                return "opened"
            found = event.event
    return found


def _number(value: float | None) -> str:
    return "" if value is None else format(value, ".10g")


def write_output(header: Sequence[str], rows: Iterable[Sequence[str]], destination: Path) -> None:
    """Write ``header`` and ``rows`` as they come (a row is written once it is scored, so
    a file of any length is never held whole)."""

    def write_rows(handle: TextIO) -> None:
        writer = csv.writer(handle, lineterminator="\n")
        # csv quotes a cell holding the line's end, "\n", but not a bare "\r" (a quoted
        # input cell "5\r" is the number 5 and is written back as it came), which every
        # reader takes as a line's end: the row was cut in two. Such a row is quoted whole.
        quoted = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_ALL)
        for row in itertools.chain([header], rows):
            (quoted if any("\r" in cell for cell in row) else writer).writerow(row)

    target = _file_to_replace(destination)
    if target is None:
        # a device, a named pipe or a socket (-o /dev/stdout, -o /dev/null, -o >(gzip)):
        # written into, never renamed over, which would put a file in the device's place;
        # what was written stays there if a later row is malformed
        with writing(str(destination)), destination.open("w", newline="", encoding="utf-8") as out:
            write_rows(out)
        return
    # an output that is a hard link to the input gets a new file instead of overwriting it
    write_replacing(target, write_rows, str(destination))


def write_replacing(target: Path, write: Callable[[TextIO], None], shown: str) -> None:
    """``write`` into a file beside ``target``, renamed over it when complete: a run
    stopped midway (Ctrl-C, a full disk, a malformed row) leaves no output that looks
    whole, and what was there before stays until then. An ``OSError`` names ``shown``
    (the output as the user gave it), not the partial file beside it nor a parent the
    error met ("No such file or directory: '/proc/.version.8060.partial'" for
    ``-o /proc/version``)."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    with writing(shown):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("w", newline="", encoding="utf-8") as handle:
                write(handle)
            os.replace(partial, target)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise


class AheadJudge(Generic[_Row]):
    """One series' rows judged dated ahead or not (:func:`rows_dated_ahead`) as they are
    pushed: each comes back with its verdict once the ``look`` rows after it are in (or at
    :meth:`finish`), so at most ``look + 1`` are held.

    >>> judge = AheadJudge[float]()
    >>> out = [judge.push(t, t) for t in [1, 2, 3, 9e9, *range(4, 13)]]
    >>> [row for row, ahead in [*filter(None, out), *judge.finish()] if ahead]
    [9000000000.0]
    """

    def __init__(self, lateness: float = 0.0, look: int = AHEAD_LOOK) -> None:
        self._lateness = lateness
        self._look = look
        self._held: deque[tuple[_Row, float]] = deque()
        self._newest = -math.inf  # the newest time of the rows decided and kept

    def __len__(self) -> int:
        return len(self._held)

    def oldest(self) -> _Row | None:
        """The oldest row held (None when none is)."""
        return self._held[0][0] if self._held else None

    def push(self, row: _Row, t: float) -> tuple[_Row, bool] | None:
        """Take ``row`` (at time ``t``); the row it lets be decided, with its verdict."""
        self._held.append((row, t))
        return self.decide() if len(self._held) > self._look else None

    def finish(self) -> Iterator[tuple[_Row, bool]]:
        """The rows still held, decided on the rows after them."""
        while self._held:
            yield self.decide()

    def decide(self) -> tuple[_Row, bool]:
        """The oldest row held, decided now (not ahead with fewer than ``look`` after it)."""
        row, t = self._held.popleft()
        lateness, look = self._lateness, self._look
        ahead = False
        if len(self._held) == look and min(f for _, f in self._held) < t - lateness:
            # rare: a candidate
            goes_on = [f for _, f in self._held if self._newest < f < t - lateness]
            ahead = 2 * len(goes_on) > look and all(b >= a for a, b in pairwise(goes_on))
        if not ahead and t > self._newest:
            self._newest = t
        return row, ahead


def flag_ahead(
    rows: Iterable[_Row],
    lateness: float = 0.0,
    look: int = AHEAD_LOOK,
    ts: Callable[[_Row], float] = attrgetter("ts"),
) -> Iterator[tuple[_Row, bool]]:
    """Each row with whether it is dated ahead (:func:`rows_dated_ahead`), decided as
    soon as the ``look`` rows after it are read: at most ``look + 1`` rows are held.
    ``ts`` reads a row's time.

    >>> from stream_app.offline.csvio import SeriesRow
    >>> rows = [SeriesRow("", t, [], [], (), None) for t in [1, 2, 3, 9e9, *range(4, 13)]]
    >>> [i for i, (_, ahead) in enumerate(flag_ahead(rows)) if ahead]
    [3]
    """
    judge = AheadJudge[_Row](lateness, look)
    for row in rows:
        decided = judge.push(row, ts(row))
        if decided is not None:
            yield decided
    yield from judge.finish()


def _file_to_replace(destination: Path) -> Path | None:
    """The regular file an output replaces: ``destination``, or the file a symbolic link
    there names (the link stays a link); ``None`` where it is something else that exists
    (a device, a named pipe, a socket), which is written into instead."""
    try:
        mode = destination.stat().st_mode  # through any link
    except (FileNotFoundError, NotADirectoryError):
        mode = stat.S_IFREG  # nothing there yet (or a link to nothing): a file to make
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{destination} is a folder, not a file to write")
    if not stat.S_ISREG(mode):
        return None
    return destination.resolve() if destination.is_symlink() else destination


def _wide_header(metrics: Sequence[str]) -> list[str]:
    """The output's columns where several metrics are scored: ``<metric>_<column>``."""
    header = ["timestamp"]
    for metric in metrics:
        header += [metric, *(f"{metric}_{column}" for column in RESULT_COLUMNS)]
    return header


def metric_names(metrics: Sequence[str] | None) -> list[str]:
    """The value columns to score (``value`` by default); a ``ValueError`` for a list
    that names one twice, names the time column, or whose output columns
    (``<metric>_<column>``) would collide with one another.

    >>> metric_names(None), metric_names(["temp", "vib"])
    (['value'], ['temp', 'vib'])
    >>> metric_names(["temp", "temp_status"])
    Traceback (most recent call last):
    ...
    ValueError: metrics temp, temp_status: output column(s) temp_status would be written twice
    """
    names = list(metrics) if metrics else ["value"]
    twice = sorted({m for m in names if names.count(m) > 1})
    if twice:
        raise ValueError(f"metric(s) {', '.join(twice)} named more than once")
    if "timestamp" in names:
        raise ValueError("timestamp is the time column, not a metric")
    if names != ["value"]:
        header = _wide_header(names)
        clash = sorted({c for c in header if header.count(c) > 1})
        if clash:
            raise ValueError(
                f"metrics {', '.join(names)}: output column(s) {', '.join(clash)} would be"
                " written twice"
            )
    return names


def entity_name(path: Path, root: Path) -> str:
    """A stable entity id for a file: its path under ``root`` without ``.csv``."""
    from stream_app.offline.terminal import text_name

    relative = path.relative_to(root) if path != root else Path(path.name)
    return text_name(relative.with_suffix("").as_posix())


def replay_file(
    source: Path,
    destination: Path,
    entity: str,
    config: EngineConfig,
    metrics: Sequence[str] | None = None,
) -> ReplayedFile:
    """Score one file into ``destination``, one output row per input row, a row at a time:
    a file of any length in a bounded memory (2 million rows took 941 MB, a 149 MB file
    of 200 metrics 5.9 GB, when the file was read whole first)."""
    from stream_app.core import EntityProcessor

    names = metric_names(metrics)
    lateness = max(config.resolve(entity, m).cleaning.allowed_lateness_s for m in names)
    processor = EntityProcessor.create(entity, config)
    unscored: Counter[str] = Counter()
    counts = {"rows": 0, "invalid": 0}

    def scored_rows() -> Iterator[list[str]]:
        try:
            yield from _scored(iter_series_csv(source, names, keep_invalid_values=True))
        except OSError as exc:  # the input's, read as the output is written: not the output's
            raise _InputError(exc) from exc

    def _scored(rows: Iterator[SeriesRow]) -> Iterator[list[str]]:
        for row, ahead in flag_ahead(rows, lateness):
            counts["rows"] += 1
            counts["invalid"] += len(row.invalid)
            results = _score_row(processor, names, row.ts, row.values, row.invalid, ahead)
            out = [row.raw_ts]
            for position, (raw, result) in enumerate(zip(row.raw_values, results, strict=True)):
                if result.status in UNSCORED_MEANING:
                    unscored[result.status] += 1
                # a cell that is not a number is text, which a spreadsheet opening the
                # output would run where it reads as a formula ("=HYPERLINK(...)")
                cell = spreadsheet_text(raw) if position in row.invalid else raw
                out += [cell, *_cells(result)]
            yield out

    header = _wide_header(names) if names != ["value"] else list(OUTPUT_COLUMNS)
    try:
        write_output(header, scored_rows(), destination)
    except _InputError as failed:
        raise failed.error from None
    return ReplayedFile(counts["rows"], counts["invalid"], dict(unscored))


class _InputError(Exception):
    """An input file's ``OSError`` on its way out through the output's writer, which would
    otherwise say it could not write the output."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def plan_outputs(
    source: Path,
    output: Path,
    metrics: Sequence[str] | None = None,
    into_folder: bool = False,
) -> tuple[list[tuple[Path, Path, str]], list[Path]]:
    """``(input file, output file, entity)`` for a file or a folder searched recursively.

    In a folder, CSVs whose header lacks ``timestamp`` or a metric column (an
    index, a README table) are returned separately as skipped; a single file
    is always planned, so a wrong header is reported as malformed.

    A single file is written into ``output`` under its own name where ``output`` is a
    folder, or is to be one (``into_folder``: it was given with a trailing ``/``, and is
    made if missing); else ``output`` is the file to write.
    """
    names = metric_names(metrics)  # a bad list is said once, before any file
    if source.exists() and not source.is_dir():
        # a file, or a pipe (``<(...)``, /dev/stdin): read once, as a file
        if into_folder and output.exists() and not output.is_dir():
            raise ValueError(f"{output}/: a trailing / names a folder, and this is not one")
        target = output / source.name if into_folder or output.is_dir() else output
        if _real(target) == _real(source) or _same_file(target, source):
            raise ValueError(f"{target}: the output would overwrite its input")
        return [(source, target, entity_name(source, source))], []
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such file or folder")
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output}: a folder's replay writes a folder, and this is a file")
    out_dir = _real(output)
    if out_dir == _real(source):
        raise ValueError(
            f"{output}: the output folder is the input folder, whose files it would overwrite"
        )
    # an output folder inside the input folder holds our own output: not read as input
    # (an input folder inside the output folder is read whole)
    nested = out_dir.is_relative_to(_real(source))
    columns = ["timestamp", *names]
    planned, skipped = [], []
    found = [
        path for path in find_csvs(source) if not (nested and _real(path).is_relative_to(out_dir))
    ]
    one_series_each(found, source)
    for path in found:
        try:
            wanted = has_columns(path, columns)
        except (MalformedCsvError, OSError):
            # its replay says what is wrong with it (unreadable too), and it is counted
            wanted = True
        if wanted:
            planned.append((path, output / path.relative_to(source), entity_name(path, source)))
        else:
            skipped.append(path)
    if not planned:
        raise ValueError(f"{source}: no CSV with columns {','.join(columns)}")
    inputs = {_real(path) for path, _, _ in planned}
    for path, target, _ in planned:
        if _real(target) in inputs:
            raise ValueError(f"{target}: the output of {path} would overwrite an input")
    return planned, skipped


def _real(path: Path) -> Path:
    """``path`` with its links followed, or as it is (absolute) where they loop: Python
    3.11's ``resolve`` raises ``RuntimeError`` on a loop, and a folder holding a link
    ``x.csv -> x.csv`` ended ``replay`` with that traceback (reading it then says
    "Too many levels of symbolic links", as ``evaluate`` does)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file (a hard link), where both exist."""
    try:
        return a.samefile(b)
    except OSError:
        return False


def replay(
    source: Path,
    output: Path,
    config: EngineConfig,
    metrics: Sequence[str] | None = None,
    on_file: Callable[[Path, int], None] | None = None,
) -> list[tuple[Path, int]]:
    """Replay a file or folder; ``on_file(path, rows)`` is called after each file."""
    done = []
    planned, _skipped = plan_outputs(source, output, metrics)
    for path, target, entity in planned:
        rows = replay_file(path, target, entity, config, metrics).rows
        done.append((path, rows))
        if on_file is not None:
            on_file(path, rows)
    return done
