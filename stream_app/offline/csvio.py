"""Reading series CSVs for the offline tools.

A series file has a ``timestamp`` column and one or more value columns (``value``
by default); other columns are ignored. Timestamps are ISO-8601 with or without
a zone (naive means UTC) or epoch seconds (milliseconds, microseconds or nanoseconds
when too large to be seconds). A row that cannot be
read raises :class:`MalformedCsvError` naming the file and line; an empty or
non-finite *value* is not malformed, it is passed on for the cleaner to reject.

>>> parse_timestamp("2018-07-03 14:00:00"), parse_timestamp("2018-07-03T16:00:00+02:00")
(1530626400.0, 1530626400.0)
>>> parse_timestamp("1530626400"), parse_timestamp("1530626400000")
(1530626400.0, 1530626400.0)
>>> parse_timestamp("1530626400000000"), parse_timestamp("1530626400000000000")
(1530626400.0, 1530626400.0)
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, TextIO

from stream_app.wire import (
    ASCII_SPACE,
    TimestampRangeError,
    epoch_seconds_from_number,
    parse_number,
)

_MISSING = frozenset({"", "null", "none", "na", "n/a"})
HEADER_MAX_BYTES = 1 << 20  # a header line longer than this is not one (a binary file)
# A record longer than this is not a row of a series: a line of 50 million commas was read
# whole and split into a list of 50 million fields (500 MB for a 50 MB file) before its
# field count was found wrong.
ROW_MAX_CHARS = 1 << 22


class MalformedCsvError(ValueError):
    """A CSV file that cannot be read, with the file and 1-based line."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(slots=True)
class SeriesTable:
    """The rows of one CSV in file order."""

    path: Path
    raw_timestamps: list[str] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    raw_values: dict[str, list[str]] = field(default_factory=dict)
    values: dict[str, list[float | None]] = field(default_factory=dict)
    labels: list[int] | None = None
    #: Rows (0-based) whose cell of a metric is not a number, when the reader keeps them.
    invalid: dict[str, set[int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.timestamps)


def bad_input_message(exc: OSError | ValueError) -> str:
    """What bad input says after ``error: `` (a malformed CSV names itself)."""
    return f"malformed CSV: {exc}" if isinstance(exc, MalformedCsvError) else str(exc)


# what starts a formula in a spreadsheet (and a tab or a return, which some strip first);
# the API's CSV export quotes the same
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str) -> str:
    """A text cell of an output CSV as a spreadsheet shows it rather than runs it: behind a
    ``'`` where it would read as a formula (CSV injection).

    >>> [spreadsheet_text(t) for t in ("n/a", "=1+1", "@SUM(A1)", "-x", "")]
    ['n/a', "'=1+1", "'@SUM(A1)", "'-x", '']
    """
    return "'" + text if text.startswith(_FORMULA_START) else text


def parse_timestamp(text: str) -> float:
    """Epoch seconds (UTC) from ISO-8601 or an epoch number (see
    :func:`~stream_app.wire.epoch_seconds_from_number`); a number is read as a value is
    (:func:`~stream_app.wire.parse_number`)."""
    stripped = text.strip(ASCII_SPACE)
    try:
        number = parse_number(stripped)
    except ValueError:
        # raises ValueError on garbage; RFC 3339 allows a lower-case t and z (as the wire)
        stamp = datetime.fromisoformat(stripped.upper())
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.timestamp()
    if not math.isfinite(number):
        raise ValueError(f"timestamp is not finite: {text!r}")
    return epoch_seconds_from_number(number)


def parse_value(text: str) -> float | None:
    """A float, ``None`` for an empty cell; ``nan``/``inf`` pass through for the cleaner.
    Only ASCII white space is stripped: a cell padded with a no-break space is not a
    number (see :func:`~stream_app.wire.parse_number`)."""
    stripped = text.strip(ASCII_SPACE)
    if stripped.lower() in _MISSING:
        return None
    return parse_number(stripped)


class SeriesRow(NamedTuple):
    """One row of a series file, read: its time and cells as written and as parsed."""

    raw_ts: str
    ts: float
    raw_values: list[str]
    values: list[float | None]
    #: positions (in the metrics asked for) of cells that are not numbers, when kept
    invalid: tuple[int, ...]
    label: int | None


