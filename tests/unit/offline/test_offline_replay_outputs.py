"""What ``tsguard replay`` writes for hostile input: text cells a spreadsheet would run,
and rows too long to be rows (review of the offline commands)."""

from __future__ import annotations

import csv
import itertools
import json
import os
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_app.cli import app
from stream_app.offline import csvio
from stream_app.offline.csvio import MalformedCsvError, read_series_csv

FORMULAS = ['=HYPERLINK("http://example.invalid","x")', "@SUM(1+1)", "+cmd|x", "-2+3+cmd|x"]


def test_text_cells_that_read_as_formulas_are_written_behind_a_quote(tmp_path: Path) -> None:
    """A value cell that is not a number was written back as it came: "=HYPERLINK(...)"
    ran when an operator opened the output in a spreadsheet (the API's export already
    quotes such cells)."""
    source, target = tmp_path / "s.csv", tmp_path / "out.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        cells = [*FORMULAS, "n/a?", "-1.5", "+2", "-inf"]
        for i, cell in enumerate(cells):
            writer.writerow([1_700_000_000 + 60 * i, cell])
    result = CliRunner().invoke(app, ["replay", str(source), "--output", str(target)])
    assert result.exit_code == 0, result.output
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["value"] for r in rows] == [
        *("'" + f for f in FORMULAS),
        "n/a?",
        "-1.5",
        "+2",
        "-inf",
    ]
    assert [r["status"] for r in rows[:5]] == ["invalid_value"] * 5


def test_a_row_of_millions_of_fields_is_malformed_without_reading_it_whole(
    tmp_path: Path,
) -> None:
    """A 50 MB line of commas was split into 50 million fields (500 MB) before its
    field count was checked: memory grew with the line, not flat."""
    source = tmp_path / "s.csv"
    commas = getattr(csvio, "ROW_MAX_CHARS", 1 << 22) + 10
    with source.open("w", encoding="utf-8") as handle:
        handle.write("timestamp,value\n1700000000,1\n1700000060,2")
        handle.write("," * commas)
        handle.write("\n1700000120,3\n")
    tracemalloc.start()
    try:
        with pytest.raises(MalformedCsvError, match=r"s\.csv:3: a row longer than"):
            read_series_csv(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * commas  # about the line, never a list of its fields (8 bytes each)


def test_rows_and_quoted_lines_within_the_bound_are_read(tmp_path: Path) -> None:
    source = tmp_path / "s.csv"
    note = "x" * 60_000  # two lines of one field, under the csv module's 128 KiB
    source.write_text(
        f'timestamp,value,note\r\n1700000000,1,"{note}\r\n{note}"\r\n1700000060,2,\r\n',
        encoding="utf-8",
    )
    table = read_series_csv(source)
    assert table.values["value"] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("layout", "said"),
    [
        ("seed: {}\n", "seed must be a whole number"),
        ("defaults:\n  params:\n    alpha_err: {}\n", "alpha_err must be a number"),
    ],
)
def test_a_config_of_yaml_aliases_is_refused_in_a_short_message(
    tmp_path: Path, layout: str, said: str
) -> None:
    """``seed: [&a [...], &b [*a, ...], ...]``: 300 bytes that YAML reads as a list of
    hundreds of millions of items, shared; the error message wrote out its whole repr
    (9 levels took 2.4 GB and ended in a MemoryError traceback). Here 7 levels."""
    levels, bomb = "abcdefg", '[&a ["x","x","x","x","x","x","x","x","x"]'
    for before, name in itertools.pairwise(levels):
        bomb += f", &{name} [" + ",".join([f"*{before}"] * 9) + "]"
    config = tmp_path / "bomb.yaml"
    config.write_text(layout.format(bomb + "]"), encoding="utf-8")
    source = tmp_path / "s.csv"
    source.write_text("timestamp,value\n1700000000,1\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["replay", str(source), "-o", str(tmp_path / "out.csv"), "--config", str(config)]
    )
    assert result.exit_code == 2
    assert said in result.output
    assert len(result.output) < 1000


def test_a_ground_truth_file_in_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    """``simulate ... --dry-run --ground-truth missing/gt.csv`` (offline) ended with a
    FileNotFoundError traceback, exit 1."""
    truth = tmp_path / "missing" / "gt.csv"
    args = ["simulate", "iot", "--dry-run", "--count", "3", "--start", "2020-01-01T00:00:00Z"]
    result = CliRunner().invoke(app, [*args, "--ground-truth", str(truth)])
    assert result.exit_code == 2, result.output
    assert "cannot write" in result.output and not truth.exists()


