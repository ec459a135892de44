"""``tsguard replay`` keeps every row: a value that is not a number is a status, not an exit."""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stream_app.cli import app
from stream_app.offline.csvio import MalformedCsvError, SeriesRow, read_series_csv
from stream_app.offline.replay import AHEAD_LOOK, flag_ahead, rows_dated_ahead

BAD = {40: "not-a-number", 41: "12,5", 90: "1.2.3"}


def _write(path: Path, n: int = 150) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        for i in range(n):
            value = BAD.get(i, f"{10.0 + 3.0 * math.sin(i / 8.0):.4f}")
            writer.writerow([f"{1_700_000_000 + 60 * i}", value])


def test_unparsable_values_get_a_status_and_the_run_goes_on(tmp_path: Path) -> None:
    source, target = tmp_path / "s.csv", tmp_path / "out.csv"
    _write(source)
    result = CliRunner().invoke(app, ["replay", str(source), "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert "150 row(s)" in result.output
    assert "3 value(s) were not numbers" in result.output
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 150
    for i, row in enumerate(rows):
        if i in BAD:
            assert row["value"] == BAD[i]
            assert (row["status"], row["anomaly_score"], row["is_anomaly"]) == (
                "invalid_value",
                "",
                "0",
            )
        else:
            assert row["status"] != "invalid_value"
    assert all(row["anomaly_score"] != "" for row in rows[100:] if row["status"] == "ok")


def test_the_strict_reader_still_names_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "s.csv"
    _write(source)
    with pytest.raises(MalformedCsvError, match=r"s\.csv:42: cannot parse value"):
        read_series_csv(source)
    table = read_series_csv(source, keep_invalid_values=True)
    assert table.invalid == {"value": set(BAD)}
    assert [table.values["value"][i] for i in sorted(BAD)] == [None, None, None]


def test_the_summary_counts_the_rows_the_core_did_not_score(tmp_path: Path) -> None:
    """Before, a file newest first replayed with exit 0 and every row but one ``late``
    (no score), and the summary said nothing."""
    rows = [f"{1_700_000_000 + 60 * i},{10 + i % 7}" for i in range(200)]
    source = tmp_path / "newest_first.csv"
    source.write_text("timestamp,value\n" + "\n".join(reversed(rows)) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["replay", str(source), "-o", str(tmp_path / "a.csv")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert "199 value(s) older than a row before them" in said
    assert "newest first?): status late, no score" in said
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(
        "timestamp,value\n1000,1\n1060,2\n1060,3\n1120,nan\n1180,\n1240,5\n1300,-2e300\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["replay", str(mixed), "-o", str(tmp_path / "b.csv")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    for line in (
        "1 value(s) at a time a row before them already had: status duplicate",
        "1 value(s) empty: status missing",
        "1 value(s) not finite (nan, inf): status non_finite",
        "1 value(s) outside the configured limits or beyond +-1e150: status out_of_limits",
    ):
        assert line in said
    assert "late" not in said


def _series(times: list[float]) -> str:
    return "timestamp,value\n" + "".join(
        f"{t:.0f},{10 + 3 * math.sin(i / 5.0):.4f}\n" for i, t in enumerate(times)
    )


def test_one_row_dated_years_ahead_loses_only_itself(tmp_path: Path) -> None:
    """Before, one row whose year was a typo (2104 for 2024) was taken, and every row after
    it, 1,399 of 1,600, came out ``late`` with no score (the core's review, session 59)."""
    times = [1_700_000_000.0 + 300 * i for i in range(1600)]
    times[200] += 80 * 365.25 * 86400  # the typo
    source, target = tmp_path / "typo.csv", tmp_path / "out.csv"
    source.write_text(_series(times), encoding="utf-8")
    result = CliRunner().invoke(app, ["replay", str(source), "-o", str(target)])
    assert result.exit_code == 0, result.output
    with target.open(newline="", encoding="utf-8") as handle:
        status = [row["status"] for row in csv.DictReader(handle)]
    assert status[200] == "ahead"
    assert "late" not in status and status.count("ahead") == 1
    assert status[201:].count("ok") == 1399
    said = " ".join(result.stderr.split())
    assert "1 value(s) dated after most of the 8 rows that follow them" in said
    assert "typo in the year?): status ahead, no score" in said


def test_a_few_rows_from_a_clock_that_ran_ahead_are_the_ones_left_out(tmp_path: Path) -> None:
    times = [1_700_000_000.0 + 60 * i for i in range(400)]
    times[100:103] = [t + 7 * 86400 for t in times[100:103]]  # three rows a week ahead
    table = rows_dated_ahead(times)
    assert sorted(table) == [100, 101, 102]
    # a row a few steps early is the one left out, not the rows it jumped over
    shuffled = [1_700_000_000.0 + 60 * i for i in range(30)]
    shuffled.insert(10, shuffled[10] + 5 * 60 + 1)
    assert sorted(rows_dated_ahead(shuffled)) == [10]
    # rows swapped in pairs: each later row of a pair is merely late, as in the stream
    pairs = [1_700_000_000.0 + 60 * (i + (1 if i % 2 == 0 else -1)) for i in range(40)]
    assert rows_dated_ahead(pairs) == frozenset()


def test_files_the_stream_would_read_as_late_stay_late(tmp_path: Path) -> None:
    """A file newest first, and one whose clock was set back for good, are not rows dated
    ahead: their rows after do not go on, in order, from the rows before."""
    forward = [1_700_000_000.0 + 60 * i for i in range(300)]
    assert rows_dated_ahead(list(reversed(forward))) == frozenset()
    set_back = forward[:150] + [t - 3600 for t in forward[150:]]
    assert rows_dated_ahead(set_back) == frozenset()
    # a lateness the configuration allows is no reason to leave a row out
    early = [*forward[:50], forward[55] + 20, *forward[50:]]
    assert sorted(rows_dated_ahead(early)) == [50]
    assert rows_dated_ahead(early, lateness=400.0) == frozenset()
    source = tmp_path / "set_back.csv"
    source.write_text(_series(set_back), encoding="utf-8")
    result = CliRunner().invoke(app, ["replay", str(source), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    # the 60 rows after the clock went back repeat times already taken: the last eight
    # times taken are remembered (a batch sent again), the rest are older than the newest
    assert "52 value(s) older than a row before them" in said and "ahead" not in said
    assert "8 value(s) at a time a row before them already had" in said


def _rows(times: list[float]) -> list[SeriesRow]:
    return [SeriesRow(str(t), t, [], [], (), None) for t in times]


@pytest.mark.parametrize("seed", range(40))
def test_rows_dated_ahead_are_found_a_row_at_a_time_as_on_the_whole_file(seed: int) -> None:
    """``replay`` reads a file a row at a time (2 million rows took 941 MB when read
    whole); the rows dated ahead are the ones the whole-file rule finds."""
    rng = random.Random(seed)
    n = rng.randrange(0, 60)
    times = [float(i) for i in range(n)]
    for _ in range(rng.randrange(0, 4)):  # typos, clocks set back, a file newest first
        i = rng.randrange(n) if n else 0
        kind = rng.randrange(3)
        if kind == 0 and n:
            times[i] += rng.choice([5.0, 500.0, 9e9])
        elif kind == 1:
            times[i:] = [t - rng.choice([3.0, 30.0]) for t in times[i:]]
        else:
            times[i : i + 5] = reversed(times[i : i + 5])
    lateness = rng.choice([0.0, 2.0, 40.0])
    streamed = [i for i, (_, ahead) in enumerate(flag_ahead(_rows(times), lateness)) if ahead]
    assert streamed == _on_the_whole_file(times, lateness)
    assert sorted(rows_dated_ahead(times, lateness)) == streamed


def _on_the_whole_file(times: list[float], lateness: float, look: int = AHEAD_LOOK) -> list[int]:
    """The rule as replay applied it to a whole file before it read a row at a time (the
    product's code until then): the earliest of the next ``look`` rows makes a candidate,
    which is ahead where most of them go on, in order, from the newest row kept before."""
    t = np.asarray(times, dtype=np.float64)
    if len(t) <= look:
        return []
    after = np.lib.stride_tricks.sliding_window_view(t[1:], look).min(axis=1)
    flagged: list[int] = []
    newest, seen = -np.inf, 0
    for i in np.flatnonzero(after < t[: len(after)] - lateness).tolist():
        if i > seen:
            newest = max(newest, float(t[seen:i].max()))
        seen = i + 1
        following = t[i + 1 : i + 1 + look]
        goes_on = following[(following > newest) & (following < t[i] - lateness)]
        if 2 * len(goes_on) > look and bool(np.all(np.diff(goes_on) >= 0.0)):
            flagged.append(i)
        else:
            newest = max(newest, float(t[i]))
    return flagged


def test_a_row_is_decided_once_the_rows_it_looks_at_are_read() -> None:
    read: list[int] = []

    def rows() -> Iterator[SeriesRow]:
        for i, row in enumerate(_rows([float(t) for t in range(100)])):
            read.append(i)
            yield row

    decided = flag_ahead(rows())
    next(decided)
    assert len(read) == AHEAD_LOOK + 1


def test_times_closer_than_a_microsecond_are_one_time_as_the_stream_reads_them(
    tmp_path: Path,
) -> None:
    """The wire reads a number to the microsecond (as PostgreSQL stores it); a file's
    time column did not: 134 rows 0.3 us apart were scored by replay as 104 points
    while the stream took most of them as duplicates (review rev65b)."""
    source = tmp_path / "close.csv"
    rows = [
        f"{1_700_000_000 + i * 60 + k * 3e-7:.7f},{20 + (i % 5)}" for i in range(40) for k in (0, 1)
    ]
    source.write_text("timestamp,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
    target = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["replay", str(source), "-o", str(target)])
    assert result.exit_code == 0, result.output
    with target.open(encoding="utf-8") as f:
        statuses = [row["status"] for row in csv.DictReader(f)]
    assert statuses[1::2] == ["duplicate"] * 40  # each second row: the same microsecond
