"""The report's file and axes at the edges: a write that fails, the year 9999, values far
from 1 (review of the offline commands)."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from stream_app.cli import app
from stream_app.offline import report
from stream_app.offline.evaluate import DetectorRun, LabelledSeries

resource = pytest.importorskip("resource")


def _series(n: int) -> LabelledSeries:
    item = LabelledSeries(
        "a", [1_767_614_400.0 + 60.0 * i for i in range(n)], [math.sin(i / 7) for i in range(n)], []
    )
    item.runs["tsguard"] = DetectorRun(np.full(n, 0.5), np.zeros(n, dtype=bool))
    return item


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE as on Linux")
def test_a_report_that_cannot_be_written_whole_leaves_the_one_before(tmp_path: Path) -> None:
    """A full disk while writing index.html cut it where it stopped, over the report that
    was there, and the error did not say which file."""
    result: dict[str, Any] = {"overall": {"tsguard": {}}, "series": {}}
    target = report.write_report(tmp_path, [_series(2000)], result, "first")
    before = target.read_text("utf-8")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(OSError, match=r"report .*index\.html"):
            report.write_report(tmp_path, [_series(3000)], result, "second")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert target.read_text("utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html"]


def _reported(tmp_path: Path, rows: list[str]) -> str:
    """The HTML report ``evaluate --report`` writes of one CSV of ``rows`` (it must end
    with exit 0)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", str(data), "--report", str(out)])
    assert result.exit_code == 0, result.output
    return (out / "index.html").read_text("utf-8")


def test_values_of_1e_minus_15_get_their_plot(tmp_path: Path) -> None:
    """Every tick rounded to 0: the plot divided by its zero height, and ``evaluate
    --report`` ended with a ZeroDivisionError traceback after the whole evaluation."""
    rows = ["timestamp,value,label"]
    rows += [f"{1530626400 + 60 * i},{(2 + math.sin(i / 9)) * 1e-15:.6e},{int(i == 300)}"
             for i in range(400)]  # fmt: skip
    assert 'class="ytick"' in _reported(tmp_path, rows)


def test_a_series_in_the_year_9999_gets_its_report(tmp_path: Path) -> None:
    """The month ticks asked for 10000-01-01: after the whole evaluation the command
    ended with "error: year 10000 is out of range" and no report."""
    rows = ["timestamp,value,label"]
    start = datetime(9999, 1, 1, tzinfo=UTC).timestamp()
    days = [datetime.fromtimestamp(start + 86400.0 * i, UTC) for i in range(365)]
    rows += [f"{day:%Y-%m-%dT%H:%M:%S},{i % 7},{int(i == 200)}" for i, day in enumerate(days)]
    assert "9999-" in _reported(tmp_path, rows)
    ticks, _ = report.time_ticks(start, datetime(9999, 12, 31, tzinfo=UTC).timestamp())
    assert 4 <= len(ticks) <= 8


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("0001-01-01T00:00:00+01:00", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:30:00-01:00", datetime(9999, 12, 31, tzinfo=UTC)),
    ],
)
def test_a_time_whose_offset_leaves_the_calendar_gets_its_report(
    tmp_path: Path, first: str, then: datetime
) -> None:
    """The year 0 (or 10000) in UTC: replay gives the row ``bad_timestamp``, and the
    report ended with "year 0 is out of range" after the whole evaluation."""
    rows = ["timestamp,value,label", f"{first},1,0"]
    start = then.timestamp() - (0 if then.year == 1 else 300 * 3600.0)
    for i in range(1, 300):
        day = datetime.fromtimestamp(start + 3600.0 * i, UTC)
        rows.append(f"{day.isoformat()},{i % 5},{int(i == 200)}")
    assert 'class="xtick"' in _reported(tmp_path, rows)


@pytest.mark.parametrize(
    ("lo", "hi"), [(1e-15, 5e-15), (-3e-14, 2e-14), (1e300, 1.7e308), (-1e307, 3e307)]
)
def test_value_labels_far_from_one_are_distinct_and_fit_the_margin(lo: float, hi: float) -> None:
    """Values of 1e-15 had every label "0.000000000000"; values near 1e308 labels of
    295 digits."""
    _, _, step, ticks = report.nice_ticks(lo, hi)
    labels = report.tick_labels(ticks, step)
    assert len(set(labels)) == len(labels), labels
    assert max(map(len, labels)) <= 12, labels
    scale = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    read = [float(t[:-1]) * scale[t[-1]] if t[-1] in scale else float(t) for t in labels]
    assert read == pytest.approx(ticks, rel=1e-9, abs=0.0)


def test_a_report_over_a_link_loop_replaces_the_link(tmp_path: Path) -> None:
    """rev66e: ``index.html -> index.html`` ended the report with RuntimeError ("Symlink
    loop") after the whole evaluation, as replay did before its ``_real``."""
    (tmp_path / "index.html").symlink_to("index.html")
    result: dict[str, Any] = {"overall": {"tsguard": {}}, "series": {}}
    target = report.write_report(tmp_path, [_series(100)], result, "loop")
    assert target.is_file() and not target.is_symlink()