def iter_series_csv(
    path: Path,
    metrics: Sequence[str] = ("value",),
    with_labels: bool = False,
    keep_invalid_values: bool = False,
) -> Iterator[SeriesRow]:
    """The rows of a series file one at a time, in file order (a file is never held
    whole); raise :class:`MalformedCsvError` at the first bad row.

    With ``keep_invalid_values`` a value cell that is not a number does not stop the
    read: it becomes ``None`` and its position is in the row's ``invalid``.
    """
    began = 1
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            # strict: a quote never closed is an error, not a field that swallows the
            # rest of the file
            lines = _RecordLines(handle, path)
            reader = csv.reader(lines, strict=True)
            header = next(reader, None)
            if header is None:
                raise MalformedCsvError(path, 1, "empty file, expected a header row")
            columns = _column_indices(path, [name.strip() for name in header], metrics, with_labels)
            began = reader.line_num + 1
            width = len(header)
            lines.used = 0
            for row in reader:
                lines.used = 0
                if row:
                    yield _read_row(
                        path, row, columns, metrics, reader.line_num, width, with_labels,
                        keep_invalid_values,
                    )  # fmt: skip
                began = reader.line_num + 1
    except UnicodeDecodeError as exc:
        # the text is decoded a block at a time, ahead of the rows: find the line
        raise MalformedCsvError(
            path, _first_undecodable_line(path), f"not UTF-8 text ({exc.reason})"
        ) from exc
    except csv.Error as exc:
        # the line the bad record began on (a quote opened there may end the file)
        raise MalformedCsvError(path, began, f"CSV syntax error: {csv_error_text(exc)}") from exc


class _RecordLines:
    """The lines of a file for :func:`csv.reader`, none read whole beyond
    :data:`ROW_MAX_CHARS`: a record (its lines since ``used`` was last set to 0) that
    grows longer raises :class:`MalformedCsvError` at the line it reaches it on."""

    def __init__(self, handle: TextIO, path: Path) -> None:
        self.handle, self.path = handle, path
        self.used = self.line = 0

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        text = self.handle.readline(ROW_MAX_CHARS - self.used + 1)
        if not text:
            raise StopIteration
        self.line += 1
        self.used += len(text)
        if self.used > ROW_MAX_CHARS:
            raise MalformedCsvError(
                self.path, self.line, f"a row longer than {ROW_MAX_CHARS:,} characters"
            )
        return text


def read_series_csv(
    path: Path,
    metrics: Sequence[str] = ("value",),
    with_labels: bool = False,
    keep_invalid_values: bool = False,
) -> SeriesTable:
    """Read a whole series file (:func:`iter_series_csv`'s rows, kept as columns)."""
    table = SeriesTable(
        path=path,
        raw_values={m: [] for m in metrics},
        values={m: [] for m in metrics},
        labels=[] if with_labels else None,
        invalid={m: set() for m in metrics} if keep_invalid_values else {},
    )
    for i, row in enumerate(iter_series_csv(path, metrics, with_labels, keep_invalid_values)):
        table.raw_timestamps.append(row.raw_ts)
        table.timestamps.append(row.ts)
        for metric, raw, value in zip(metrics, row.raw_values, row.values, strict=True):
            table.raw_values[metric].append(raw)
            table.values[metric].append(value)
        for position in row.invalid:
            table.invalid[metrics[position]].add(i)
        if table.labels is not None and row.label is not None:
            table.labels.append(row.label)
    return table


def read_text(path: Path) -> str:
    """A whole small text file (a configuration, a windows file) as UTF-8, a byte-order
    mark allowed as in the CSVs; a ``ValueError`` naming the file where it is not text."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text ({exc.reason})") from None


def csv_error_text(exc: csv.Error) -> str:
    """The csv module's complaint, said so a person sees what to fix."""
    text = str(exc)
    if text == "unexpected end of data":
        return "a quoted field begins on this line and is never closed"
    return text


