"""The HTML report of ``tsguard evaluate --report DIR``: one inline SVG per series.

Each plot shows the values, tsguard's expected band, the labelled windows
(shaded) and, in strips underneath, the episodes each detector flagged. Long
series are reduced to min/max per pixel column so the file stays small.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_app.offline.evaluate import TABLE_KEYS, LabelledSeries
from stream_app.offline.nab import label_runs

WIDTH, PLOT_HEIGHT, STRIP_HEIGHT, MARGIN = 1000, 180, 10, 4
COLOURS = {"tsguard": "#d62728", "river_hst": "#9467bd", "zscore": "#8c564b"}
_STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;
text-align:right}th{background:#f3f3f3}h2{font-size:15px;margin:1.5em 0 .3em}
svg{background:#fff;border:1px solid #ddd}.legend span{margin-right:1.2em}"""


def _columns(values: npt.NDArray[np.float64], buckets: int) -> tuple[list[float], list[float]]:
    """Min and max of each of ``buckets`` equal slices (NaN where a slice is empty)."""
    lows, highs = [], []
    for part in np.array_split(values, buckets):
        finite = part[np.isfinite(part)]
        lows.append(float(finite.min()) if len(finite) else math.nan)
        highs.append(float(finite.max()) if len(finite) else math.nan)
    return lows, highs


def _path(xs: Sequence[float], ys: Sequence[float]) -> str:
    """An SVG path through the points, broken where y is NaN."""
    parts, pen_down = [], False
    for x, y in zip(xs, ys, strict=True):
        if math.isnan(y):
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
        pen_down = True
    return " ".join(parts)


def _as_array(values: Sequence[float | None] | None, n: int) -> npt.NDArray[np.float64]:
    if values is None:
        return np.full(n, np.nan)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def series_svg(item: LabelledSeries) -> str:
    """One plot: values, expected band, windows and detected episodes."""
    n = len(item.timestamps)
    values = _as_array(item.values, n)
    run = item.runs.get("tsguard")
    lower = _as_array(run.lower if run else None, n)
    upper = _as_array(run.upper if run else None, n)
    buckets = max(1, min(n, WIDTH // 2))
    v_lo, v_hi = _columns(values, buckets)
    b_lo, _ = _columns(lower, buckets)
    _, b_hi = _columns(upper, buckets)
    finite = values[np.isfinite(values)]
    y_min = float(finite.min()) if len(finite) else 0.0
    y_max = float(finite.max()) if len(finite) else 1.0
    pad = (y_max - y_min) * 0.08 or 1.0
    y_min, y_max = y_min - pad, y_max + pad

    def y(value: float) -> float:
        clipped = min(max(value, y_min), y_max)
        return MARGIN + (y_max - clipped) / (y_max - y_min) * (PLOT_HEIGHT - 2 * MARGIN)

    def x_of(index: float) -> float:
        return index / max(n, 1) * WIDTH

    xs = [(k + 0.5) * WIDTH / buckets for k in range(buckets)]
    height = PLOT_HEIGHT + STRIP_HEIGHT * len(item.runs) + 4
    out = [
        f'<svg width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for start, end in item.windows:
        out.append(
            f'<rect x="{x_of(start):.1f}" y="0" width="{max(x_of(end + 1) - x_of(start), 1):.1f}"'
            f' height="{PLOT_HEIGHT}" fill="#ffdd57" opacity="0.45"/>'
        )
    probation = x_of(item.probation)
    out.append(
        f'<rect x="0" y="0" width="{probation:.1f}" height="{PLOT_HEIGHT}" fill="#eee" '
        'opacity="0.6"/>'
    )
    band = [(x, y(h)) for x, h in zip(xs, b_hi, strict=True) if not math.isnan(h)]
    band += [
        (x, y(lo)) for x, lo in reversed(list(zip(xs, b_lo, strict=True))) if not math.isnan(lo)
    ]
    if band:
        points = " ".join(f"{x:.1f},{v:.1f}" for x, v in band)
        out.append(f'<polygon points="{points}" fill="#1f77b4" opacity="0.18"/>')
    for series in (v_hi, v_lo):
        out.append(
            f'<path d="{_path(xs, [y(v) if not math.isnan(v) else math.nan for v in series])}"'
            ' fill="none" stroke="#1f77b4" stroke-width="1"/>'
        )
    for row, (detector, detected) in enumerate(item.runs.items()):
        top = PLOT_HEIGHT + 2 + row * STRIP_HEIGHT
        colour = COLOURS.get(detector, "#333")
        out.append(f'<text x="2" y="{top + STRIP_HEIGHT - 2}" font-size="8">{detector}</text>')
        for start, end in label_runs(detected.flags):
            out.append(
                f'<rect x="{x_of(start):.1f}" y="{top}" '
                f'width="{max(x_of(end + 1) - x_of(start), 1.5):.1f}" '
                f'height="{STRIP_HEIGHT - 2}" fill="{colour}"/>'
            )
    out.append("</svg>")
    return "\n".join(out)


def _table(result: dict[str, Any], keys: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ("detector", *keys))
    rows = []
    for detector, metrics in result["overall"].items():
        cells = "".join(f"<td>{metrics.get(k, '')}</td>" for k in keys)
        rows.append(f"<tr><th>{html.escape(detector)}</th>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write_report(
    directory: Path, series: Sequence[LabelledSeries], result: dict[str, Any], title: str
) -> Path:
    """Write ``index.html`` into ``directory`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = TABLE_KEYS
    legend = (
        '<p class="legend"><span style="color:#1f77b4">values (min/max per pixel)</span>'
        '<span style="color:#7fa7d0">tsguard expected band</span>'
        '<span style="background:#ffdd57">labelled window</span>'
        '<span style="background:#ddd">probation (not scored)</span>'
        "<span>strips: detected episodes per detector</span></p>"
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        _table(result, keys),
        legend,
    ]
    for item in series:
        scores = result["series"].get(item.name, {})
        summary = ", ".join(
            f"{d}: NAB {m.get('nab_standard')}, F1 {m.get('episode_f1')}" for d, m in scores.items()
        )
        parts.append(f"<h2>{html.escape(item.name)}</h2><p>{html.escape(summary)}</p>")
        parts.append(series_svg(item))
    parts.append("</body></html>")
    target = directory / "index.html"
    target.write_text("\n".join(parts), encoding="utf-8")
    return target