def test_links_that_loop_are_reported_not_a_traceback(tmp_path: Path) -> None:
    """A folder holding ``loop.csv -> loop.csv``, or ``-o`` naming such a link: Path.resolve
    raised RuntimeError and replay ended with a traceback (exit 1); evaluate names it."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.csv").write_text("timestamp,value\n1700000000,1\n", encoding="utf-8")
    (data / "loop.csv").symlink_to("loop.csv")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["replay", str(data), "-o", f"{out}/"])
    assert result.exit_code == 2, result.output
    assert "loop.csv" in result.output and "1 of 2 file(s) not replayed" in result.output
    assert (out / "good.csv").exists()
    link = tmp_path / "o.csv"
    link.symlink_to("o.csv")
    result = CliRunner().invoke(app, ["replay", str(data / "good.csv"), "-o", str(link)])
    assert result.exit_code == 2, result.output
    assert "symbolic links" in result.output


def test_a_header_of_many_columns_is_named_in_a_short_message(tmp_path: Path) -> None:
    """A column missing from a header of 300,000 columns: the message wrote the header
    out whole (2.3 MB on the terminal)."""
    source = tmp_path / "s.csv"
    columns = ",".join(f"c{i}" for i in range(100_000))
    source.write_text(f"timestamp,value,{columns}\n", encoding="utf-8")
    with pytest.raises(MalformedCsvError, match="missing column") as caught:
        read_series_csv(source, ("nope",))
    assert len(str(caught.value)) < 2000


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_device_that_cannot_take_the_output_is_named(tmp_path: Path) -> None:
    """``-o /dev/full`` said only "[Errno 28] No space left on device"; a file names itself."""
    source = tmp_path / "s.csv"
    rows = "".join(f"{1_700_000_000 + 60 * i},{i % 7}\n" for i in range(20_000))
    source.write_text("timestamp,value\n" + rows, encoding="utf-8")
    result = CliRunner().invoke(app, ["replay", str(source), "-o", "/dev/full"])
    assert result.exit_code == 2, result.output
    assert "cannot write /dev/full" in result.output


def test_a_file_name_that_is_not_utf8_is_replayed_and_evaluated(tmp_path: Path) -> None:
    """``temp\\xe9rature.csv`` (a Latin-1 name): the core could not seed its series from
    the lone surrogate Python keeps, replay left the file out with "'utf-8' codec can't
    encode character '\\udce9'", and evaluate ended on it after the whole run, with no
    JSON, table or report."""
    data = tmp_path / "data"
    data.mkdir()
    rows = [f"{1_700_000_000 + 60 * i},{i % 7},{int(i == 150)}" for i in range(200)]
    text = "timestamp,value,label\n" + "\n".join(rows) + "\n"
    odd = data / os.fsdecode(b"temp\xe9rature.csv")
    try:
        odd.write_text(text, encoding="utf-8")
    except (OSError, UnicodeEncodeError):
        pytest.skip("the file system takes only UTF-8 names")
    (data / "plain.csv").write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["replay", str(data), "-o", f"{out}/"])
    assert result.exit_code == 0, result.output
    assert (out / odd.name).exists()
    report = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", str(data), "--json", "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["series"]) == {"temp\\xe9rature.csv", "plain.csv"}
    assert "temp\\xe9rature.csv" in (report / "index.html").read_text("utf-8")


def test_a_cell_holding_a_carriage_return_keeps_its_row_whole(tmp_path: Path) -> None:
    """``"5\\r"`` is the number 5 and is written back as it came; csv.writer quoted "\\n"
    but not a bare "\\r", which every CSV reader takes as a line's end: the output's row
    was cut in two (and replay could not read its own output)."""
    source, target = tmp_path / "s.csv", tmp_path / "out.csv"
    source.write_bytes(b'timestamp,value\n1700000000,"=x\ry"\n1700000060,"5\r"\n"1700000120\r",6\n')
    result = CliRunner().invoke(app, ["replay", str(source), "--output", str(target)])
    assert result.exit_code == 0, result.output
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert [len(row) for row in rows] == [9] * 4
    assert [row[1] for row in rows[1:]] == ["'=x\ry", "5\r", "6"]
    assert [row[7] for row in rows[1:]] == ["invalid_value", "warmup", "warmup"]
    again = CliRunner().invoke(app, ["replay", str(target), "--output", str(tmp_path / "2.csv")])
    assert again.exit_code == 0, again.output