def _first_undecodable_line(path: Path) -> int:
    """The 1-based line of ``path`` where its bytes stop being UTF-8 (1 if none does)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def _column_indices(
    path: Path, header: list[str], metrics: Sequence[str], with_labels: bool
) -> dict[str, int]:
    wanted = ["timestamp", *metrics, *(["label"] if with_labels else [])]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise MalformedCsvError(
            path,
            1,
            f"missing column(s) {', '.join(missing)}; header is {_shown_header(header)}"
            + _missing_hint(header, missing),
        )
    twice = [name for name in dict.fromkeys(wanted) if header.count(name) > 1]
    if twice:
        # which of them holds the series would be a guess
        raise MalformedCsvError(
            path,
            1,
            f"column(s) {', '.join(twice)} named more than once; header is "
            + _shown_header(header),
        )
    return {name: header.index(name) for name in wanted}


def _read_row(
    path: Path,
    row: list[str],
    columns: dict[str, int],
    metrics: Sequence[str],
    line: int,
    width: int,
    with_labels: bool,
    keep_invalid_values: bool,
) -> SeriesRow:
    if len(row) != width:
        # a row with more fields than the header is as wrong as one with fewer: an
        # unquoted "1,010.5" or "10,5" would be read as 1 or 10
        raise MalformedCsvError(
            path,
            line,
            f"expected {width} fields as in the header, found {len(row)}"
            + (" (a number with a comma in it must be quoted)" if len(row) > width else ""),
        )
    raw_ts = row[columns["timestamp"]]
    try:
        ts = parse_timestamp(raw_ts)
    except TimestampRangeError as exc:
        raise MalformedCsvError(path, line, f"timestamp {exc}") from None
    except ValueError:
        raise MalformedCsvError(path, line, f"cannot parse timestamp {raw_ts!r}") from None
    raw_values = [row[columns[metric]] for metric in metrics]
    parsed: list[float | None] = []
    invalid: list[int] = []
    for position, (metric, raw) in enumerate(zip(metrics, raw_values, strict=True)):
        try:
            parsed.append(parse_value(raw))
        except ValueError:
            if keep_invalid_values:
                invalid.append(position)
                parsed.append(None)
                continue
            raise MalformedCsvError(
                path, line, f"cannot parse {metric} {raw!r} as a number"
            ) from None
    label = None
    if with_labels:
        raw_label = row[columns["label"]]
        try:
            number = parse_number(raw_label)
            # 0 normal, above 0 anomalous; nan and -1 read as normal before, and a file
            # whose anomalies were marked so had no window
            if not (number >= 0.0 and math.isfinite(number)):
                raise ValueError(raw_label)
        except ValueError:
            raise MalformedCsvError(
                path, line, f"cannot parse label {raw_label!r} (0 normal, 1 anomalous)"
            ) from None
        label = 1 if number > 0 else 0
    return SeriesRow(raw_ts, ts, raw_values, parsed, tuple(invalid), label)


def find_csvs(root: Path) -> list[Path]:
    """The CSV file itself (or pipe, ``<(zcat x.csv.gz)``), or every ``*.csv`` under a
    folder (recursively, sorted), the suffix in any case: a spreadsheet's ``EXPORT.CSV``
    was left out without a word. A link named ``.csv`` that leads nowhere is listed too,
    so reading it says so instead of the file being left out unnamed."""
    if not root.is_dir():
        return [root]
    # (Python 3.11's glob has no case_sensitive=False)
    return sorted(
        p
        for p in root.rglob("*.[cC][sS][vV]")
        if p.is_file() or (p.is_symlink() and not p.exists())
    )


def one_series_each(paths: Sequence[Path], root: Path) -> None:
    """A ``ValueError`` naming two CSVs of folder ``root`` whose names differ only in the
    case of their suffix (``a.csv`` and ``a.CSV``): both would be the series of one
    entity, ``a``, since the suffix is found whatever its case. ``replay`` and ``evaluate``
    scored both as ``a`` without a word, and a folder copied where names ignore case
    (macOS, Windows) keeps only one of them.

    >>> one_series_each([Path("d/a.csv"), Path("d/b.csv")], Path("d"))
    >>> one_series_each([Path("d/s/a.CSV"), Path("d/s/a.csv")], Path("d"))
    Traceback (most recent call last):
    ...
    ValueError: s/a.CSV and s/a.csv would be one series (entity s/a): rename one
    """
    seen: dict[str, Path] = {}
    for path in sorted(paths):
        relative = path.relative_to(root)
        entity = relative.with_suffix("").as_posix()
        first = seen.setdefault(entity, relative)
        if first != relative:
            raise ValueError(
                f"{first.as_posix()} and {relative.as_posix()} would be one series"
                f" (entity {entity}): rename one"
            )


def _shown_header(header: list[str], shown: int = 20, width: int = 64) -> str:
    """The header in an error message, cut short: one of 300,000 columns was written out
    whole (2.3 MB on the terminal).

    >>> _shown_header(["timestamp", "value"])
    'timestamp,value'
    >>> _shown_header(["t" * 100, *map(str, range(30))], shown=3, width=8)
    'tttttttt...,0,1,... (31 columns)'
    """
    names = [name if len(name) <= width else name[:width] + "..." for name in header[:shown]]
    more = f",... ({len(header)} columns)" if len(header) > shown else ""
    return ",".join(names) + more


def _missing_hint(header: list[str], missing: list[str]) -> str:
    """Why ``missing`` may not be in ``header`` when it looks as if they were: another
    case, or another separator (a spreadsheet's export where the decimal mark is a comma).

    >>> _missing_hint(["Timestamp", "value"], ["timestamp"])
    " (names are case-sensitive: the header has 'Timestamp')"
    >>> _missing_hint(["timestamp;value"], ["timestamp", "value"])
    " (columns must be separated by commas; this header is by ';')"
    >>> _missing_hint(["time", "value"], ["timestamp"])
    ''
    """
    folded = {name.casefold(): name for name in header}
    cased = [folded[name.casefold()] for name in missing if name.casefold() in folded]
    if cased:
        return f" (names are case-sensitive: the header has {', '.join(map(repr, cased))})"
    if len(header) == 1:
        for sep in (";", "\t", "|"):
            if sep in header[0]:
                return f" (columns must be separated by commas; this header is by {sep!r})"
    return ""


def has_columns(path: Path, names: Sequence[str]) -> bool:
    """Whether the header of ``path`` names all ``names``.

    Only the first line is read and decoded (the rest may be anything); where that line
    is not UTF-8 text, :class:`MalformedCsvError`.
    """
    with path.open("rb") as handle:
        first = handle.readline(HEADER_MAX_BYTES)
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedCsvError(path, 1, f"not UTF-8 text ({exc.reason})") from exc
    try:
        header = next(csv.reader([text]), [])
    except csv.Error as exc:
        raise MalformedCsvError(path, 1, f"CSV syntax error: {exc}") from exc
    return all(name in [h.strip() for h in header] for name in names)
