"""The HTML report of ``tsguard evaluate --report DIR``: one inline SVG per series.

Each plot shows the values against a value axis and a UTC time axis,
tsguard's expected band, the labelled windows (shaded) and the probation
period; under it a strip with tsguard's ``anomaly_score`` (as
``-log10(1 - score)``, so 0.9, 0.99, ... are evenly spaced), then the episodes
each detector flagged. tsguard's episode onsets are marked on the values and
on the score strip. Long series are reduced to min/max (scores: max) per pixel
column so the file stays small.

>>> nice_ticks(0.13, 9.7)
(0.0, 10.0, 2.0, [0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
>>> tick_labels([0.0, 0.25, 0.5], 0.25), tick_labels([0.0, 2e6, 4e6], 2e6)
(['0.00', '0.25', '0.50'], ['0', '2M', '4M'])
"""

from __future__ import annotations

import html
import itertools
import math
import tempfile
from collections.abc import Sequence
from datetime import MAXYEAR, UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from stream_app.offline.evaluate import TABLE_KEYS, DetectorRun, LabelledSeries
from stream_app.offline.nab import label_runs
from stream_app.offline.replay import write_replacing
from stream_app.offline.terminal import visible
from stream_app.wire.timefmt import MAX_EPOCH, MIN_EPOCH

