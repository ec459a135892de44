"""Per-family quality and NAB leave-one-family-out."""

from __future__ import annotations

import numpy as np
import pytest

from stream_app.offline.evaluate import DetectorRun, LabelledSeries
from stream_app.offline.families import JITTER, START, STEP, generate_families
from stream_app.offline.quality import by_family, family_of, family_report, lofo_nab


def _series(name: str, n: int, windows: list[tuple[int, int]], hits: list[int]) -> LabelledSeries:
    item = LabelledSeries(name, [60.0 * i for i in range(n)], [0.0] * n, windows)
    scores = np.zeros(n)
    scores[hits] = 0.99
    item.runs["tsguard"] = DetectorRun(scores, scores >= 0.99)
    return item


def test_families_are_folders_with_msft_kinds_and_generated_families() -> None:
    assert family_of("msft-cloud-monitoring/app/app-01.csv") == "msft/app"
    assert family_of("skab/anomaly-free/x.csv") == "skab/anomaly-free"
    assert family_of("gen/free_counts/00") == "gen/free_counts"
    assert family_of("tcpd/x.csv") == "tcpd"
    assert family_of("top.csv") == "other"


def test_lofo_scores_each_family_at_the_threshold_chosen_on_the_others() -> None:
    # family a: a hit at 0.99 in its window; family b: the same score on a false point
    a = _series("a/1.csv", 1000, [(500, 520)], [505])
    b = _series("b/1.csv", 1000, [(600, 620)], [300])
    scores = lofo_nab([a, b], "tsguard")["families"]
    # on b alone the best threshold fires nothing (its 0.99 is false): a then scores 0
    assert scores["a"] == 0.0
    # on a alone 0.99 fires: b pays a false positive and misses its window
    assert scores["b"] < 0.0


def test_family_report_counts_false_episodes_on_anomaly_free_families() -> None:
    free = _series("free/1.csv", 10_000, [], [5000, 7000])
    report = family_report([free], detectors=("tsguard",))
    scored = 10_000 - 750  # after the probation
    assert report["families"]["free"]["tsguard"]["false_per_10k"] == round(2 / scored * 1e4, 3)
    assert list(by_family([free])) == ["free"]


def test_generated_series_begin_on_any_day_and_keep_the_utc_clock() -> None:
    # a benchmark whose series all began on Monday 00:00 hid every first-week fault of
    # a series deployed on a Thursday afternoon or a Saturday night
    fams = generate_families(series_per_family=6)
    starts = {s.timestamps[0] for items in fams.values() for s in items}
    weekdays = {int((t - START) // 86400) % 7 for t in starts}
    assert len(weekdays) == 7 and {(t - START) % 300 for t in starts} == {0.0}
    for s in fams["free_exact_steps"]:
        # the schedule is on the clock, not on the series' own first point
        hours = [((t - START) % 86400) / 3600 for t in s.timestamps]
        on = {v for v, h in zip(s.values, hours, strict=True) if 9 <= h < 18}
        off = {v for v, h in zip(s.values, hours, strict=True) if not 9 <= h < 18}
        assert len(on) == len(off) == 1 and on != off


def test_generated_series_can_be_read_off_the_grid_or_with_points_lost() -> None:
    # a benchmark read only on an exact 5-minute grid hid every fault of a series whose
    # timestamps jitter or whose points go missing; a series with points lost keeps the
    # values and anomalies of the regular one, a jittered one is the same draw read at
    # its own times (a Poisson count at another rate may draw differently after that)
    regular = generate_families(series_per_family=3)
    moved = 0
    for sampling in ("jitter", "holes", "gaps"):
        read = generate_families(series_per_family=3, sampling=sampling)
        for family, items in read.items():
            for s, r in zip(items, regular[family], strict=True):
                assert np.all(np.diff(s.timestamps) > 0)
                if sampling == "jitter":
                    off = np.abs(np.array(s.timestamps) - np.array(r.timestamps))
                    assert len(s.values) == len(r.values) and 0.0 < off.max() <= JITTER * STEP
                    assert s.labels == r.labels or family == "counts"
                    continue
                at = {t: i for i, t in enumerate(r.timestamps)}
                assert len(s.timestamps) < len(r.timestamps)
                assert s.values == [r.values[at[t]] for t in s.timestamps]
                # the regular series' labels, but a labelled run none of whose points was
                # read is labelled at the first reading after it where the change lasts
                before = -1
                for t, label in zip(s.timestamps, s.labels, strict=True):
                    if label != r.labels[at[t]]:
                        assert label == 1 and any(r.labels[before + 1 : at[t]])
                        moved += 1
                    before = at[t]
                steps = np.diff(s.timestamps) / STEP
                if sampling == "gaps":
                    assert steps.max() >= 24  # an outage of two hours or more
    assert moved > 0  # a level shift's one labelled point was lost to a hole
    kinds = set()
    for items in generate_families(series_per_family=6, sampling="mixed").values():
        for s in items:
            steps = np.diff(s.timestamps) / STEP
            jittered = np.any(np.abs(steps - np.round(steps)) > 1e-6)
            kinds.add("jitter" if jittered else "lost" if steps.max() > 1 else "regular")
    assert kinds == {"jitter", "lost", "regular"}
    # readings at irregular times: busy and quiet spells, anywhere in their step
    ratios = []
    for family, items in generate_families(series_per_family=3, sampling="events").items():
        for s, r in zip(items, regular[family], strict=True):
            dt = np.diff(s.timestamps)
            assert np.all(dt > 0) and 0.3 < len(s.timestamps) / len(r.timestamps) < 0.6
            assert not np.allclose(dt / STEP, np.round(dt / STEP))  # off the grid
            ratios.append(dt.mean() / np.median(dt))
            if family != "counts" and r.labels.count(1) > 3:  # a count draws anew
                assert 0 < s.labels.count(1) < r.labels.count(1)
    assert 1.5 < np.median(ratios) < 3.0  # the mean interval about twice the median
    with pytest.raises(ValueError, match="sampling must be one of"):
        generate_families(series_per_family=1, sampling="sometimes")


def test_generated_series_can_be_coarser() -> None:
    # hourly series, as ad-exchange or taxi-demand metrics come: the budget and the
    # profiles behave differently at coarse steps, and the 5-minute benchmark hid it
    fams = generate_families(series_per_family=2, step=3600.0, points=1600)
    for items in fams.values():
        for s in items:
            assert len(s.timestamps) == 1600
            assert set(np.diff(s.timestamps)) == {3600.0}
            assert (s.timestamps[0] - START) % 3600.0 == 0.0
    assert all(sum(s.labels) > 0 for s in fams["business_hours"])
    with pytest.raises(ValueError, match="divides a day"):
        generate_families(series_per_family=1, step=7000.0)
