"""The quality benchmark's development set read at a coarser step (``--coarsen``)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from benchmarks.quality import COARSE_MIN_POINTS, coarsened, load_all
from stream_app.offline.evaluate import LabelledSeries

START = datetime(2026, 3, 2, 0, 3, tzinfo=UTC)  # not on a 5-minute boundary


def _minutes(n: int, seed: int = 1) -> tuple[list[float], list[float | None]]:
    rng = np.random.default_rng(seed)
    ts = [START.timestamp() + 60.0 * i for i in range(n)]
    values: list[float | None] = [float(v) for v in 100.0 + rng.normal(0.0, 1.0, n)]
    return ts, values


def test_buckets_are_epoch_aligned_means_and_windows_cover_every_bucket_they_touch() -> None:
    ts, values = _minutes(6000)
    values[10] = None  # a reading lost: its bucket is the mean of the others
    del ts[500:520], values[500:520]  # 20 minutes missing: four buckets gone
    windows = [(3000, 3011)]  # 12 minutes from 03:03 into the third day's bucket
    out = coarsened(LabelledSeries("s", ts, values, windows), 300.0)
    assert out is not None
    assert all(t % 300.0 == 0.0 for t in out.timestamps)
    assert np.all(np.diff(out.timestamps) > 0)
    raw_ts, raw = np.array(ts), np.array([np.nan if v is None else v for v in values])
    for k in (0, 1, 2, 150, len(out.timestamps) - 1):
        inside = (raw_ts >= out.timestamps[k]) & (raw_ts < out.timestamps[k] + 300.0)
        assert out.values[k] == pytest.approx(np.nanmean(raw[inside]))
    # the 4 lost buckets are absent, not zero
    assert len(out.timestamps) == len(set(np.floor(raw_ts / 300.0)))
    assert all(v == v for v in out.values)
    ((first, last),) = out.windows
    assert out.timestamps[first] <= ts[3000] < out.timestamps[first] + 300.0
    assert out.timestamps[last] <= ts[3011] < out.timestamps[last] + 300.0
    assert last - first + 1 == 3  # 12 minutes starting at :03 touch three buckets


def test_series_already_coarse_or_too_short_are_left_out() -> None:
    ts, values = _minutes(6000)
    coarse = LabelledSeries("five", ts[::5], values[::5], [])
    assert coarsened(coarse, 300.0) is None  # its step is not finer than 5 minutes
    n = 5 * COARSE_MIN_POINTS - 10  # from :03, one bucket short
    short = LabelledSeries("short", ts[:n], values[:n], [])
    assert coarsened(short, 300.0) is None
    assert coarsened(short, 300.0, least=10) is not None


def _write(path: Path, n: int, step_s: int, anomaly_at: int) -> None:
    rng = np.random.default_rng(n)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["timestamp", "value", "label"])
        for i in range(n):
            when = START + timedelta(seconds=step_s * i)
            out.writerow([when.strftime("%Y-%m-%d %H:%M:%S"), rng.normal(), int(i == anomaly_at)])


def test_load_all_coarsens_only_the_development_sets_fine_series(tmp_path: Path) -> None:
    fam = tmp_path / "fam"
    fam.mkdir()
    _write(fam / "fine.csv", 6000, 60, 4000)
    _write(fam / "coarse.csv", 2000, 300, 1500)
    _write(fam / "brief.csv", 1200, 60, 600)  # 240 buckets
    series = load_all(tmp_path, 1, "nab", coarsen=300.0)
    assert [s.name for s in series] == ["fam/fine.csv"]
    (one,) = series
    assert len(one.timestamps) == 1201  # 6000 minutes from 00:03 touch 1201 buckets
    ((first, last),) = one.windows
    assert first <= 800 <= last  # the anomaly's bucket (minute 4000 from 00:03)
    with pytest.raises(SystemExit, match="needs the development set"):
        load_all(tmp_path / "absent", 1, "nab", coarsen=300.0)