WIDTH, LEFT, RIGHT = 1000, 64, 16
PLOT_WIDTH = WIDTH - LEFT - RIGHT
TOP, PLOT_HEIGHT = 8, 180
SCORE_TOP, SCORE_HEIGHT = TOP + PLOT_HEIGHT + 8, 60
INNER = 5  # pixels between a panel's frame and its axis ends
STRIP_HEIGHT, AXIS_HEIGHT = 10, 20
MAX_LOG_SCORE = 6  # -log10(1 - score) is clipped to [0, 6]: 0.999999 and above at the top
COLOURS = {"tsguard": "#d62728", "river_hst": "#9467bd", "zscore": "#8c564b"}
VALUE_COLOUR, ONSET_COLOUR, GRID = "#1f77b4", "#d62728", "#e4e4e4"
FAMILY_KEYS = (
    "nab_swept",
    "nab_onsets",
    "lofo_nab",
    "f1",
    "precision",
    "recall",
    "outside_share",
    "max_len_ratio",
    "false_per_10k",
)
_STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px;margin-bottom:1em}td,th{border:1px solid #ccc;
padding:2px 6px;text-align:right}th{background:#f3f3f3}h2{font-size:15px;margin:1.5em 0 .3em}
svg{background:#fff;border:1px solid #ddd}.legend span{margin-right:1.2em}
svg text{font-family:system-ui,sans-serif}"""
# Candidate time steps (seconds) under a day; a day or more is used for spans of 4 days+.
_SUBDAY_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800)
_SUBDAY_STEPS_LONG = (3600, 7200, 10800, 21600, 43200, 86400)
_DAY = 86400
_MONDAY = 4 * _DAY  # 1970-01-05, the first Monday after the epoch
_MONTH_STEPS = (1, 2, 3, 6, 12, 24, 60, 120, 240, 600)
FloatArray = npt.NDArray[np.float64]
_AXIS_END = 1e306
_LABEL_CHARS = 12  # the longest value label the left margin holds
_MAX_DECIMALS = 330  # a float's smallest step, 5e-324, is written with 324


# ----------------------------------------------------------------------------- ticks


def nice_ticks(lo: float, hi: float) -> tuple[float, float, float, list[float]]:
    """Axis ends, step and 4-6 round ticks covering ``[lo, hi]`` (ends are ticks)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    # values near the float's end (1.8e308 is a common "no data" marker): the span and
    # a step of 10 ** (its exponent + 1) must stay finite; the plot pins beyond the axis
    lo = min(max(lo, -_AXIS_END), _AXIS_END)
    hi = min(max(hi, -_AXIS_END), _AXIS_END)
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    span = hi - lo
    exponent = math.floor(math.log10(span))
    chosen: tuple[float, int, int] | None = None
    # The smallest round step giving at most 6 ticks: the tightest axis; since
    # consecutive steps differ by at most 2x, it gives at least 4 ticks.
    for power in range(exponent - 2, exponent + 2):
        for multiple in (1.0, 2.0, 2.5, 5.0):
            step = multiple * 10.0**power
            first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
            if last - first + 1 <= 6:
                chosen = (step, first, last)
                break
        if chosen is not None:
            break
    if chosen is None:  # unreachable for finite input; keeps the type checker honest
        return lo, hi, span, [lo, hi]
    step, first, last = chosen
    digits = _decimals(step) + 1
    ticks = [round(k * step, digits) for k in range(first, last + 1)]
    return ticks[0], ticks[-1], step, ticks


def _decimals(step: float) -> int:
    """The fewest decimals that write ``step`` exactly (2.5 -> 1, 0.25 -> 2, 50 -> 0).

    Up to the smallest floats: capped at 12, a step of 1e-15 rounded every tick to 0, and
    the plot divided by its zero height (values of 1e-15 ended the report with a
    ZeroDivisionError after the whole evaluation).

    >>> _decimals(2.5e-15), _decimals(5e-324)
    (16, 324)
    """
    for digits in range(_MAX_DECIMALS):
        if abs(round(step, digits) - step) <= abs(step) * 1e-9:
            return digits
    return _MAX_DECIMALS


def tick_labels(ticks: Sequence[float], step: float) -> list[str]:
    """Labels for value ticks, with k/M/G/T for large magnitudes."""
    top = max((abs(t) for t in ticks), default=0.0)
    scale, suffix = 1.0, ""
    for threshold, factor, name in ((1e12, 1e12, "T"), (1e9, 1e9, "G"), (1e6, 1e6, "M")):
        if top >= threshold:
            scale, suffix = factor, name
            break
    else:
        if top >= 1e4:
            scale, suffix = 1e3, "k"
    digits = _decimals(step / scale)
    labels = []
    for tick in ticks:
        text = f"{tick / scale:.{digits}f}"
        if text.startswith("-") and float(text) == 0.0:
            text = text[1:]
        labels.append(text + (suffix if float(text) != 0.0 else ""))
    if len(set(labels)) == len(labels) and max(map(len, labels), default=0) <= _LABEL_CHARS:
        return labels
    # beyond what the fixed form writes in the margin (1e-15 steps all read
    # "0.000000000000"; 1e300 a label of 290 digits): the fewest significant digits that
    # tell the ticks apart, where that is shorter
    for digits in range(1, 18):
        short = [f"{tick:.{digits}g}" for tick in ticks]
        if len(set(short)) == len(short):
            break
    if len(set(labels)) < len(labels) or max(map(len, short)) < max(map(len, labels)):
        return short
    return labels


def _month_ticks(t0: float, t1: float, months: int) -> list[float]:
    start = datetime.fromtimestamp(t0, UTC)
    index = start.year * 12 + start.month - 1
    index += -index % months
    out: list[float] = []
    # a series may end in the year 9999, whose next month datetime cannot hold
    while index // 12 <= MAXYEAR:
        moment = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC).timestamp()
        if moment > t1:
            return out
        if moment >= t0:
            out.append(moment)
        index += months
    return out


def time_ticks(t0: float, t1: float) -> tuple[list[float], str]:
    """4-8 round UTC times in ``[t0, t1]`` and their strftime format.

    Dates only for spans of 4 days or more, else date, hours and minutes.
    """
    t0, t1 = _on_calendar(t0), _on_calendar(t1)
    span = t1 - t0
    if not (math.isfinite(span) and span > 0):
        return [t0] if math.isfinite(t0) else [], "%Y-%m-%d %H:%M"
    options: list[tuple[list[float], int]] = []
    if span < 4 * _DAY:
        for step in (*_SUBDAY_STEPS, *_SUBDAY_STEPS_LONG):
            first = math.ceil(t0 / step)
            count = math.floor(t1 / step) - first + 1
            if 4 <= count <= 8:
                options.append(([float((first + k) * step) for k in range(count)], step))
    else:
        for days, origin in ((1, 0), (2, 0), (7, _MONDAY), (14, _MONDAY)):
            step = days * _DAY
            first = math.ceil((t0 - origin) / step)
            count = math.floor((t1 - origin) / step) - first + 1
            if 4 <= count <= 8:
                options.append(([float(origin + (first + k) * step) for k in range(count)], step))
        for months in _MONTH_STEPS:
            if span / (months * 28 * _DAY) <= 9:
                ticks = _month_ticks(t0, t1, months)
                if 4 <= len(ticks) <= 8:
                    options.append((ticks, months * 30 * _DAY))
    if not options:
        even = [float(t) for t in np.linspace(t0, t1, 5)]
        return even, "%Y-%m-%d %H:%M:%S" if span < 300 else "%Y-%m-%d %H:%M"
    ticks, step = min(options, key=lambda o: (abs(len(o[0]) - 6), -o[1]))
    if step >= _DAY:
        return ticks, "%Y-%m-%d"
    return ticks, "%Y-%m-%d %H:%M" if step >= 60 else "%Y-%m-%d %H:%M:%S"


def utc_label(ts: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(_on_calendar(ts), UTC).strftime(fmt)


def _on_calendar(ts: float) -> float:
    """``ts`` within the years 1 to 9999, which a datetime holds: a time written with an
    offset may fall outside (``0001-01-01T00:00:00+01:00`` is in the year 0, which ended
    the report with "year 0 is out of range" after the whole evaluation).

    >>> utc_label(-62_135_600_400.0), utc_label(253_402_304_400.0)
    ('1-01-01 00:00', '9999-12-31 23:59')
    """
    return min(max(ts, MIN_EPOCH), MAX_EPOCH - 1.0)


# ----------------------------------------------------------------------------- drawing


def _buckets(n: int, count: int) -> list[tuple[int, int]]:
    """``count`` consecutive index slices ``[start, end)`` covering ``range(n)``."""
    edges = np.linspace(0, n, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def _reduce(
    values: FloatArray, buckets: Sequence[tuple[int, int]]
) -> tuple[FloatArray, FloatArray]:
    """Min and max of each slice (NaN where a slice has no finite value)."""
    lows, highs = np.full(len(buckets), np.nan), np.full(len(buckets), np.nan)
    for k, (start, end) in enumerate(buckets):
        part = values[start:end]
        finite = part[np.isfinite(part)]
        if len(finite):
            lows[k], highs[k] = finite.min(), finite.max()
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


def _area(xs: Sequence[float], ys: Sequence[float], base: float) -> str:
    """Closed areas between the points and ``base``, one per stretch without NaN."""
    parts: list[str] = []
    segment: list[tuple[float, float]] = []
    for x, y in [*zip(xs, ys, strict=True), (math.nan, math.nan)]:
        if not math.isnan(y):
            segment.append((x, y))
            continue
        if segment:
            points = " ".join(f"L{px:.1f},{py:.1f}" for px, py in segment)
            parts.append(
                f"M{segment[0][0]:.1f},{base:.1f} {points} L{segment[-1][0]:.1f},{base:.1f}Z"
            )
        segment = []
    return " ".join(parts)


def _as_array(values: Sequence[float | None] | None, n: int) -> FloatArray:
    if values is None:
        return np.full(n, np.nan)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def log_score(scores: FloatArray) -> FloatArray:
    """``-log10(1 - score)`` clipped to ``[0, 6]`` (NaN stays NaN).

    >>> log_score(np.array([0.0, 0.9, 0.999, 1.0])).round(6).tolist()
    [0.0, 1.0, 3.0, 6.0]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -np.log10(1.0 - np.clip(scores, 0.0, 1.0))
    return np.where(np.isnan(scores), np.nan, np.clip(out, 0.0, MAX_LOG_SCORE) + 0.0)


def onset_indices(flags: npt.NDArray[np.bool_]) -> list[int]:
    """The first index of every run of flags.

    >>> onset_indices(np.array([1, 1, 0, 0, 1, 0], dtype=bool))
    [0, 4]
    """
    flags = np.asarray(flags, dtype=bool)
    first = flags.copy()
    first[1:] &= ~flags[:-1]
    return [int(i) for i in np.flatnonzero(first)]


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.6g}"


def _onset_title(item: LabelledSeries, run: DetectorRun, index: int, values: FloatArray) -> str:
    """Hover text of an onset marker: what the detector saw at that point."""
    lower, upper = _as_array(run.lower, len(values)), _as_array(run.upper, len(values))
    expected = _as_array(run.expected, len(values))
    return (
        f"tsguard episode opened at {utc_label(item.timestamps[index], '%Y-%m-%d %H:%M:%S')} UTC"
        f" (point {index}): value {_fmt(values[index])}, expected {_fmt(expected[index])},"
        f" band {_fmt(lower[index])} .. {_fmt(upper[index])},"
        f" anomaly_score {float(run.scores[index]):.8g}"
    )


def series_svg(item: LabelledSeries) -> str:
    """One plot: values with axes, expected band, windows, score strip and episodes."""
    n = len(item.timestamps)
    values = _as_array(item.values, n)
    run = item.runs.get("tsguard")
    lower = _as_array(run.lower if run else None, n)
    upper = _as_array(run.upper if run else None, n)
    buckets = _buckets(n, max(1, min(n, PLOT_WIDTH // 2)))
    v_lo, v_hi = _reduce(values, buckets)
    b_lo, _ = _reduce(lower, buckets)
    _, b_hi = _reduce(upper, buckets)
    finite = values[np.isfinite(values)]
    data_lo = float(finite.min()) if len(finite) else 0.0
    data_hi = float(finite.max()) if len(finite) else 1.0
    y_min, y_max, step, y_ticks = nice_ticks(data_lo, data_hi)
    plot_bottom, score_bottom = TOP + PLOT_HEIGHT, SCORE_TOP + SCORE_HEIGHT

    def y(value: float) -> float:
        clipped = min(max(value, y_min), y_max)
        return TOP + INNER + (y_max - clipped) / (y_max - y_min) * (PLOT_HEIGHT - 2 * INNER)

    def y_score(level: float) -> float:
        return score_bottom - INNER - level / MAX_LOG_SCORE * (SCORE_HEIGHT - 2 * INNER)

    def x_of(index: float) -> float:
        return LEFT + index / max(n, 1) * PLOT_WIDTH

    xs = [x_of((a + b) / 2) for a, b in buckets]
    strips_top = score_bottom + 6
    axis_top = strips_top + STRIP_HEIGHT * len(item.runs) + 2
    height = axis_top + AXIS_HEIGHT
    out = [
        f'<svg width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'xmlns="http://www.w3.org/2000/svg" font-size="10">'
    ]
    # shaded spans over both panels: labelled windows and probation
    for start, end in item.windows:
        for top, bottom in ((TOP, plot_bottom), (SCORE_TOP, score_bottom)):
            out.append(
                f'<rect class="window" x="{x_of(start):.1f}" y="{top}" '
                f'width="{max(x_of(end + 1) - x_of(start), 1):.1f}" height="{bottom - top}" '
                'fill="#ffdd57" opacity="0.45"/>'
            )
    probation = x_of(item.probation) - LEFT
    for top, bottom in ((TOP, plot_bottom), (SCORE_TOP, score_bottom)):
        out.append(
            f'<rect class="probation" x="{LEFT}" y="{top}" width="{probation:.1f}" '
            f'height="{bottom - top}" fill="#ddd" opacity="0.6"/>'
        )
    if probation > 60:
        out.append(
            f'<text x="{LEFT + 3}" y="{plot_bottom - 3}" font-size="9" fill="#777">probation</text>'
        )
    # value axis: gridlines and labels
    for tick, label in zip(y_ticks, tick_labels(y_ticks, step), strict=True):
        ty = y(tick)
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + PLOT_WIDTH}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
        out.append(
            f'<text class="ytick" x="{LEFT - 4}" y="{ty + 3.5:.1f}" text-anchor="end">'
            f"{html.escape(label)}</text>"
        )
    # time axis: ticks at round UTC times, gridlines through both panels
    t_ticks, t_format = time_ticks(item.timestamps[0], item.timestamps[-1]) if n else ([], "")
    stamps = np.maximum.accumulate(np.asarray(item.timestamps, dtype=np.float64))
    positions: list[float] = (
        [float(p) for p in np.interp(t_ticks, stamps, np.arange(n))] if n else []
    )
    for tick, position in zip(t_ticks, positions, strict=True):
        tx = x_of(position + 0.5)
        anchor = "end" if tx > WIDTH - 50 else "start" if tx < LEFT + 45 else "middle"
        for top, bottom in ((TOP, plot_bottom), (SCORE_TOP, score_bottom)):
            out.append(
                f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top}" y2="{bottom}" stroke="{GRID}"/>'
            )
        out.append(
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{axis_top}" y2="{axis_top + 4}" stroke="#666"/>'
        )
        out.append(
            f'<text class="xtick" x="{tx:.1f}" y="{axis_top + 14}" text-anchor="{anchor}">'
            f"{html.escape(utc_label(tick, t_format))}</text>"
        )
    out.append(f'<text x="{LEFT - 4}" y="{axis_top + 14}" text-anchor="end" fill="#777">UTC</text>')
    # expected band and values
    band = [(x, y(h)) for x, h in zip(xs, b_hi, strict=True) if not math.isnan(h)]
    band += [
        (x, y(lo)) for x, lo in reversed(list(zip(xs, b_lo, strict=True))) if not math.isnan(lo)
    ]
    if band:
        points = " ".join(f"{x:.1f},{v:.1f}" for x, v in band)
        out.append(
            f'<polygon class="band" points="{points}" fill="{VALUE_COLOUR}" opacity="0.18"/>'
        )
    for series in (v_hi, v_lo):
        ys = [y(v) if not math.isnan(v) else math.nan for v in series]
        out.append(
            f'<path class="values" d="{_path(xs, ys)}" fill="none" stroke="{VALUE_COLOUR}" '
            'stroke-width="1"/>'
        )
    # score strip: max of -log10(1 - score) per column, own axis 0 .. 0.999999
    for level in range(MAX_LOG_SCORE + 1):
        sy = y_score(level)
        label = "0" if level == 0 else "0." + "9" * level
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + PLOT_WIDTH}" y1="{sy:.1f}" y2="{sy:.1f}" '
            f'stroke="{GRID}" stroke-width="0.6"/>'
        )
        out.append(
            f'<text class="stick" x="{LEFT - 4}" y="{sy + 2.5:.1f}" text-anchor="end" '
            f'font-size="8">{label}</text>'
        )
    for name, middle in (("value", TOP + PLOT_HEIGHT / 2), ("score", SCORE_TOP + SCORE_HEIGHT / 2)):
        out.append(
            f'<text x="12" y="{middle:.0f}" text-anchor="middle" fill="#777" '
            f'transform="rotate(-90 12 {middle:.0f})">{name}</text>'
        )
    if run is not None:
        scores = np.asarray(run.scores, dtype=np.float64)
        _, s_hi = _reduce(log_score(scores), buckets)
        ys = [y_score(v) if not math.isnan(v) else math.nan for v in s_hi]
        out.append(
            f'<path class="score" d="{_area(xs, ys, score_bottom)}" fill="{ONSET_COLOUR}" '
            f'fill-opacity="0.15" stroke="{ONSET_COLOUR}" stroke-width="1"/>'
        )
        # onset markers: a triangle on top of the values, a tick through the score strip
        for index in onset_indices(run.flags):
            ox = x_of(index + 0.5)
            title = f"<title>{html.escape(_onset_title(item, run, index, values))}</title>"
            out.append(
                f'<g>{title}<polygon class="onset" points="{ox - 4:.1f},{TOP} {ox + 4:.1f},{TOP} '
                f'{ox:.1f},{TOP + 7}" fill="{ONSET_COLOUR}"/>'
                f'<line class="onset" x1="{ox:.1f}" x2="{ox:.1f}" y1="{SCORE_TOP}" '
                f'y2="{score_bottom}" stroke="{ONSET_COLOUR}" stroke-dasharray="2,2"/></g>'
            )
    # panel frames
    for top, bottom in ((TOP, plot_bottom), (SCORE_TOP, score_bottom)):
        out.append(
            f'<rect x="{LEFT}" y="{top}" width="{PLOT_WIDTH}" height="{bottom - top}" '
            'fill="none" stroke="#999" stroke-width="0.8"/>'
        )
    # one strip per detector with its decided episodes
    for row, (detector, detected) in enumerate(item.runs.items()):
        top = strips_top + row * STRIP_HEIGHT
        colour = COLOURS.get(detector, "#333")
        out.append(
            f'<text x="{LEFT - 4}" y="{top + STRIP_HEIGHT - 2}" text-anchor="end" font-size="8">'
            f"{html.escape(detector)}</text>"
        )
        out.append(
            f'<rect x="{LEFT}" y="{top}" width="{PLOT_WIDTH}" height="{STRIP_HEIGHT - 2}" '
            'fill="#f6f6f6"/>'
        )
        for start, end in label_runs(detected.flags):
            out.append(
                f'<rect class="episode" x="{x_of(start):.1f}" y="{top}" '
                f'width="{max(x_of(end + 1) - x_of(start), 1.5):.1f}" '
                f'height="{STRIP_HEIGHT - 2}" fill="{colour}"/>'
            )
    out.append(
        f'<line x1="{LEFT}" x2="{LEFT + PLOT_WIDTH}" y1="{axis_top}" y2="{axis_top}" '
        'stroke="#666"/>'
    )
    out.append("</svg>")
    return "\n".join(part for part in out if part)


# ----------------------------------------------------------------------------- tables


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "<td>-</td>"
    return f"<td>{html.escape(str(value))}</td>"


def _table(result: dict[str, Any], keys: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ("detector", *keys))
    rows = []
    for detector, metrics in result["overall"].items():
        cells = "".join(_cell(metrics.get(k)) for k in keys)
        rows.append(f"<tr><th>{html.escape(detector)}</th>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def family_table(result: dict[str, Any]) -> str:
    """Per family and detector: NAB (swept, onsets, leave-one-family-out) and episodes."""
    families: dict[str, dict[str, dict[str, Any]]] = result.get("families") or {}
    if not families:
        return ""
    lofo: dict[str, Any] = result.get("lofo_nab") or {}
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ("family", "detector", *FAMILY_KEYS))
    rows = []
    for family, detectors in families.items():
        for row, (detector, metrics) in enumerate(detectors.items()):
            held_out = ((lofo.get(detector) or {}).get("families") or {}).get(family)
            merged = {**metrics, "lofo_nab": held_out}
            cells = "".join(_cell(merged.get(k)) for k in FAMILY_KEYS)
            name = (
                f'<th rowspan="{len(detectors)}" style="text-align:left">{_name(family)}</th>'
                if row == 0
                else ""
            )
            rows.append(f"<tr>{name}<th>{html.escape(detector)}</th>{cells}</tr>")
    return (
        "<h2>Per family</h2><p>lofo_nab: NAB standard with the threshold chosen on the other "
        f'families.</p><table class="families"><tr>{head}</tr>{"".join(rows)}</table>'
    )


def check_folder(directory: Path) -> None:
    """Make ``directory`` and write and remove a file in it, so that a report it cannot
    take fails before the evaluation (minutes on a corpus), not after it; a
    ``ValueError`` saying why."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".tsguard-report-"):
            pass
    except OSError as exc:
        raise ValueError(
            f"--report {directory}: cannot write there ({exc.strerror or exc})"
        ) from None


def write_report(
    directory: Path, series: Sequence[LabelledSeries], result: dict[str, Any], title: str
) -> Path:
    """Write ``index.html`` into ``directory`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = TABLE_KEYS
    legend = (
        f'<p class="legend"><span style="color:{VALUE_COLOUR}">values (min/max per pixel)</span>'
        '<span style="color:#7fa7d0">tsguard expected band</span>'
        '<span style="background:#ffdd57">labelled window</span>'
        '<span style="background:#ddd">probation (not scored)</span>'
        f'<span style="color:{ONSET_COLOUR}">&#9660; tsguard episode onset (hover for the '
        "values)</span><br>"
        f'<span style="color:{ONSET_COLOUR}">score strip: tsguard anomaly_score, max per pixel, '
        "on a -log10(1 - score) scale</span>"
        "<span>bottom strips: decided episodes per detector</span>"
        "<span>times in UTC</span></p>"
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_name(title)}"
        f"</title><style>{_STYLE}</style></head><body><h1>{_name(title)}</h1>",
        _table(result, keys),
        family_table(result),
        legend,
    ]
    for item in series:
        scores = result["series"].get(item.name, {})
        summary = ", ".join(
            f"{d}: NAB {_plain(m.get('nab_standard'))}, F1 {_plain(m.get('episode_f1'))}"
            for d, m in scores.items()
        )
        parts.append(f"<h2>{_name(item.name)}</h2><p>{html.escape(summary)}</p>")
        parts.append(series_svg(item))
    parts.append("</body></html>")
    target = directory / "index.html"
    # written beside it and renamed over it when whole, as replay's outputs: a full disk
    # or Ctrl-C while writing left a cut index.html in place of the report before it
    # (a link there keeps naming its file, which gets the report, as replay's outputs)
    try:
        real = target.resolve() if target.is_symlink() else target
    except RuntimeError:  # a link loop (Python 3.11's resolve): the link is replaced
        real = target

    def write(handle: TextIO) -> None:
        handle.write("\n".join(part for part in parts if part))

    write_replacing(real, write, f"the report {target}")
    return target


def _name(text: str) -> str:
    """A file, folder or series name as HTML text: escaped, and its control and
    bidirectional-override characters shown as escapes rather than applied."""
    return html.escape(visible(text))


def _plain(value: Any) -> str:
    return "-" if value is None else str(value)
