"""The HTML report of ``tsguard evaluate --report``: axes, score strip, onsets, families."""

from __future__ import annotations

import json
import math
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from typer.testing import CliRunner

from stream_app.cli import app
from stream_app.offline import report
from stream_app.offline.evaluate import DetectorRun, LabelledSeries

DBL_MAX = sys.float_info.max

SVG = "{http://www.w3.org/2000/svg}"
START = 1_767_614_400.0  # 2026-01-05 12:00 UTC


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_csv(path: Path, n: int, spikes: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["timestamp,value,label"]
    for i in range(n):
        anomalous = any(s <= i < s + 5 for s in spikes)
        value = 50.0 + 8.0 * math.sin(i / 12.0) + rng.normal(0.0, 0.5) + (30.0 if anomalous else 0)
        rows.append(f"{_iso(START + 60.0 * i)},{value:.3f},{int(anomalous)}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _plots(html_text: str) -> list[ElementTree.Element]:
    return [ElementTree.fromstring(p) for p in re.findall(r"<svg.*?</svg>", html_text, re.S)]


def _texts(svg: ElementTree.Element, cls: str) -> list[str]:
    return [e.text or "" for e in svg.iter(f"{SVG}text") if e.get("class") == cls]


def _by_class(svg: ElementTree.Element, tag: str, cls: str) -> list[ElementTree.Element]:
    return [e for e in svg.iter(f"{SVG}{tag}") if e.get("class") == cls]


def _path_points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", d)]


def test_cli_report_has_axes_score_trace_and_family_table(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "report"
    _write_csv(data / "web" / "a.csv", 600, [320, 480], seed=1)
    _write_csv(data / "web" / "b.csv", 500, [380], seed=2)
    _write_csv(data / "db" / "c.csv", 400, [300], seed=3)
    result = CliRunner().invoke(app, ["evaluate", str(data), "--json", "--report", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    html_text = (out / "index.html").read_text(encoding="utf-8")
    plots = _plots(html_text)
    assert len(plots) == 3
    lengths = {"web/a.csv": 600, "web/b.csv": 500, "db/c.csv": 400}
    names = re.findall(r"<h2>([^<]*\.csv)</h2>", html_text)
    for name, svg in zip(names, plots, strict=True):
        y_labels = [float(t) for t in _texts(svg, "ytick")]
        assert 4 <= len(y_labels) <= 6
        assert y_labels == sorted(y_labels)
        x_labels = _texts(svg, "xtick")
        assert 4 <= len(x_labels) <= 8
        last = START + 60.0 * (lengths[name] - 1)
        for label in x_labels:
            moment = datetime.strptime(label, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()
            assert START <= moment <= last
        assert len(_texts(svg, "stick")) == 7  # 0, 0.9, ..., 0.999999
        (trace,) = _by_class(svg, "path", "score")
        assert len(_path_points(trace.get("d", ""))) > 100
    # family table: the folders, each with every detector, NAB leave-one-family-out
    assert set(payload["families"]) == {"web", "db"}
    table = re.search(r'<table class="families">.*?</table>', html_text, re.S)
    assert table is not None
    for family in ("web", "db"):
        assert f">{family}</th>" in table.group(0)
    assert "lofo_nab" in table.group(0)
    lofo = payload["lofo_nab"]["tsguard"]["families"]["web"]
    assert f"<td>{lofo}</td>" in table.group(0)


def _series(name: str, n: int, onsets: list[int]) -> LabelledSeries:
    values: list[float | None] = [10.0 + math.sin(i / 5.0) for i in range(n)]
    flags = np.zeros(n, dtype=bool)
    scores = np.full(n, 0.5)
    for start in onsets:
        flags[start : start + 4] = True
        scores[start : start + 4] = 1.0
        values[start] = 40.0
    item = LabelledSeries(
        name,
        [START + 300.0 * i for i in range(n)],
        values,
        [(onsets[0] - 5, onsets[0] + 10)],
    )
    band: list[float | None] = [None] * 10 + [10.0] * (n - 10)
    item.runs["tsguard"] = DetectorRun(scores, flags, band, [8.0] * n, [12.0] * n)
    item.runs["zscore"] = DetectorRun(np.zeros(n), np.zeros(n, dtype=bool))
    return item


def test_onset_markers_sit_at_the_first_point_of_each_episode(tmp_path: Path) -> None:
    n, onsets = 400, [100, 250, 330]
    item = _series("a<b>&c", n, onsets)
    result = {"overall": {"tsguard": {"nab_standard": None}}, "series": {}}
    html_text = report.write_report(tmp_path, [item], result, "t & <t>").read_text("utf-8")
    assert "a&lt;b&gt;&amp;c" in html_text and "t &amp; &lt;t&gt;" in html_text
    assert '<table class="families">' not in html_text  # no families given
    (svg,) = _plots(html_text)
    expected = [report.LEFT + (i + 0.5) / n * report.PLOT_WIDTH for i in onsets]
    ticks = _by_class(svg, "line", "onset")
    assert [float(t.get("x1", "nan")) for t in ticks] == pytest.approx(expected, abs=0.06)
    triangles = _by_class(svg, "polygon", "onset")
    apexes = [float(t.get("points", "").split()[2].split(",")[0]) for t in triangles]
    assert apexes == pytest.approx(expected, abs=0.06)
    # the score trace reaches the top of the strip (score 1) right at each onset
    (trace,) = _by_class(svg, "path", "score")
    points = _path_points(trace.get("d", ""))
    top = min(y for _, y in points)
    for x in expected:
        near = [y for px, y in points if abs(px - x) < 3.0]
        assert near and min(near) == pytest.approx(top)
    # hover text tells what tsguard saw at the onset
    titles = [t.text or "" for t in svg.iter(f"{SVG}title")]
    assert any("value 40, expected 10, band 8 .. 12" in t for t in titles)


def test_family_table_shows_dash_for_missing_values(tmp_path: Path) -> None:
    item = _series("x", 200, [120])
    result = {
        "overall": {"tsguard": {}},
        "series": {},
        "families": {
            "gen/<odd>": {"tsguard": {"nab_swept": 61.5, "f1": None, "outside_share": 0.25}},
            "plain": {"tsguard": {"false_per_10k": 1.2}},
        },
        "lofo_nab": {"tsguard": {"families": {"gen/<odd>": 55.25}, "mean": 55.25}},
    }
    html_text = report.write_report(tmp_path, [item], result, "t").read_text("utf-8")
    table = re.search(r'<table class="families">.*?</table>', html_text, re.S)
    assert table is not None
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(0))
    cells = [re.findall(r"<td>(.*?)</td>", r) for r in rows[1:]]
    keys = list(report.FAMILY_KEYS)
    odd, plain = (dict(zip(keys, c, strict=True)) for c in cells)
    assert "gen/&lt;odd&gt;" in rows[1]
    assert odd["nab_swept"] == "61.5" and odd["lofo_nab"] == "55.25"
    assert odd["f1"] == "-" and odd["max_len_ratio"] == "-"
    assert plain["false_per_10k"] == "1.2" and plain["lofo_nab"] == "-"


def test_long_series_stay_small(tmp_path: Path) -> None:
    item = _series("long", 50_000, [10_000, 30_000])
    svg_text = report.series_svg(item)
    ElementTree.fromstring(svg_text)
    assert len(svg_text) < 60_000


@pytest.mark.parametrize(
    ("lo", "hi"),
    [(0.0, 1.0), (0.13, 9.7), (-3.2, 0.4), (1e6, 1.3e6), (5.0, 5.0), (0.001, 0.0013), (-50, 95)],
)
def test_nice_ticks_cover_the_range_with_four_to_six_round_ticks(lo: float, hi: float) -> None:
    low, high, step, ticks = report.nice_ticks(lo, hi)
    assert 4 <= len(ticks) <= 6
    assert low <= lo and high >= hi and (low, high) == (ticks[0], ticks[-1])
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in {1.0, 2.0, 2.5, 5.0}
    labels = report.tick_labels(ticks, step)
    assert len(set(labels)) == len(labels)


@pytest.mark.parametrize(
    ("span", "fmt"),
    [
        (600.0, "%Y-%m-%d %H:%M"),
        (3 * 3600.0, "%Y-%m-%d %H:%M"),
        (36 * 3600.0, "%Y-%m-%d %H:%M"),
        (3.9 * 86400, "%Y-%m-%d %H:%M"),
        (4.5 * 86400, "%Y-%m-%d"),
        (30 * 86400.0, "%Y-%m-%d"),
        (200 * 86400.0, "%Y-%m-%d"),
        (3 * 365 * 86400.0, "%Y-%m-%d"),
    ],
)
def test_time_ticks_are_round_utc_times_inside_the_span(span: float, fmt: str) -> None:
    start = START + 1234.0
    ticks, got = report.time_ticks(start, start + span)
    assert got == fmt
    assert 4 <= len(ticks) <= 8
    assert all(start <= t <= start + span for t in ticks)
    assert all(t % 60 == 0 for t in ticks)
    assert len({report.utc_label(t, fmt) for t in ticks}) == len(ticks)


@pytest.mark.parametrize(
    ("lo", "hi"), [(-DBL_MAX, DBL_MAX), (50.0, DBL_MAX), (-DBL_MAX, -1e308), (1e307, 1e307)]
)
def test_nice_ticks_at_the_ends_of_the_floats_stay_finite(lo: float, hi: float) -> None:
    """1.8e308 is a common "no data" marker: the axis's span overflowed to inf and the
    report (after the whole evaluation) died of an OverflowError."""
    low, high, step, ticks = report.nice_ticks(lo, hi)
    assert 4 <= len(ticks) <= 6
    assert all(math.isfinite(x) for x in (low, high, step, *ticks)) and low < high


def test_a_series_holding_the_largest_floats_gets_its_plot(tmp_path: Path) -> None:
    item = _series("sentinel", 600, [300])
    item.values[100], item.values[101] = DBL_MAX, -DBL_MAX
    svg = ElementTree.fromstring(report.series_svg(item))
    assert svg.tag.endswith("svg")
