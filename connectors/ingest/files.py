"""CSV and Parquet history as readings: column mapping, parsing, and row-level errors.

Pure and synchronous so the tests and the offline tools can use it without
Kafka. Every row becomes either a reading or a `Malformed` naming the file and
line, the dead-letter reason and the raw row: one bad row never stops a replay.
The reading rules are the worker's (`ReadingDecoder`), so whatever replays
cleanly is accepted downstream.
"""

from __future__ import annotations

import csv
import heapq
import io
import math
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from stream_app.offline.csvio import csv_error_text
from stream_app.wire import (
    METRIC_RE,
    Reading,
    ReadingDecoder,
    Rejection,
    epoch_seconds_from_number,
    parse_number,
    parse_timestamp,
)

TIMESTAMP_CANDIDATES = ("ts", "timestamp", "time", "datetime", "date", "event_time")
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none"})
_BAD_ENTITY_CHARS = re.compile(r"[^A-Za-z0-9_.:@/-]+")


class MappingError(ValueError):
    """The column mapping does not fit the file (a whole-file problem, not a row problem)."""


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Which columns hold what; None means guess (see `resolve`)."""

    timestamp: str | None = None
    entity_column: str | None = None
    entity: str | None = None
    metrics: tuple[str, ...] | None = None
    source: str = "replay"


@dataclass(frozen=True, slots=True)
class Malformed:
    """A row that could not become a reading."""

    location: str
    reason: str
    detail: str
    raw: bytes
    # The row itself could not be read (not CSV, a wrong field count, a time that is no
    # time), as against a value the stream refuses: `tsguard replay` refuses a file with
    # such a row (exit 2), and `replay-to-kafka` ends with exit 2 after it.
    unreadable: bool = False

    def message(self) -> str:
        return f"{self.location}: {self.reason}: {self.detail}"


Row = tuple[float, dict[str, Any] | Malformed]
# a row as read: its time (of the last reading before, for a malformed one), the row,
# where it is and its raw text
_Read = tuple[float, dict[str, Any] | Malformed, str, bytes]
# the most readings a file's reader holds while the rows after them are read: each of
# its entities holds at most AHEAD_LOOK + 1 (see _ahead_left_out)
HELD_MAX = 65_536


@dataclass(frozen=True, slots=True)
class _Resolved:
    timestamp: str
    entity_column: str | None
    entity: str
    metrics: tuple[str, ...]


def default_entity(path: Path) -> str:
    """The file name without extension, cleaned to a valid entity path."""
    return _BAD_ENTITY_CHARS.sub("_", path.stem).strip("/") or "replay"


def resolve(columns: Sequence[str], cmap: ColumnMap, path: Path) -> _Resolved:
    """Fill in the guesses: timestamp column by name, metrics = every other column."""
    present = list(columns)
    ts_col = cmap.timestamp or next((c for c in present if c.lower() in TIMESTAMP_CANDIDATES), None)
    if ts_col is None:
        raise MappingError(f"{path}: no timestamp column (have {present}; use --timestamp-column)")
    if ts_col not in present:
        raise MappingError(f"{path}: timestamp column {ts_col!r} not in {present}")
    if cmap.entity_column is not None and cmap.entity_column not in present:
        raise MappingError(f"{path}: entity column {cmap.entity_column!r} not in {present}")
    taken = {ts_col, cmap.entity_column}
    metrics = cmap.metrics or tuple(c for c in present if c not in taken)
    twice = sorted({c for c in present if present.count(c) > 1} & (taken | set(metrics)))
    if twice:
        # which of the columns holds the data would be a guess
        raise MappingError(f"{path}: column(s) {twice} named more than once in {present}")
    missing = [m for m in metrics if m not in present]
    if missing:
        raise MappingError(f"{path}: metric column(s) {missing} not in {present}")
    bad = [m for m in metrics if METRIC_RE.fullmatch(m) is None]
    if bad or not metrics:
        raise MappingError(f"{path}: no usable metric columns (invalid names: {bad})")
    return _Resolved(
        ts_col, cmap.entity_column, cmap.entity or default_entity(path), tuple(metrics)
    )


def to_epoch(value: Any) -> float:
    """Cell -> epoch seconds: numbers (seconds, or ms / us / ns when too large for seconds),
    ISO 8601 text, datetimes."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = parse_number(value)  # as a value cell is read: ASCII only
        except ValueError:
            # A CSV cell, not the wire: ISO 8601 in general, naive = UTC.
            try:
                value = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(
                    f"not a time: {value!r} (a number in ASCII digits, or ISO 8601)"
                ) from None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return parse_timestamp(aware.timestamp())  # the wire's range
    if isinstance(value, int | float) and not isinstance(value, bool):
        # seconds, or ms / us / ns where too large for seconds; then the wire's range
        value = epoch_seconds_from_number(float(value))
    return parse_timestamp(value)


