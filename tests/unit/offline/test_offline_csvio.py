"""Reading series CSVs: timestamp formats and malformed files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from stream_app.offline.csvio import (
    MalformedCsvError,
    has_columns,
    parse_timestamp,
    read_series_csv,
)

NOON = 1_530_619_200.0  # 2018-07-03T12:00:00Z


@pytest.mark.parametrize(
    "text",
    [
        "2018-07-03T12:00:00Z",
        "2018-07-03T12:00:00+00:00",
        "2018-07-03T14:00:00+02:00",
        "2018-07-03 12:00:00",
        "2018-07-03T12:00:00",
        "1530619200",
        "1530619200.0",
        "1530619200000",
        "1530619200000000",
        "1530619200000000000",
        "1.5306192e18",
        " 2018-07-03T12:00:00.000Z ",
    ],
)
def test_timestamp_formats(text: str) -> None:
    assert parse_timestamp(text) == NOON


def test_epoch_milliseconds_keep_fractions() -> None:
    assert parse_timestamp("1530619200123") == pytest.approx(NOON + 0.123)
    assert parse_timestamp("1530619200123456") == pytest.approx(NOON + 0.123456)
    assert parse_timestamp("1530619200123456789") == pytest.approx(NOON + 0.123456789, abs=1e-6)


def test_a_series_stamped_in_nanoseconds_replays_as_in_seconds(tmp_path: Path) -> None:
    """pandas, InfluxDB and Prometheus export epoch nanoseconds: a replay of them scores
    as the same series in seconds does (they were read as milliseconds: 50,000-year steps)."""
    from typer.testing import CliRunner

    from stream_app.cli import app

    steps = range(400)
    values = [f"{50 + (i % 7) + (30 if i == 300 else 0)}" for i in steps]
    written = {}
    for unit, scale in (("s", 1), ("us", 10**6), ("ns", 10**9)):
        rows = "".join(
            f"{(1_530_619_200 + 300 * i) * scale},{v}\n" for i, v in zip(steps, values, strict=True)
        )
        source = tmp_path / f"{unit}.csv"
        source.write_text("timestamp,value\n" + rows, encoding="utf-8")
        out = tmp_path / f"{unit}.out.csv"
        result = CliRunner().invoke(app, ["replay", str(source), "--output", str(out)])
        assert result.exit_code == 0, result.output
        written[unit] = [line.split(",", 1)[1] for line in out.read_text("utf-8").splitlines()]
    assert written["ns"] == written["s"] == written["us"]
    assert any(line.endswith(",opened") for line in written["s"])


@pytest.mark.parametrize("text", ["yesterday", "", "nan", "2018-13-01T00:00:00Z", "1_530_619_200"])
def test_bad_timestamps_raise(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "series.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_values_missing_cells_and_extra_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "site,timestamp,value\nA,1000,1.5\nA,1060,\nA,1120,nan\n")
    table = read_series_csv(path)
    assert table.timestamps == [1000.0, 1060.0, 1120.0]
    assert table.values["value"][:2] == [1.5, None]
    assert table.raw_values["value"] == ["1.5", "", "nan"]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("time,value\n1,2\n", 1, "missing column(s) timestamp"),
        ("timestamp;value\n1000;1,5\n", 1, "separated by commas; this header is by ';'"),
        ("Timestamp,Value\n1000,1\n", 1, "case-sensitive: the header has 'Timestamp', 'Value'"),
        ("timestamp\tvalue\n1000\t1.5\n", 1, "separated by commas; this header is by '\\t'"),
        ("timestamp,value\n1000,1\n1060,abc\n", 3, "cannot parse value 'abc'"),
        ("timestamp,value\n1000,1\n1060,1_000\n", 3, "cannot parse value '1_000'"),
        ("timestamp,value\n1000,1\nnot-a-time,2\n", 3, "cannot parse timestamp"),
        ("timestamp,value\n1000,1\n1060\n", 3, "expected 2 fields as in the header, found 1"),
        pytest.param(
            "timestamp,value\n1000,1000\n1060,1,010.5\n",
            3,
            "found 3 (a number with a comma in it must be quoted)",
            id="a-thousands-separator-is-not-read-as-the-number-before-it",
        ),
        pytest.param(
            "timestamp,value,note\n1000,1,a\n1060,2\n", 3, "expected 3 fields", id="short-row"
        ),
        pytest.param(
            "timestamp,value\n1000,1\n1e26,2\n",
            3,
            "timestamp 1e+26 is not a time from the year 1 to the year 9999",
            id="nanoseconds-past-the-year-9999",
        ),
        pytest.param(
            "timestamp,value\n1000,1\n1e307,2\n", 3, "not a time from the year 1", id="1e307"
        ),
        ("", 1, "empty file"),
        ("timestamp,value,value\n1000,1,2\n", 1, "column(s) value named more than once"),
        pytest.param(
            'timestamp,value\n1000,1\n1060,2\n1120,"' + "9" * 200_000 + '"\n',
            4,
            "CSV syntax",
            id="a-field-over-the-csv-limit",
        ),
        pytest.param(
            'timestamp,value\n1000,1\n1060,"2\n'
            + "".join(f"{1120 + 60 * i},3\n" for i in range(995)),
            3,
            "a quoted field begins on this line and is never closed",
            id="a-quote-never-closed-does-not-swallow-the-file",
        ),
        pytest.param(
            'timestamp,value,note\n1000,1,"ok"\n1060,2,"half\n1120,3,x\n',
            3,
            "never closed",
            id="a-quote-never-closed-in-a-column-nobody-reads",
        ),
        pytest.param(
            'timestamp,value\n1000,1\n1060,"2"x\n1120,3\n', 3, "CSV syntax", id="text-after-a-quote"
        ),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(MalformedCsvError) as caught:
        read_series_csv(path)
    assert caught.value.line == line
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f"{path}:{line}:")


@pytest.mark.parametrize("where", [1, 2, 3000])
def test_text_that_is_not_utf8_is_named_at_its_line(tmp_path: Path, where: int) -> None:
    """The text is decoded a block at a time, ahead of the rows: the line is found."""
    lines = [b"timestamp,value"] + [b"%d,%d" % (1000 + 60 * i, i) for i in range(4000)]
    lines[where - 1] = lines[where - 1].replace(b",", b"\xff,", 1)
    path = tmp_path / "latin.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(MalformedCsvError, match="not UTF-8") as caught:
        read_series_csv(path)
    assert caught.value.line == where


def test_a_header_is_read_alone_and_its_bytes_named(tmp_path: Path) -> None:
    """``has_columns`` decodes only the first line: a file whose later rows are not
    UTF-8 still has its columns (its read names the row); an undecodable header is
    malformed, not a file without the columns."""
    later = tmp_path / "later.csv"
    later.write_bytes(b"\xef\xbb\xbftimestamp,value\r\n1000,1\r\n1060,\xff\r\n")
    assert has_columns(later, ("timestamp", "value"))
    assert not has_columns(later, ("timestamp", "label"))
    head = tmp_path / "head.csv"
    head.write_bytes(b"timestamp,va\xfflue\n1000,1\n")
    with pytest.raises(MalformedCsvError, match="not UTF-8") as caught:
        has_columns(head, ("timestamp", "value"))
    assert caught.value.line == 1


# Cells Python's float reads and no other system does: digits of other scripts, and a
# number padded or written with Unicode spaces (written as escapes: the characters
# look like ASCII ones)
NOT_NUMBERS = {
    "arabic-indic": "\u0661\u0660",
    "fullwidth": "\uff11\uff10.\uff15",
    "no-break-space": "\u00a010.5\u00a0",
    "em-space": "10.5\u2003",
    "devanagari-in-ascii": "1\u0967.5",
}


@pytest.mark.parametrize("cell", list(NOT_NUMBERS.values()), ids=list(NOT_NUMBERS))
def test_a_value_in_digits_or_spaces_outside_ascii_is_not_a_number(
    tmp_path: Path, cell: str
) -> None:
    """``float`` read them (10, 10.5), while ``1_000`` was refused because no other system
    reads it as a number: they are now what ``1_000`` is, invalid_value in a replay."""
    path = _write(tmp_path, f"timestamp,value\n1000,1\n1060,{cell}\n1120,2\n")
    with pytest.raises(MalformedCsvError, match="3: cannot parse value"):
        read_series_csv(path)
    table = read_series_csv(path, keep_invalid_values=True)
    assert table.invalid == {"value": {1}} and table.values["value"] == [1.0, None, 2.0]
    assert table.raw_values["value"][1] == cell  # written back as it was


@pytest.mark.parametrize("cell", list(NOT_NUMBERS.values()), ids=list(NOT_NUMBERS))
def test_a_time_number_in_digits_or_spaces_outside_ascii_is_not_a_time(cell: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(cell.replace("10", "1530619200"))


@pytest.mark.parametrize("cell", ["\u0661", "\uff11", "\u00a01"], ids=["arabic", "wide", "nbsp"])
def test_a_label_outside_ascii_is_malformed_as_a_value_is(tmp_path: Path, cell: str) -> None:
    """``float`` read an Arabic-Indic or fullwidth 1 in the label column as an anomaly,
    while the value column refused it."""
    path = _write(tmp_path, f"timestamp,value,label\n1000,1,0\n1060,2,{cell}\n")
    with pytest.raises(MalformedCsvError, match="3: cannot parse label"):
        read_series_csv(path, with_labels=True)


@pytest.mark.parametrize("cell", ["nan", "-1", "inf", "-0.5"])
def test_a_label_that_is_not_a_count_of_anomaly_is_malformed(tmp_path: Path, cell: str) -> None:
    """``nan`` and ``-1`` read as normal, so a file whose anomalies were marked so was
    evaluated as having none (windows 0, exit 0)."""
    path = _write(tmp_path, f"timestamp,value,label\n1000,1,0\n1060,2,{cell}\n")
    with pytest.raises(MalformedCsvError, match=r"3: cannot parse label .*0 normal, 1 anomalous"):
        read_series_csv(path, with_labels=True)
    path = _write(tmp_path, "timestamp,value,label\n1000,1,0.0\n1060,2,1.0\n1120,3,2\n")
    assert read_series_csv(path, with_labels=True).labels == [0, 1, 1]


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("1.05E+01", 10.5),
        ("+10.5", 10.5),
        ("  10.5 ", 10.5),
        ("\t10.5", 10.5),
        ('"10.5"', 10.5),
        ("-0.0", -0.0),
        ("5e-324", 5e-324),
        ("inf", math.inf),
        ("null", None),
        ("", None),
    ],
)
def test_what_is_read_as_a_number(tmp_path: Path, cell: str, value: float | None) -> None:
    path = _write(tmp_path, f"timestamp,value\n 1000\t,{cell}\n")
    table = read_series_csv(path)
    assert table.timestamps == [1000.0] and table.values["value"] == [value]
    nan = read_series_csv(_write(tmp_path, "timestamp,value\n1000,NaN\n")).values["value"][0]
    assert nan is not None and math.isnan(nan)


def test_an_rfc_3339_time_in_lower_case_is_read_as_the_wire_reads_it() -> None:
    """RFC 3339 allows a lower-case t and z, and the wire took them; a CSV did not."""
    from stream_app.wire.timefmt import parse_rfc3339

    for text in ("2024-03-10t02:30:00z", "2024-03-10t02:30:00.5+01:00"):
        assert parse_timestamp(text) == parse_rfc3339(text) == parse_timestamp(text.upper())
