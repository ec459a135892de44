"""``tsguard replay`` keeps every row: a value that is not a number is a status, not an exit."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_app.cli import app
from stream_app.offline.csvio import MalformedCsvError, read_series_csv

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
        "timestamp,value\n1000,1\n1060,2\n1060,3\n1120,nan\n1180,\n1240,5\n", encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["replay", str(mixed), "-o", str(tmp_path / "b.csv")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    for line in (
        "1 value(s) at a time a row before them already had: status duplicate",
        "1 value(s) empty: status missing",
        "1 value(s) not finite (nan, inf): status non_finite",
    ):
        assert line in said
    assert "late" not in said