class RowConverter:
    """One mapped row (column -> cell) to a reading dict, or a `Malformed`."""

    def __init__(self, resolved: _Resolved, source: str, now: float | None = None) -> None:
        self.r, self.source = resolved, source
        self._decoder = ReadingDecoder()
        self._now = time.time() if now is None else now

    def convert(
        self, row: Mapping[str, Any], location: str, raw: bytes
    ) -> dict[str, Any] | Malformed:
        try:
            ts = to_epoch(row.get(self.r.timestamp))
        except (ValueError, OverflowError, OSError) as exc:
            cell = row.get(self.r.timestamp)
            return Malformed(
                location,
                "bad_timestamp",
                f"column {self.r.timestamp!r}: {cell!r}: {exc}",
                raw,
                unreadable=True,
            )
        metrics: dict[str, float | None] = {}
        for name in self.r.metrics:
            cell = row.get(name)
            if cell is None or (isinstance(cell, str) and cell.strip().lower() in MISSING):
                metrics[name] = None
                continue
            try:
                value = parse_number(cell) if isinstance(cell, str) else float(cell)
            except (TypeError, ValueError):
                return Malformed(
                    location, "schema", f"column {name!r}: {cell!r} is not a number", raw
                )
            if math.isnan(value):
                metrics[name] = None
            elif not math.isfinite(value):
                return Malformed(
                    location, "non_finite", f"column {name!r}: {cell!r} is not finite", raw
                )
            else:
                metrics[name] = value
        entity = self.r.entity
        if self.r.entity_column is not None:
            entity = str(row.get(self.r.entity_column) or "").strip()
        doc: dict[str, Any] = {
            "entity": entity,
            "ts": ts,
            "metrics": metrics,
            "source": self.source,
        }
        checked = self._decoder.validate(doc, self._now)
        if isinstance(checked, Rejection):
            return Malformed(location, checked.reason, checked.detail, raw)
        assert isinstance(checked, Reading)
        return doc


class _Lines:
    """The physical lines of a text file, keeping those the record being read took: a
    record the csv module cannot parse (a quote never closed swallows every line after
    it, up to the field size limit) then costs its first line only, and the lines it
    took are read again."""

    def __init__(self, handle: Iterator[str]) -> None:
        self._handle = handle
        self._again: list[str] = []  # lines to read again, the next one last
        self.taken: list[str] = []
        self.line = 0  # lines handed out so far

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        text = self._again.pop() if self._again else next(self._handle)
        self.taken.append(text)
        self.line += 1
        return text

    def new_record(self) -> None:
        """The next line handed out begins a record."""
        self.taken = []

    def first_line(self) -> int:
        """The line the record being read began on."""
        return self.line - len(self.taken) + 1

    def skip_first(self) -> None:
        """Drop the record's first line and hand out the others again."""
        rest = self.taken[1:]
        self._again.extend(reversed(rest))
        self.line -= len(rest)
        self.taken = []


def read_csv(path: Path, cmap: ColumnMap, now: float | None = None) -> Iterator[Row]:
    """Rows of a CSV file with a header line; ``location`` is ``path:line`` (the line a
    row begins on). A line the csv module cannot parse is one malformed row, and so is a
    row dated ahead of the rows after it (:func:`_ahead_left_out`)."""
    return _ahead_left_out(_csv_rows(path, cmap, now))


def _csv_rows(path: Path, cmap: ColumnMap, now: float | None) -> Iterator[_Read]:
    # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first column's name
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        lines = _Lines(fh)
        reader = csv.reader(lines, strict=True)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise MappingError(f"{path}:1: the header is not CSV: {csv_error_text(exc)}") from None
        if header is None:
            return
        header = [h.strip() for h in header]
        conv = RowConverter(resolve(header, cmap, path), cmap.source, now)
        last_ts = 0.0
        while True:
            lines.new_record()
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                location = f"{path}:{lines.first_line()}"
                raw = lines.taken[0].rstrip("\r\n").encode() if lines.taken else b""
                detail = csv_error_text(exc)
                if len(lines.taken) > 1:
                    detail = (
                        f"a quoted field begins on this line and is not closed on it ({detail})"
                    )
                lines.skip_first()
                reader = csv.reader(lines, strict=True)
                yield (
                    last_ts,
                    Malformed(location, "schema", f"not CSV: {detail}", raw, unreadable=True),
                    location,
                    raw,
                )
                continue
            if not cells:
                continue
            location = f"{path}:{lines.first_line()}"
            raw = _csv_line(cells)
            if len(cells) != len(header):
                item: dict[str, Any] | Malformed = Malformed(
                    location,
                    "schema",
                    f"expected {len(header)} fields, got {len(cells)}",
                    raw,
                    unreadable=True,
                )
            else:
                item = conv.convert(dict(zip(header, cells, strict=True)), location, raw)
            if isinstance(item, dict):
                last_ts = item["ts"]
            yield last_ts, item, location, raw


def read_parquet(path: Path, cmap: ColumnMap, now: float | None = None) -> Iterator[Row]:
    """Rows of a Parquet file (needs pyarrow); ``location`` is ``path:row N`` (1-based).
    A row dated ahead of the rows after it is malformed (:func:`_ahead_left_out`)."""
    return _ahead_left_out(_parquet_rows(path, cmap, now))


def _parquet_rows(path: Path, cmap: ColumnMap, now: float | None) -> Iterator[_Read]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MappingError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow, or the 'parquet' extra)"
        ) from exc
    pfile = pq.ParquetFile(path)
    conv = RowConverter(resolve(pfile.schema_arrow.names, cmap, path), cmap.source, now)
    n, last_ts = 0, 0.0
    for batch in pfile.iter_batches(batch_size=65_536):
        for row in batch.to_pylist():
            n += 1
            raw = orjson.dumps(row, default=str, option=orjson.OPT_NON_STR_KEYS)
            location = f"{path}:row {n}"
            item = conv.convert(row, location, raw)
            if isinstance(item, dict):
                last_ts = item["ts"]
            yield last_ts, item, location, raw


def _ahead_left_out(rows: Iterator[_Read]) -> Iterator[Row]:
    """``rows`` as readings and malformed rows, a reading dated ahead of the readings of
    its entity after it (:func:`~stream_app.offline.replay.rows_dated_ahead`: a year
    typed wrong, a clock that ran ahead for a few rows) made a malformed ``bad_timestamp``
    row. Replayed, it moved its series' clock ahead, and the worker dead-lettered every
    later row of the series as late until the file caught up with it (89 of 100 rows of
    a backfill, for one row dated 28 days ahead); ``tsguard replay`` leaves such a row out
    the same way. Judged per entity, as the worker's clock is: a file grouped by device
    goes back in time at each device, and its last row is not ahead of the next one's.

    Rows come out in file order, a reading once the ``AHEAD_LOOK`` readings of its
    entity after it are read; past ``HELD_MAX`` rows held, the oldest reading held is let
    out as it is (fewer rows after it cannot tell)."""
    from stream_app.offline.replay import AheadJudge

    judges: dict[str, AheadJudge[list[Any]]] = {}
    # [the row as read, whether it is ahead: None until decided], in file order
    held: deque[list[Any]] = deque()
    kept = 0.0  # the time of the last reading let out: the merge key of the rows after

    def let_out() -> Iterator[Row]:
        nonlocal kept
        while held and held[0][1] is not None:
            (ts, item, location, raw), ahead = held.popleft()
            if not isinstance(item, dict):
                yield kept, item
            elif not ahead:
                kept = ts
                yield ts, item
            else:
                when = datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
                detail = (
                    f"{when} is ahead of the rows of its entity after it, which go on from"
                    " the rows before it (a typo, a clock that ran ahead): left out, or"
                    " every later row of its series would be late"
                )
                yield kept, Malformed(location, "bad_timestamp", detail, raw)

    def decided(verdict: tuple[list[Any], bool] | None) -> None:
        if verdict is not None:
            entry, ahead = verdict
            entry[1] = ahead

    for read in rows:
        item = read[1]
        if not isinstance(item, dict):
            held.append([read, False])
        else:
            entry = [read, None]
            held.append(entry)
            judge = judges.get(item["entity"])
            if judge is None:
                judge = judges[item["entity"]] = AheadJudge()
            decided(judge.push(entry, read[0]))
        yield from let_out()
        while len(held) > HELD_MAX:  # the oldest held is its entity's oldest
            decided(judges[held[0][0][1]["entity"]].decide())
            yield from let_out()
    for judge in judges.values():
        for verdict in judge.finish():
            decided(verdict)
    yield from let_out()


def read_file(path: Path, cmap: ColumnMap, now: float | None = None) -> Iterator[Row]:
    """Dispatch on the extension: .parquet/.pq are Parquet, anything else CSV."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return read_parquet(path, cmap, now)
    return read_csv(path, cmap, now)


def merged(paths: Iterable[Path], cmap: ColumnMap, now: float | None = None) -> Iterator[Row]:
    """All files interleaved by event time (each file is assumed to be in time order)."""
    return heapq.merge(*(read_file(p, cmap, now) for p in paths), key=lambda row: row[0])


def _csv_line(cells: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(cells)
    return buf.getvalue().encode()
