"""The default detector and policy on the failure modes they must not have.

Daily step patterns must not page, an episode ends when the series is back to
normal, no finite value can make an output non-finite or disable a series, and
the false-alarm budget holds on anomaly-free noise.
"""

from __future__ import annotations

import itertools
import math
import struct
from array import array

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import kinds_matrix, noise_shapes, probes
from stream_app.core import EngineConfig, EpisodeEvent, PolicyConfig, SeriesProcessor
from stream_app.core.codec import Writer
from stream_app.core.detectors import REGISTRY, robust_seasonal
from stream_app.core.detectors.robust_seasonal import (
    _DRIFT_NULL,
    _DRIFT_RUN,
    _LONG_NULL,
    _SLOT,
    _SLOT_V5,
    _STATE,
    _STATE_V3,
    _STATE_V4,
    _STATE_V5,
    _STATE_V5_V11,
    _STATE_V6,
    _STATE_V7,
    _STATE_V8,
    _STATE_V9,
    _STATE_V9_V13,
    _STATE_V10,
    _STATE_V11,
    _STATE_V12,
    _STATE_V13,
    _STATE_V14,
    _STATE_V15,
    _STATE_V16,
    _STATE_V17,
    _STATE_V18,
    _STATE_V19,
    _STATE_V20,
    _STATE_V21,
    _STATE_V22,
    _STATE_V23,
    _TRIAL,
    COUNT_SHARE,
    DRIFT_AFTER,
    DRIFT_KEEP,
    DRIFT_RECENT,
    DRIFT_SPREAD_CAP,
    FAR_COUNT_AFTER_POINTS,
    FAR_P,
    MODE_VISITS,
    MULT_MARGIN,
    SHIFT_Z,
    SPIKE_GO_ON0,
    SPIKE_SIZE0,
    RobustSeasonal,
    _log_zero,
)
from stream_app.offline.families import (
    Base,
    bytes_written,
    counts,
    cycle_in_proportion,
    drift_ramp,
    flat,
    flickering_flow,
    generate_families,
    quantised,
    random_spikes,
    random_walk,
    seasonal,
    stationary,
)
from stream_app.offline.windows import nab_windows
from tests.unit.core.core_streams import bursty_noise, value_openings

STEP = 300.0
DAY_POINTS = 288
START = 1767571200.0  # a Monday, 00:00 UTC


def _run(
    values: list[float],
    step: float = STEP,
    config: EngineConfig | None = None,
    start: float = START,
) -> tuple[list[float | None], list[EpisodeEvent]]:
    return _run_at([start + step * i for i in range(len(values))], values, config)


def _run_at(
    times: list[float], values: list[float], config: EngineConfig | None = None
) -> tuple[list[float | None], list[EpisodeEvent]]:
    """Scores and value events of one series read at ``times`` (any intervals)."""
    proc = SeriesProcessor.create("test/entity", "m", config or EngineConfig.default())
    scores: list[float | None] = []
    events: list[EpisodeEvent] = []
    for ts, value in zip(times, values, strict=True):
        point, new = proc.process(ts, value)
        scores.append(point.score)
        events.extend(e for e in new if e.kind == "value")
    return scores, events


def _opened_after(events: list[EpisodeEvent], ts: float) -> list[EpisodeEvent]:
    return [e for e in events if e.event == "opened" and e.ts >= ts]


def _square_wave(
    days: int,
    weekends: bool,
    seed: int = 1,
    start: float = 9.0,
    end: float = 18.0,
    offset: float = 0.0,
) -> list[float]:
    """Business hours on the UTC clock, for a series that begins ``offset`` s after START."""
    rng = np.random.default_rng(seed)
    n = days * DAY_POINTS
    t = offset + np.arange(n) * STEP
    hours = (t % 86400.0) / 3600.0
    weekday = (t // 86400.0) % 7
    on = (hours >= start - 1e-9) & (hours < end - 1e-9)
    if weekends:
        on &= weekday < 5
    return (np.where(on, 60.0, 10.0) + rng.normal(0.0, 1.0, n)).tolist()


def test_a_daily_square_wave_does_not_page_after_its_first_day() -> None:
    _, events = _run(_square_wave(14, weekends=False))
    # the transitions of the first day are new to the model; after that, none pages
    assert _opened_after(events, START + 1.5 * 86400) == []


def test_a_noise_free_square_wave_and_a_constant_do_not_page() -> None:
    n = 14 * DAY_POINTS
    hours = (np.arange(n) * STEP % 86400.0) / 3600.0
    exact = np.where((hours >= 9.0) & (hours < 18.0), 80.0, 20.0).tolist()
    _, events = _run(exact)
    # a perfectly predicted change is no sign of a wrong scale: the model is never reset
    assert _opened_after(events, START + 1.5 * 86400) == []
    assert _run([42.0] * n)[1] == []


def test_a_square_wave_whose_edges_cut_bins_does_not_page_after_its_first_days() -> None:
    # Edges at 07:13 and 15:13: on the first day, before the daily profile speaks, each
    # edge is a run of twelve outliers until the level jumps. Every one of them was
    # remembered by its time of day, 24 times for 16 slots, so the times the edges cut
    # into their bins were pushed out and 07:13 paged on the third day. Only the first
    # points of a run (a bin's worth) are remembered now.
    offset = (22 * 60 + 13) * 60.0  # the series begins at 22:13
    n = 14 * DAY_POINTS
    hours = ((offset + np.arange(n) * STEP) % 86400.0) / 3600.0
    on = (hours >= 7.0 + 13.0 / 60.0) & (hours < 15.0 + 13.0 / 60.0)
    _, events = _run(np.where(on, 80.0, 20.0).tolist(), start=START + offset)
    assert _opened_after(events, START + offset + 2 * 86400) == []


def test_business_hours_with_weekends_do_not_page_in_the_second_week() -> None:
    _, events = _run(_square_wave(21, weekends=True))
    assert _opened_after(events, START + 8 * 86400) == []


@pytest.mark.parametrize(("start", "end"), [(9.5, 17.5), (8 + 10 / 60, 16 + 50 / 60)])
def test_schedules_that_do_not_start_on_the_hour_do_not_page(start: float, end: float) -> None:
    # 09:30 cut the weekly profile's hourly bins in two, and 08:10 the daily profile's
    # half hours too: every transition paged, every day (40 onsets in 20 series a day;
    # 09:00 never did). The weekly profile now has half-hour bins at 5-minute steps,
    # and the points of a bin a transition cuts recur at their time of day
    paging = 0
    for seed in (1, 2, 3):
        _, events = _run(_square_wave(14, weekends=True, seed=seed, start=start, end=end))
        paging += len(_opened_after(events, START + 3 * 86400))
    assert paging <= 1


def _with_gaps(values: np.ndarray, seed: int) -> tuple[list[float], list[float], set[int]]:
    """Timestamps and values with 1 % of the points starting a gap of 2-150 steps."""
    rng = np.random.default_rng(seed)
    keep = np.ones(values.size, dtype=bool)
    for start in np.nonzero(rng.random(values.size) < 0.01)[0]:
        keep[start : start + int(rng.integers(2, 151))] = False
    keep[:50] = True
    index = np.nonzero(keep)[0]
    after = {int(i) for k, i in enumerate(index[1:], 1) if i != index[k - 1] + 1}
    return (START + STEP * index).tolist(), values[index].tolist(), after


def test_a_random_walk_does_not_page_at_the_end_of_a_gap() -> None:
    # the first point after a gap was judged against the level from before it: a price
    # that moved while no data came paged (39 onsets at the ends of gaps in these walks)
    at_gap_end = 0
    for seed in range(6):
        walk = random_walk(np.random.default_rng(seed), np.arange(4032) * STEP)
        timestamps, values, after = _with_gaps(walk, seed)
        proc = SeriesProcessor.create("test/entity", "m", EngineConfig.default())
        for ts, value in zip(timestamps, values, strict=True):
            _, events = proc.process(ts, value)
            index = round((ts - START) / STEP)
            at_gap_end += index in after and any(e.event == "opened" for e in events)
    assert at_gap_end == 0


def test_a_jump_after_a_gap_still_pages() -> None:
    rng = np.random.default_rng(5)
    values = 100.0 + np.cumsum(rng.normal(0.0, 0.1, 3000))
    values[2020:] += 30.0  # far beyond what 20 missed steps of 0.1 could move
    timestamps = [START + STEP * i for i in range(3000) if not 2000 <= i < 2020]
    kept = [float(v) for i, v in enumerate(values) if not 2000 <= i < 2020]
    proc = SeriesProcessor.create("test/entity", "m", EngineConfig.default())
    opened = []
    for ts, value in zip(timestamps, kept, strict=True):
        _, events = proc.process(ts, value)
        opened += [ts for e in events if e.event == "opened"]
    assert START + 2020 * STEP in opened


def _nightly_job(days: int, at: float, seed: int = 1) -> np.ndarray:
    """Noise around 40, and a batch job's spike of about +25 every night at ``at`` hours."""
    rng = np.random.default_rng(seed)
    n = days * DAY_POINTS
    values = 40.0 + rng.normal(0.0, 1.0, n)
    job = np.abs((np.arange(n) * STEP % 86400.0) / 3600.0 - at) < 1e-9
    values[job] += rng.uniform(20.0, 30.0, int(job.sum()))
    return values


@pytest.mark.parametrize("at", [2.25, 2.5])
def test_a_nightly_batch_job_pages_on_its_first_nights_only(at: float) -> None:
    # a spike at the same five-minute mark every night paged every night, forever (221
    # onsets in 20 series over 11 nights). From its third sighting it is part of the
    # schedule. At 02:30 it is also the first value of its profile bin: the bin used to
    # start at the spike and page at the normal points after it for days
    paging = 0
    for seed in (1, 2, 3):
        _, events = _run(_nightly_job(14, at, seed).tolist())
        paging += len(_opened_after(events, START + 3 * 86400))
    assert paging == 0


def test_a_profile_bin_is_not_started_by_an_outlier() -> None:
    # a spike that is the first value a daily bin sees (02:30 on the first night)
    # started that bin 25 sigma high; clipped updates took days to bring it down, and
    # the bin's normal points paged once the profile spoke (6 onsets in these 3 series)
    paging = 0
    for seed in (1, 2, 3):
        values = _square_wave(4, weekends=False, seed=seed)  # the daily profile speaks
        values[30] += 25.0  # 02:30 on day 0, after the profiles started (20th point)
        _, events = _run(values)
        paging += len(_opened_after(events, START + 86400))
    assert paging == 0


def test_a_nightly_job_twice_its_size_or_at_a_new_time_still_pages() -> None:
    values = _nightly_job(14, 2.25)
    job = 10 * DAY_POINTS + 27  # night 10, 02:15
    values[job] += 25.0
    values[12 * DAY_POINTS + 40] += 25.0  # night 12, 03:20: no job runs then
    _, events = _run(values.tolist())
    opened = [round((e.ts - START) / STEP) for e in _opened_after(events, START + 3 * 86400)]
    assert opened == [job, 12 * DAY_POINTS + 40]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_nightly_job_smaller_than_usual_is_no_news(seed: int) -> None:
    # The job adds 20-30 every night; on night 10 it adds about a third of that. Judged
    # against its usual size, that point was 5-7 sigma *below* expected and paged (2
    # of 3 seeds), and the usual size, halved by it, made the next normal job news
    # (night 11, 2 of 3 seeds). Between nothing and the usual size is no news now.
    values = _nightly_job(14, 2.25, seed)
    job = 10 * DAY_POINTS + 27  # night 10, 02:15
    values[job] -= 16.0
    _, events = _run(values.tolist())
    assert _opened_after(events, START + 3 * 86400) == []


def _weekly_job(weeks: int, seed: int, late: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Noise around 40 and a job of about +25 every Sunday at 03:00 (the series begins on
    a Monday); ``late``: at 03:00, 03:05 and 03:10 in turn."""
    rng = np.random.default_rng(seed)
    n = weeks * 7 * DAY_POINTS
    values = 40.0 + rng.normal(0.0, 1.0, n)
    job = np.arange(6 * DAY_POINTS + 36, n, 7 * DAY_POINTS)
    if late:
        job += np.arange(job.size) % 3
    values[job] += rng.uniform(20.0, 30.0, job.size)
    return values, job


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_weekly_job_pages_in_its_first_weeks_only(seed: int) -> None:
    # A backup every Sunday night paged every week, forever: an outlier seen again a
    # week later was not a recurrence (at most three days apart). From its third
    # sighting, a week apart, it is part of the schedule
    values, job = _weekly_job(6, seed)
    _, events = _run(values.tolist())
    opened = [round((e.ts - START) / STEP) for e in _opened_after(events, START)]
    assert [i for i in opened if i in set(job.tolist())] == job[:2].tolist()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_weekly_job_that_runs_a_few_minutes_late_pages_in_its_first_weeks_only(
    seed: int,
) -> None:
    # 03:00, 03:05, 03:10: each time of day comes every third week, so none became
    # expected by itself (the old code paged every week). The time nearby seen a week
    # ago stands in
    values, _ = _weekly_job(6, seed, late=True)
    _, events = _run(values.tolist())
    assert _opened_after(events, START + 14 * 86400) == []


def _late_job(days: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise around 40 and a nightly job of about +25 that lands between 02:00 and 02:25."""
    rng = np.random.default_rng(seed)
    n = days * DAY_POINTS
    values = 40.0 + rng.normal(0.0, 1.0, n)
    job = np.arange(24, n, DAY_POINTS) + rng.integers(0, 6, days)
    values[job] += rng.uniform(20.0, 30.0, days)
    return values, job


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_nightly_job_that_runs_a_few_minutes_late_stops_paging(seed: int) -> None:
    # Each of its six times of day was a recurrence only of itself, seen on one night
    # in six: 10 to 12 onsets per series in days 14-28, for ever. An expected time
    # nearby now stands for a new one
    values, _ = _late_job(28, seed)
    _, events = _run(values.tolist())
    assert _opened_after(events, START + 14 * 86400) == []


@pytest.mark.parametrize("late", [False, True])
def test_a_weekly_or_late_nightly_job_twice_its_size_still_pages(late: bool) -> None:
    values, job = _late_job(28, 1) if late else _weekly_job(6, 1)
    at = job[25 if late else 4]
    values[at] += 25.0
    _, events = _run(values.tolist())
    opened = [round((e.ts - START) / STEP) for e in _opened_after(events, START + 14 * 86400)]
    assert opened == [at]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_spike_weeks_into_a_schedule_whose_edges_cut_bins_still_pages(seed: int) -> None:
    # Weekdays 08:10-16:50 and a nightly job: every day a few points that the edges cut
    # into their bins, and the job, recur at their time of day. The calibrator learned
    # their raw 25-50 sigma surprises (about 2 % of the points), so its tail grew until,
    # three weeks in, a 25-sigma spike scored 0.988 and did not page (nor, in the
    # generated 60-day schedules, most of their labelled spikes). It learns that an
    # outlier came, not its size, now
    days = 30
    values = np.array(
        _square_wave(days, weekends=True, seed=seed, start=8 + 10 / 60, end=16 + 50 / 60)
    )
    job = np.abs((np.arange(values.size) * STEP % 86400.0) / 3600.0 - 2.25) < 1e-9
    values[job] += 25.0
    night = (days - 5) * DAY_POINTS + 40  # 03:20, a Friday
    noon = (days - 3) * DAY_POINTS + 150  # 12:30, a Sunday
    values[night] += 25.0
    values[noon] -= 25.0
    _, events = _run(values.tolist())
    opened = [round((e.ts - START) / STEP) for e in _opened_after(events, START + 14 * 86400)]
    assert opened == [night, noon]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_business_hours_do_not_page_on_their_first_weekend(seed: int) -> None:
    # five weekdays teach the daily profile a rise that the first Saturday and Sunday
    # do not have; the level forecasts those days, and the weekly profile later
    _, events = _run(_square_wave(8, weekends=True, seed=seed))
    first_weekend = [
        e for e in _opened_after(events, START + 5 * 86400) if e.ts < START + 7 * 86400
    ]
    assert first_weekend == []


@pytest.mark.parametrize("seed", range(6))
def test_a_surge_on_the_first_weekend_pages(seed: int) -> None:
    # A daily cycle whose noise is in proportion to its level, and on its first
    # Saturday at noon a surge to twice its peak within an hour. The level follows the
    # rise (z about 2 a point), and on a first weekend the daily profile's miss was
    # deferred (a weekend may differ from the weekdays): in 5 of these 6 seeds it
    # went unseen. A value far above every bin of the profile is still the profile's to judge.
    t = START + STEP * np.arange(7 * DAY_POINTS)
    values = cycle_in_proportion(np.random.default_rng(seed), t)
    at = 5 * DAY_POINTS + DAY_POINTS // 2
    values[at : at + 48] += np.minimum(np.arange(48) / 12.0, 1.0) * 180.0
    _, events = _run(values.tolist())
    opened = [round((e.ts - START) / STEP) for e in _opened_after(events, START + 4 * 86400)]
    assert opened and at <= opened[0] <= at + 6


@pytest.mark.parametrize(
    "offset_h",
    [
        2 * 24 + 13,  # Wednesday 13:00
        3 * 24 + 8 + 25 / 60,  # Thursday 08:25: the rise comes before the profile starts
        4 * 24 + 21 + 10 / 60,  # Friday 21:10: the profile learns a weekend first
        5 * 24 + 21 + 25 / 60,  # Saturday 21:25
        6 * 24 + 12 + 15 / 60,  # Sunday 12:15
    ],
)
def test_business_hours_that_begin_on_any_day_page_only_in_their_first_days(
    offset_h: float,
) -> None:
    # A series begins whenever it is deployed. Before, only a Monday 00:00 start was
    # quiet: from any other, the first weekend was learned into the daily profile and
    # the edges paged on every weekday until the weekly profile spoke (7 onsets in a
    # series from Thursday), a rise just before the profile started put its level off
    # by the rise, and a Friday or weekend start paged every weekday of its first week
    offset = offset_h * 3600.0
    paging = 0
    for seed in (1, 2):
        values = _square_wave(14, weekends=True, seed=seed, offset=offset)
        _, events = _run(values, start=START + offset)
        paging += len(_opened_after(events, START + offset + 2.5 * 86400))
    assert paging <= 1


def test_a_profile_that_starts_in_the_afternoon_does_not_page_at_midnight() -> None:
    # the point that started the profiles also wrote the midnight bin (bin 0) from a
    # residual of 0: a noise-free square wave begun at 12:10 then paged at 00:00 every
    # night, 45 sigma off, and clipped updates never brought the bin back
    offset = (12 * 60 + 10) * 60.0
    n = 14 * DAY_POINTS
    hours = ((offset + np.arange(n) * STEP) % 86400.0) / 3600.0
    exact = np.where((hours >= 9.0) & (hours < 18.0), 62.0, 6.0).tolist()
    _, events = _run(exact, start=START + offset)
    assert _opened_after(events, START + offset + 1.5 * 86400) == []


def test_a_spike_on_the_first_monday_after_a_friday_start_still_pages() -> None:
    # the first Monday puts the daily bins of a Friday start on notice; a bin that
    # misses there starts again, but its point is still judged (by the level where it
    # is nearer), so a spike on that day is found
    offset = (4 * 24 + 20) * 3600.0  # Friday 20:00
    rng = np.random.default_rng(5)
    n = 7 * DAY_POINTS
    t = offset + np.arange(n) * STEP
    values = 50.0 + 20.0 * np.sin(2 * math.pi * t / 86400.0) + rng.normal(0.0, 1.0, n)
    spike = int((7 * 86400.0 + 20.5 * 3600.0 - offset) / STEP)  # Monday 20:30
    values[spike] += 15.0
    _, events = _run(values.tolist(), start=START + offset)
    opened = [round((e.ts - START - offset) / STEP) for e in _opened_after(events, START)]
    assert spike in opened


@pytest.mark.parametrize("after", [1, 5, 15])
def test_an_outage_among_the_first_points_does_not_cost_the_profiles(after: int) -> None:
    # The step was the mean interval of the first 20 points: an 8-hour outage among
    # them made a 5-minute series a 30-minute one, too coarse for a weekly profile, and
    # it paged 7 times after its first days. The step now waits for the running
    # median of the intervals to agree, and the smaller of the two is taken.
    offsets = np.arange(14 * DAY_POINTS) * STEP
    offsets[after:] += 8 * 3600.0
    hours = (offsets % 86400.0) / 3600.0
    on = (hours >= 9.0) & (hours < 18.0) & ((offsets // 86400.0) % 7 < 5)
    values = np.where(on, 60.0, 10.0) + np.random.default_rng(after).normal(0.0, 1.0, on.size)
    _, events = _run_at((START + offsets).tolist(), values.tolist())
    late = [e for e in events if e.event == "opened" and e.ts >= START + 2.5 * 86400]
    assert [round((e.ts - START) / 3600.0, 1) for e in late] == []


def test_a_weekday_schedule_with_readings_lost_does_not_page_again() -> None:
    # 15 % of the readings lost at random, weekdays 09:10-15:40: the edges cut bins, so
    # their times of day are remembered; a time not seen for more than three days (a
    # reading lost on a Friday, then the weekend) started again as news and paged (50
    # onsets in 6 such three-week series). Once expected, a time now survives a week.
    paging = 0
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        offsets = np.arange(21 * DAY_POINTS) * STEP
        offsets = offsets[rng.random(offsets.size) >= 0.15]
        hours = (offsets % 86400.0) / 3600.0
        on = (hours >= 9.0 + 10.0 / 60.0) & (hours < 15.0 + 40.0 / 60.0)
        on &= (offsets // 86400.0) % 7 < 5
        values = np.where(on, 40.0, 5.0) + rng.normal(0.0, 0.7, offsets.size)
        _, events = _run_at((START + offsets).tolist(), values.tolist())
        paging += sum(1 for e in events if e.event == "opened" and e.ts >= START + 3 * 86400)
    assert paging <= 3


def _spells(n: int, seed: int) -> np.ndarray:
    """The steps read of ``n``, in busy spells (80 % read) and quiet ones (10 %): 45 %."""
    rng = np.random.default_rng(seed)
    busy = np.cumsum(rng.random(n) < 0.03) % 2 == 0
    return np.nonzero(rng.random(n) < np.where(busy, 0.8, 0.1))[0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_schedule_read_at_irregular_times_does_not_page_at_its_edges(seed: int) -> None:
    # Daily from 07:15 to 16:45, each reading anywhere in its 5-minute step, in busy and
    # quiet spells: the edges cut the 07:00 and 16:30 bins, and the first reading after a
    # quiet spell, a gap, was judged by its own bin only (the bin across its edge was
    # asked only one step after the last reading): 7 onsets after day 3 in these 3 series
    rng = np.random.default_rng(seed)
    index = _spells(14 * DAY_POINTS, seed)
    offsets = (index + rng.uniform(0.0, 1.0, index.size)) * STEP
    hours = (offsets % 86400.0) / 3600.0
    on = (hours >= 7.25) & (hours < 16.75)
    values = np.where(on, 60.0, 10.0) + rng.normal(0.0, 1.0, offsets.size)
    _, events = _run_at((START + offsets).tolist(), values.tolist())
    assert _opened_after(events, START + 3 * 86400) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_daily_cycle_read_at_irregular_times_finds_a_shift_during_a_gap(seed: int) -> None:
    # A smooth daily cycle with Gaussian noise, read in busy and quiet spells; on day 10
    # the level moves by eight times the noise while no reading comes (two hours or
    # more). The fast level's misses after a gap counted per step, against the daily
    # profile's as they came: the fast level spoke, its sigma widened by the root of the
    # steps missed, and the shift went unseen in all ten draws tried (seeds 1-10); the
    # profile, compared with the fast level's misses as they came, now speaks and finds
    # it at the first readings after the gap in all ten.
    n = 14 * DAY_POINTS
    index = _spells(n, seed)
    values = seasonal(np.random.default_rng(seed), STEP * np.arange(n, dtype=np.float64))
    k = next(
        k
        for k in range(1, index.size)
        if index[k] >= 10 * DAY_POINTS and index[k] - index[k - 1] >= 24
    )
    noise = float(np.std(np.diff(values))) / math.sqrt(2.0)
    values[index[k - 1] + 1 :] += 8.0 * noise
    _, events = _run_at((START + STEP * index).tolist(), values[index].tolist())
    first = {START + STEP * i for i in index[k : k + 6]}
    assert any(e.ts in first for e in _opened_after(events, START))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_nightly_job_read_on_some_nights_only_stops_paging(seed: int) -> None:
    # 45 % of the steps read, and the job's reading (02:15) on nights 1, 3, 7, 11 and 13
    # only. Four days between two sightings started the job's time of day again as news
    # (at most three), so it paged on nights 11 and 13 too (6 onsets in these 3 series):
    # the nights between had no reading at its time. The days allowed between sightings
    # grow by the share of the steps read.
    values = _nightly_job(14, 2.25, seed)
    job = int(2.25 * 3600 / STEP)
    read = set(_spells(14 * DAY_POINTS, seed + 10).tolist())
    read -= {d * DAY_POINTS + job for d in range(14)}
    read |= {d * DAY_POINTS + job for d in (1, 3, 7, 11, 13)}
    index = np.array(sorted(read))
    _, events = _run_at((START + STEP * index).tolist(), values[index].tolist())
    at_job = [e for e in _opened_after(events, START + 8 * 86400) if e.ts % 86400 == 2.25 * 3600]
    assert at_job == []


@pytest.mark.parametrize("seed", [5, 6])
def test_a_day_of_new_outliers_does_not_push_out_the_schedule(seed: int) -> None:
    # Every day 08:10-16:50: the edges cut the 08:00 and 16:30 bins, and the times they
    # cut are remembered and expected. A day with twenty spikes at new times took the
    # slots seen longest ago, the schedule's, and an edge paged again that evening or
    # the next morning. Expected times are now given up last.
    rng = np.random.default_rng(seed)
    n = 14 * DAY_POINTS
    hours = (np.arange(n) * STEP % 86400.0) / 3600.0
    on = (hours >= 8.0 + 10.0 / 60.0) & (hours < 16.0 + 50.0 / 60.0)
    values = np.where(on, 60.0, 10.0) + rng.normal(0.0, 1.0, n)
    spikes = set(8 * DAY_POINTS + 12 + 13 * np.arange(20))  # day 8, 01:00 to 22:35
    values[list(spikes)] += 30.0
    _, events = _run(values.tolist())
    opened = [round((e.ts - START) / STEP) for e in _opened_after(events, START + 8 * 86400)]
    # the spikes are news (until they come 2.5 times a day, one reading in 200 at 5
    # minutes: then the usual spike is this series' behaviour), the edges are not, from
    # that day on (before it, the 08:00 bin's first points may page once while the bin
    # climbs towards the schedule: 8 to 11 onsets in 20 seeds, within the budget, and not
    # this test's concern)
    assert sorted(spikes)[:3] == sorted(spikes & set(opened))[:3]
    assert [i for i in opened if i not in spikes] == []


def _spiky_cpu_pages(seeds: range, after_day: int) -> int:
    """Onsets from ``after_day`` on in two weeks of a CPU % that spikes at random, one
    series per seed, besides a spike ten times the usual size at point 3500 (which must
    page)."""
    t = START + STEP * np.arange(14 * DAY_POINTS)
    paged = 0
    for seed in seeds:
        values = random_spikes(np.random.default_rng(seed), t)
        values[3500] += 30.0
        _, events = _run(values.tolist())
        after = t[after_day * DAY_POINTS]
        opened = [round((e.ts - START) / STEP) for e in _opened_after(events, after)]
        assert 3500 in opened
        paged += len(opened) - 1
    return paged


def test_random_spikes_that_are_the_series_normal_behaviour_stop_paging() -> None:
    # CPU % near 0.3 with 2 % of its readings 7-40 sigma higher, at random: the
    # calibrator's 0.99 quantile took a week or two to climb to the spikes and every
    # one paged meanwhile (83 onsets after the second day in these four series). The
    # spikes' own rate and sizes now cap their score (30 while it was the day's rate
    # alone, 20 with the week's: the rest come while the rate is still learned); a
    # spike ten times the usual size still pages.
    assert _spiky_cpu_pages(range(4), after_day=2) <= 25


def test_random_spikes_a_week_on_do_not_page_when_a_day_brings_few() -> None:
    # The same CPU %: its spikes beyond 5 sigma come about four and a half a day, and
    # a day's mean of them (about four events) swings from 2 to 8. Every spike that came
    # while it sat under four paged: 15 onsets after the first week in these eight
    # series. The rate is now also learned over a week, and the larger of the two caps
    # the spikes: 2.
    assert _spiky_cpu_pages(range(4, 12), after_day=7) <= 5


def test_random_spikes_page_less_while_the_week_rate_is_young() -> None:
    # The same eight series from the third day on: 60 onsets with the day's rate alone,
    # 47 with the week's started as 300 spike-free points (a day at 5 minutes, 5 hours
    # at 1 minute), 25 with it started as five hours' points (60 here).
    assert _spiky_cpu_pages(range(4, 12), after_day=2) <= 32


def test_a_bump_or_a_shift_among_random_spikes_is_found_in_the_second_week() -> None:
    # Random CPU spikes keep no week. A weekly bin's first visit starts at the value
    # itself, and that point used to count as a perfect forecast in the long-run error
    # that picks the forecaster: over the first week the weekly profile's error came out
    # below the levels', and from day 7 it spoke at about half the points of such series,
    # with last week's spikes in its bins. The point is now charged the miss of the
    # forecaster that spoke. A bump or a level shift of 0.4 (kinds matrix), 12 draws
    # each: 14 of the 24 windows found before, 19 now (the false onsets are the same).
    found = 0
    for kind in ("bump", "level_shift"):
        for draw in range(1, 13):
            series = kinds_matrix.one_series("spiky", kind, 0.4, draw, kinds_matrix.POINTS)
            _, events = _run_at(series.timestamps, series.values)
            (lo, hi), *_ = series.windows
            opened = [series.timestamps.index(e.ts) for e in events if e.event == "opened"]
            found += any(lo <= i <= hi for i in opened)
    assert found >= 17


def _latency(seed: int, days: int = 14) -> list[float]:
    """``days`` of request latency at 5 minutes, as the noise-shapes benchmark draws it:
    log-AR(1) noise (0.7, sd 0.15) and 1 % of the readings 2-5 times slower, at random."""
    t = START + STEP * np.arange(days * DAY_POINTS)
    return [float(v) for v in noise_shapes.latency(np.random.default_rng(seed), t)]


def test_slow_requests_two_or_three_times_a_day_stop_paging() -> None:
    # 1 % slow requests are about 2.9 a day at 5 minutes, and those beyond 5 sigma
    # fewer: under the four a day that made the spikes this series' behaviour, so
    # nearly every one paged, 81 onsets after the third day in these four series. At
    # a step where they are one reading in 200 or more, 2.5 a day was enough: 18. Read
    # from the week's rate, which a day's cluster does not lift, 2 a day are: 11.
    paged = 0
    for seed in (1, 2, 3, 4):
        _, events = _run(_latency(seed))
        paged += len(_opened_after(events, START + 3 * 86400.0))
    assert paged <= 14


def _crash_rate_with_bad_days(seed: int) -> tuple[list[float], list[int]]:
    """30 days of an hourly metric around 20 (sd 1) that jumps by 8-15 about once a day
    at random, then, from day 25, seven jumps in 54 hours (bad days): the values and
    the cluster's hours."""
    rng = np.random.default_rng(seed)
    values = 20.0 + rng.normal(0.0, 1.0, 720)
    usual = [i for i in range(48, 600) if rng.random() < 1.0 / 24.0]
    start = 600 + int(rng.integers(0, 24))
    cluster = sorted({start + int(k) for k in rng.choice(54, 7, replace=False)})
    for i in usual + cluster:
        values[i] += rng.uniform(8.0, 15.0)
    return [float(v) for v in values], cluster


def test_a_cluster_of_jumps_in_an_hourly_series_stays_news() -> None:
    # Jumps about once a day are news, and a cluster of them on bad days (an hourly crash
    # rate's seven in two days) lifts the day's rate of spikes to three a day and more.
    # Whether spikes are the series' habit is read from the week's rate: 31 of the
    # clusters' 56 jumps open an episode (the rest follow one by an hour or two, inside
    # it), as with 2.5 a day on the larger rate; 2 a day on the larger rate let 25.
    paged = 0
    for seed in range(8):
        values, cluster = _crash_rate_with_bad_days(seed)
        _, events = _run(values, step=3600.0)
        opened = {round((e.ts - START) / 3600.0) for e in events if e.event == "opened"}
        paged += len(opened.intersection(cluster))
    assert paged >= 29


def test_slow_requests_stop_paging_once_a_series_has_seen_two_weeks() -> None:
    # The same series over eight weeks: those beyond 5 sigma come 1.5-2.5 times a day on
    # many days, and from the third week on they paged 23 times in these two. Two weeks
    # in (when the budget starts to grow), spikes that come 1.5 times a day, one reading
    # in 200 or more, are the series' behaviour: 3.
    paged = 0
    for seed in (1, 2):
        _, events = _run(_latency(seed, days=56))
        paged += len(_opened_after(events, START + 14 * 86400.0))
    assert paged <= 8


def _levels(seed: int, days: int) -> np.ndarray:
    """``days`` of a machine switching between three states (levels 10, 50 and 80, noise
    sd 1, about one switch in 200 points) at 5 minutes, as the noise-shapes benchmark
    draws it."""
    t = START + STEP * np.arange(days * DAY_POINTS)
    return noise_shapes.switching_levels(np.random.default_rng(seed), t)


def test_a_machine_switching_between_its_states_stops_paging_once_it_knows_them() -> None:
    # Each switch is tens of sigma at first; once the switches have grown the scales, a
    # switch is a few sigma, the fast level follows it slowly, and the sustained shift
    # pages a few points after it. In these two 8-week series that paged 13 times from the
    # third week; a switch to a level the series has settled at is now no news: 1.
    paged = 0
    for seed in (0, 1):
        _, events = _run(_levels(seed, 56).tolist())
        paged += len(_opened_after(events, START + 14 * 86400.0))
    assert paged <= 3


def test_a_machine_switching_between_its_states_keeps_no_week() -> None:
    # In the first week each switch is a run of outliers until it is taken as a jump, the
    # fast level crawling 0.3 of a clip a point meanwhile, while a weekly bin that starts in
    # the run starts at the new level and forecasts the rest of its visit from it. Those
    # points made the weekly profile's error the smallest, and from day 7.25 it spoke
    # with the levels of the week before (expected 88.6 for a machine sitting at 50): 20
    # episodes in these 8 draws' days 7.25-14 (3, 2, 4, 2, 0, 2, 3, 4). Charged no less
    # than the fast level's miss there: 7.
    paged = 0
    for seed in range(8):
        _, events = _run(_levels(seed, 14).tolist())
        paged += len(_opened_after(events, START + 7.25 * 86400.0))
    assert paged <= 11


_STATES = ((10.0, 1.5), (80.0, 2.0), (10.0, 2.0), (80.0, 2.0), (10.0, 2.0), (80.0, 2.0))


def test_the_level_a_machine_starts_at_counts_as_its_first_visit() -> None:
    # 10 for a day and a half, then 80 and 10 in turn, two days each. The first move was
    # remembered as a move from 34 (the expected value, pulled along by the run of
    # outliers before the jump), so 10's visits began only with the first return and its
    # third visit, on day 7.5, paged in all six draws. The level left is now where the
    # series stood when the run began: the start counts, and the third visit is no news.
    # The first return and the second visit to 80 still page (a level visited once).
    for seed in range(6):
        rng = np.random.default_rng(seed)
        values = np.concatenate([np.full(int(days * DAY_POINTS), level) for level, days in _STATES])
        values += rng.normal(0.0, 1.0, values.size)
        _, events = _run(values.tolist())
        onsets = [(e.ts - START) / 86400.0 for e in events if e.event == "opened"]
        assert any(3.4 <= d <= 3.6 for d in onsets)  # the first return still pages
        assert not [d for d in onsets if d >= 7.0]


def test_a_move_to_a_level_never_settled_at_still_pages() -> None:
    # The same machines, which go to 150 in their seventh week and stay: a level they have
    # never settled at is news, and pages at once. Without the modes their switches had
    # grown the scales so much that it did not page at all.
    for seed in (0, 1):
        values = _levels(seed, 56)
        values[14000:] = 150.0 + np.random.default_rng(9).normal(0.0, 1.0, values.size - 14000)
        _, events = _run(values.tolist())
        opened = [round((e.ts - START) / STEP) for e in _opened_after(events, START + 13900 * STEP)]
        assert opened and opened[0] <= 14001


def test_a_pulse_that_ramps_up_and_down_is_no_mode_and_states_restore_exactly() -> None:
    # A pulse every 312 points (50 -> 120 -> 25 -> 50 over 70 points, an ECG's R wave):
    # the levels jump along its ramps, and those levels never settle; the base it returns
    # to does. Restored from its state every 1,009 points, it goes on exactly.
    n = 14 * DAY_POINTS
    values = 50.0 + np.random.default_rng(5).normal(0.0, 0.3, n)
    shape = np.concatenate(
        [np.linspace(0, 70, 25), np.linspace(70, -25, 25), np.linspace(-25, 0, 20)]
    )
    for s in range(100, n, 312):
        values[s : s + shape.size] += shape[: n - s]
    whole = RobustSeasonal.create({}, seed=0)
    parts = RobustSeasonal.create({}, seed=0)
    for i, v in enumerate(values.tolist()):
        if i % 1009 == 500:
            parts = RobustSeasonal.load(parts.to_bytes(), {}, seed=0)
        assert parts.update(START + STEP * i, v) == whole.update(START + STEP * i, v)
    settled = [c for c, visits in zip(whole.mc, whole.mv, strict=True) if visits >= MODE_VISITS]
    assert len(settled) == 1 and abs(settled[0] - 50.0) < 5.0  # (the base, which its tail drags)


def _minute_spikes_paged(
    seeds: tuple[int, ...], days: int, per_day: float, from_day: int
) -> tuple[int, int]:
    """Noise around 100 (sd 2) at 1-minute steps with ``per_day`` spikes of 20-40 at
    random: of its spikes from ``from_day`` on, how many paged, and how many there were."""
    paged = spikes = 0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        n = days * 1440
        values = 100.0 + rng.normal(0.0, 2.0, n)
        hit = rng.random(n) < per_day / 1440.0
        values[hit] += rng.uniform(20.0, 40.0, int(hit.sum()))
        _, events = _run(values.tolist(), step=60.0)
        opened = {round((e.ts - START) / 60.0) for e in _opened_after(events, START)}
        late = [int(i) for i in np.flatnonzero(hit) if i >= from_day * 1440]
        spikes += len(late)
        paged += sum(1 for i in late if i in opened)
    return paged, spikes


def test_spikes_three_times_a_day_at_one_minute_stay_news() -> None:
    # At a 1-minute step, spikes three times a day are one reading in 480: each is
    # news (the MongoDB machine's labels call them anomalies), and they stay so
    # after the lower line for slower series (24 of 88 paged without its share of
    # the readings, 72 of 88 with it, as before it).
    paged, spikes = _minute_spikes_paged((1, 2, 3, 4), days=10, per_day=3.0, from_day=3)
    assert paged >= 0.75 * spikes


def test_spikes_one_and_a_half_times_a_day_at_one_minute_stay_news_two_weeks_in() -> None:
    # ... and past two weeks, where the line for slower series drops to 1.5 a day: at a
    # 1-minute step those are one reading in 960, and each still pages (7 of 7 in days
    # 16-18 of these two; 1 of 7 without the share of the readings).
    paged, spikes = _minute_spikes_paged((1, 2), days=18, per_day=1.5, from_day=15)
    assert spikes >= 5 and paged >= 0.75 * spikes


def test_bursts_that_are_the_series_normal_behaviour_stop_paging_after_two_weeks() -> None:
    # Noise with 0.7 % of its points 7 sigma high, at one opening score throughout (no
    # budget growth, no evidence rule): the calibrator's tail is an exponential through
    # its 0.9 and 0.99 quantiles, and the bursts beyond them are heavier, so they paged
    # 9-11 times a week for eight weeks (56 in weeks 3-8). How often the surprise lands
    # between the line's 0.999 and 0.9999 points is measured, and from two weeks and
    # 4,032 points on the far tail is as long as that says: 1. A burst of 25 sigma in
    # week 6 still pages.
    config = EngineConfig.from_mapping({"defaults": {"policy": {"threshold": 0.999504}}})
    values = bursty_noise(7.0)
    big = 5 * 2016 + 123
    values[big] += 25.0
    opened = value_openings(config, values.tolist(), START)
    weekly = [0] * 8
    for i in opened:
        weekly[i // 2016] += 1
    assert big in opened
    # the first two weeks still page, the tail not known yet: 9 and 11 times, then 4 and
    # 5 once spikes two a day were the series' habit by the week's rate (they are 7
    # sigma, about 2 a day, and a day's rate of them swings around that), and 4 and 0
    # since the line at 5 minutes is 1.15 a day
    assert sum(weekly[:2]) >= 4
    assert sum(weekly[2:]) - 1 <= 5


def _bursty_counts_paged(seeds: range) -> int:
    """Value episodes opened from day 3.5 to day 14 of anomaly-free bursty counts (the
    generated family's: a daily rate, 1 % of the points 1.5 to 2.5 times that)."""
    times = np.arange(4 * FAR_COUNT_AFTER_POINTS, dtype=np.float64) * STEP
    paged = 0
    for seed in seeds:
        values = counts(np.random.default_rng(seed), times).tolist()
        opened = value_openings(EngineConfig.default(), values, START)
        paged += sum(i >= FAR_COUNT_AFTER_POINTS for i in opened)
    return paged


def test_counts_whose_bursts_are_their_habit_learn_their_far_tail_in_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A count's far tail applies from 3.5 days and 1,008 points on, a quarter of the wait
    # of other series. In 12 series' days 3.5 to 14 (126 days at 5 minutes; about 18
    # false episodes at the budget of one a week), the bursts paged 51 times with the
    # two weeks' wait, 2.8 times the budget: now 20.
    assert _bursty_counts_paged(range(12)) <= 26
    monkeypatch.setattr(robust_seasonal, "FAR_COUNT_AFTER_POINTS", 1 << 40)
    assert _bursty_counts_paged(range(12)) >= 40


def _volatility_regimes(seed: int, days: int = 14) -> list[float]:
    """A market's spread at 1 minute: 1 with noise 0.2 |N|, three times that (level and
    noise) in volatile spells that come about every two hours and last about 15 minutes."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    volatile = np.zeros(n, dtype=bool)
    on = False
    for i, u in enumerate(rng.random(n)):
        on = u >= 1 / 15 if on else u < 1 / 120
        volatile[i] = on
    level = np.where(volatile, 3.0, 1.0)
    return (level * (1.0 + 0.2 * np.abs(rng.normal(0.0, 1.0, n)))).tolist()


def test_volatility_regimes_that_switch_every_few_hours_stop_paging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each volatile spell is a sustained shift of a few sigmas, and the shift's means
    # start speaking several times a day; scored at least by the normal tail, the spells
    # paged about three times a day in the second week: 21, 19 and 22 times in these 3
    # series. From the third day on, a shift the series makes once a day or more is
    # scored by the calibrator alone, which has learned these spells' surprises: 0.
    def paged(seed: int) -> int:
        _, events = _run(_volatility_regimes(seed), step=60.0)
        return len(_opened_after(events, START + 7 * 86400))

    assert sum(paged(seed) for seed in range(3)) <= 3
    monkeypatch.setattr(robust_seasonal, "SHIFT_HABIT_PER_DAY", math.inf)
    assert sum(paged(seed) for seed in range(3)) >= 30


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_a_level_shift_among_random_spikes_pages_at_once(seed: int) -> None:
    # The same CPU %, which rises by 2 (as high as its biggest spikes) for 500 points:
    # each of its first points scored as a usual spike, and after twelve the level
    # was learned, so it paged in its first twelve points in 8 of 20 draws, 11 points
    # late (`python -m benchmarks.spike_shifts`). A run of spikes now scores as the
    # chance of that many in a row: where they come alone, the second point pages.
    t = START + STEP * np.arange(4032)
    values = random_spikes(np.random.default_rng(seed), t)
    values[3000:3500] += 2.0
    _, events = _run(values.tolist())
    opened = [round((e.ts - START) / STEP) for e in _opened_after(events, t[3000])]
    assert opened and opened[0] <= 3004


def test_a_restart_inside_a_run_of_spikes_continues_identically() -> None:
    # the spikes' rate, size, how often one follows another and the run so far are
    # state: a worker restarted at any point, in a run of spikes too, goes on the same
    t = START + STEP * np.arange(3200)
    values = random_spikes(np.random.default_rng(0), t)
    values[3000:] += 2.0
    proc = SeriesProcessor.create("test/entity", "m", EngineConfig.default())
    restarted = SeriesProcessor.create("test/entity", "m", EngineConfig.default())
    runs = set()
    for i, (ts, value) in enumerate(zip(t.tolist(), values.tolist(), strict=True)):
        if i >= 2900:
            restarted = SeriesProcessor.from_bytes(restarted.to_bytes(), EngineConfig.default())
        detector = restarted.detector
        assert isinstance(detector, RobustSeasonal)
        runs.add(detector.kp)
        assert proc.process(ts, value) == restarted.process(ts, value)
    assert max(runs) >= 2  # restarted inside runs of spikes


def test_a_spike_density_that_grows_pages_and_its_usual_spikes_do_not() -> None:
    # The probe "spikes grow denser" (14 days at 5 minutes, spikes of 15 sigma on 0.5 % of
    # the points, and on 5 % more from point 2800). Spikes 1.4 a day at 5 minutes were
    # under the lower line (2 a day with 0.5 % of the points), and nearly every one
    # paged: 61 onsets from day 2.1 to the change in these six series. At steps under half an hour the line is 1 a day with 0.4 % of the
    # points: 29. But the cap then hid the change, found in 2 of 6 (its first spikes are
    # capped like the usual ones, and the day's rate soon reaches four a day): a CUSUM of
    # spikes four times as dense as usual now lifts the cap where it crosses, and the
    # change pages within 300 points in 6 of 6 (5 of 6 before, among spikes that paged).
    found = false = 0
    for seed in range(1, 7):
        _, events = _run(probes.spike_density(seed).tolist())
        opened = [round((e.ts - START) / STEP) for e in events if e.event == "opened"]
        found += any(2800 <= i <= 3100 for i in opened)
        false += sum(1 for i in opened if 604 <= i < 2800)
    assert found == 6
    assert false <= 36


def test_a_cluster_of_spikes_does_not_make_the_next_spike_usual() -> None:
    # Noise at 5 minutes with two clusters of seven spikes (one every four points) on days
    # 3 and 4, an anomaly's, then lone spikes on days 6 and 8. Counted one by one, the
    # clusters lifted the slower rate of spikes over the line for steps under half an
    # hour (1 a day, 0.4 % of the points), and the lone spikes were capped as the habit
    # they are not: 0 of these 8 paged. A spike within 6 steps of the last is now in its
    # cluster: 8 of 8.
    paged = 0
    for seed in range(1, 5):
        rng = np.random.default_rng(seed)
        values = rng.normal(10.0, 1.0, 9 * DAY_POINTS)
        for day in (3, 4):
            values[day * DAY_POINTS + 100 : day * DAY_POINTS + 128 : 4] += 15.0
        lone = [6 * DAY_POINTS + 40, 8 * DAY_POINTS + 200]
        values[lone] += 15.0
        _, events = _run(values.tolist())
        opened = {round((e.ts - START) / STEP) for e in events if e.event == "opened"}
        paged += len(opened.intersection(lone))
    assert paged == 8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spikes_about_once_a_day_stay_news(seed: int) -> None:
    # Hourly, a spike of 8-20 sigma every 30 to 34 hours (an application's crash rate):
    # under four a day, so each is still news.
    rng = np.random.default_rng(seed)
    values = 20.0 + rng.normal(0.0, 1.0, 1000)
    at = np.arange(100, 1000, 30) + rng.integers(0, 5, 30)
    values[at] += rng.uniform(8.0, 20.0, at.size)
    _, events = _run(values.tolist(), step=3600.0)
    opened = {round((e.ts - START) / 3600.0) for e in _opened_after(events, START)}
    assert len(opened & set(at.tolist())) >= 26


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_rare_count_of_one_is_no_outlier_but_a_burst_is(seed: int) -> None:
    # Hourly counts, nearly always 0, a 1 in 1.5 % of the hours (purchases, crashes):
    # the error scale of such a series is a few hundredths, and every 1 paged as a
    # 20-sigma event (8-10 onsets after the first days, in 1,300 hours). A count is
    # known to its unit at best; a 6 still pages.
    rng = np.random.default_rng(seed)
    values = (rng.random(1300) < 0.015).astype(float)
    values[1000] = 6.0
    _, events = _run(values.tolist(), step=3600.0)
    opened = [round((e.ts - START) / 3600.0) for e in _opened_after(events, START)]
    assert 1000 in opened
    assert [i for i in opened if i >= 200 and i != 1000] == []


def _counts(
    seed: int, days: int, rate: float, step: float = STEP, spread: float = 0.0
) -> np.ndarray:
    """Counts every ``step`` with a daily rate peaking at 2.2 ``rate`` at noon and 0.2
    ``rate`` at midnight; ``spread`` > 0: overdispersed (a gamma-Poisson mixture)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(days * 86400 / step)) * step
    rate_now = rate * (1.2 + np.sin(2.0 * math.pi * ((t % 86400.0) / 3600.0 - 6.0) / 24.0))
    if spread:
        rate_now = rate_now * rng.gamma(1.0 / spread, spread, t.size)
    return rng.poisson(rate_now).astype(float)


@pytest.mark.parametrize(
    ("mean", "var"), [(1e-200, 1e200), (5e-324, 1e10), (1e-300, math.inf), (3.0, 12.0)]
)
def test_the_zero_probability_of_a_count_is_finite_at_any_magnitude(
    mean: float, var: float
) -> None:
    # the property test of any intervals found it: mean / var underflowed to 0 for a
    # tiny mean and a large variance, and its log raised inside the detector
    log_p = _log_zero(mean, var)
    assert math.isfinite(log_p) and log_p <= 0.0
    if (mean, var) == (3.0, 12.0):  # a negative binomial's zero: (1/4) ** (9 / 9)
        assert log_p == pytest.approx(math.log(0.25))


def _flickering_sensor(
    seed: int, unit: float, level: float, rate: float, step: float = STEP
) -> np.ndarray:
    """Two weeks of a sensor read to ``unit`` every ``step`` s that sits at ``level`` and
    is one unit off at ``rate``."""
    rng = np.random.default_rng(seed)
    n = int(14 * 86400.0 / step)
    flicker = (rng.random(n) < rate) * rng.choice([-1.0, 1.0], n)
    return np.asarray(np.round(level / unit + flicker) * unit, np.float64)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    ("unit", "level", "rate"),
    [(0.1, 35.6, 0.05), (0.1, 35.6, 0.005), (0.01, 0.13, 0.05), (0.001, 2.345, 0.05)],
)
def test_a_sensor_that_flickers_by_its_resolution_does_not_page(
    seed: int, unit: float, level: float, rate: float
) -> None:
    # A flat sensor read to a decimal unit, off by one unit now and then: its sigma
    # started from nothing and grew one clip per flicker, so each flicker paged (10
    # draws: 65 onsets at a flicker in 20 readings, 122 at one in 200); a value and the
    # one before on a grid of tenths, hundredths or thousandths are known to half that
    # unit at best, as whole numbers are to half a unit.
    values = _flickering_sensor(seed, unit, level, rate)
    _, events = _run(values.tolist())
    assert _opened_after(events, START) == []


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("shape", ["flicker", "status"])
def test_a_move_by_one_unit_of_a_rarely_moving_series_does_not_page_at_a_minute(
    seed: int, shape: str
) -> None:
    # At a minute, a sensor read to 0.1 that flickers once in 200 readings, and a health
    # flag at 1 with a lone 0 about once a day: the calibrator sees nothing move but these,
    # and within a week its tail put a move of z 1.6 beyond 0.9999, the opening threshold
    # (8 draws of each: 250 and 69 onsets in two weeks). A value within 1.5 units of the
    # expected one, on the grid the series is read on, scores no more than the normal
    # tail of its z.
    step = 60.0
    if shape == "flicker":
        values = _flickering_sensor(seed, 0.1, 35.6, 0.005, step)
    else:
        rng = np.random.default_rng(seed)
        values = np.where(rng.random(14 * 1440) < 1.0 / 1500.0, 0.0, 1.0)
    _, events = _run(values.tolist(), step)
    assert _opened_after(events, START + 2 * 86400.0) == []


@pytest.mark.parametrize("seed", [1, 2])
def test_a_rare_blip_of_three_errors_still_pages_and_a_lone_error_does_not(seed: int) -> None:
    # An error counter at zero, read every minute, with a lone 1 about once a day: no
    # news (it paged at most of them, 29 of 50 in `benchmarks.stuck_runs`). Three errors
    # at once on day 10 are still news.
    rng = np.random.default_rng(seed)
    values = np.where(rng.random(14 * 1440) < 1.0 / 1000.0, 1.0, 0.0)
    at = 10 * 1440 + 600
    values[at - 5 : at + 5] = 0.0
    values[at] = 3.0
    _, events = _run(values.tolist(), 60.0)
    opened = [round((e.ts - START) / 60.0) for e in _opened_after(events, START + 2 * 86400.0)]
    assert opened == [at]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("shift", [False, True])
def test_a_sensor_read_to_a_tenth_still_pages_at_five_units(seed: int, shift: bool) -> None:
    # The floor is half a unit: a spike or a lasting shift of 0.5 on a sensor at 35.6
    # read to 0.1 is still found, and the flickers before it are not.
    values = _flickering_sensor(seed, 0.1, 35.6, 0.01)
    at = 10 * DAY_POINTS
    if shift:
        values[at:] = np.round(values[at:] * 10.0 + 5.0) / 10.0
    else:
        values[at] = np.round(values[at] * 10.0 + 5.0) / 10.0
    _, events = _run(values.tolist())
    opened = [round((e.ts - START) / STEP) for e in _opened_after(events, START)]
    assert [i for i in opened if at <= i <= at + 3] and [i for i in opened if i < at] == []


def test_a_schedule_after_a_lasting_shift_stops_paging_at_its_edges_at_a_minute() -> None:
    # Generated schedules at a minute (the family's fifth series, seed 7): business hours
    # that shift by -36 on day 3 and stay there. The first points of each day's rise and
    # fall are remembered outliers; from the seventh, the modes must carry the levels to
    # the plateau. The new high level was taken for one remembered at 45.8 and moved a
    # quarter of the way per visit, too far off for its time to count: the edges paged 10
    # times after the 8,000th point (day 5). Each settling point now moves the level too.
    s = generate_families(6, 7, "regular", 60.0, 20160)["schedules"][4]
    proc = SeriesProcessor.create("test/entity", "m", EngineConfig.default())
    false = []
    for i, (ts, value) in enumerate(zip(s.timestamps, s.values, strict=True)):
        _, events = proc.process(ts, value)
        if i >= 8000 and not s.labels[i]:
            false += [i for e in events if e.kind == "value" and e.event == "opened"]
    assert len(false) <= 4, false


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_count_that_stops_pages_at_once(seed: int) -> None:
    # Every five minutes about 7 events at 15:00 (4 to 9 over the day's working hours):
    # the error scale, learned over the whole day, is about 5, so a zero misses by only
    # 1.5 sigma, and the fast level followed the zeros down: three hours of nothing
    # went unseen in all 5 draws; it now pages at its second or third zero.
    values = _counts(seed, 14, 4.0)
    at = 10 * DAY_POINTS + 15 * 12
    values[at : at + 36] = 0.0
    _, events = _run(values.tolist())
    opened = [round((e.ts - START) / STEP) for e in _opened_after(events, START)]
    assert [i for i in opened if at <= i < at + 4]
    first = next(e for e in events if e.event == "opened" and e.ts >= START + at * STEP)
    assert first.expected is not None and first.expected > 2.0  # what the count should be


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("step", [STEP, 3600.0])
def test_zeros_where_a_count_is_low_are_no_news(seed: int, step: float) -> None:
    # Overdispersed counts whose nights are mostly zeros and whose days have runs of
    # them too: a run of zeros is judged by the zeros such a count has (its variance),
    # at the daily profile's value where that is lower, only by the zeros the model
    # has rare, and with room for being a test of its own. With every zero counting
    # and no room (the channel's first form, by its own tail alone), one run pages
    # (seed 1 at five minutes); either of the two keeps it quiet.
    values = _counts(seed, 14 if step == STEP else 28, 1.5, step, spread=0.5)
    _, events = _run(values.tolist(), step)
    late = _opened_after(events, START + 300 * step)
    assert [e for e in late if e.value is not None and e.value < 1.0] == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_zeros_of_a_zero_inflated_count_are_no_news(seed: int) -> None:
    # Bytes written every five minutes, in whole bytes: nothing in 70 % of the
    # intervals, else a burst around 1e5. Judged as a negative binomial's zeros at the
    # size of the burst before them, runs of them paged about 75 times a series; no
    # zero of a run counts as rarer than zeros came where the model had them rare.
    values = bytes_written(np.random.default_rng(seed), np.arange(4032.0), whole=True)
    _, events = _run(values.tolist())
    late = _opened_after(events, START + 300 * STEP)
    assert [e for e in late if e.value is not None and e.value < 1.0] == []


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("step", [STEP, 3600.0])
def test_the_zeros_of_a_count_of_business_days_are_no_news(seed: int, step: float) -> None:
    # Orders on weekdays only (3 to 9 an interval by day, 0.6 at night), none on
    # weekends, for six weeks: judged at Friday evening's count, at the weekday profile's,
    # or at a weekly bin's small but non-zero value over a weekend of zeros, the
    # weekends paged (10 draws: 100 times at five minutes, 39 hourly). Zeros count at
    # the weekly profile's value where it is lower, not on a weekend it has not seen,
    # and only where the model has a zero rare. Nor does the drift's baseline judge a
    # count's weekend against the daily profile: with the spread cap at 12, the first
    # weekend's zeros (each within the noise) drifted below the weekdays' level by
    # Saturday noon in 7 of 10 draws at five minutes; once a mean far out taught the
    # spread nothing, the second weekend's did in 2 of 10, before the weekly profile spoke.
    rng = np.random.default_rng(seed)
    t = np.arange(int(42 * 86400 / step)) * step
    hours = (t % 86400.0) / 3600.0
    rate = 3.0 * np.clip(np.sin(math.pi * (hours - 7.0) / 12.0), 0.0, None) + 0.6
    rate = np.where((t // 86400.0) % 7 >= 5, 0.0, rate)  # START is a Monday
    values = rng.poisson(rate).astype(float)
    _, events = _run(values.tolist(), step)
    late = _opened_after(events, START + 300 * step)
    assert [e for e in late if e.value is not None and e.value < 1.0] == []


def test_a_restart_inside_a_run_of_zeros_continues_identically() -> None:
    # the count share and the run of zeros (its length, expected count, variance and
    # probability so far) are state: a worker restarted in an outage goes on the same
    values = _counts(1, 12, 4.0)
    at = 10 * DAY_POINTS + 15 * 12
    values[at : at + 36] = 0.0
    proc = SeriesProcessor.create("test/entity", "m", EngineConfig.default())
    restarted = SeriesProcessor.create("test/entity", "m", EngineConfig.default())
    runs = set()
    for i, value in enumerate(values.tolist()):
        if i >= at - 5:
            restarted = SeriesProcessor.from_bytes(restarted.to_bytes(), EngineConfig.default())
        detector = restarted.detector
        assert isinstance(detector, RobustSeasonal)
        runs.add(detector.zk)
        ts = START + STEP * i
        assert proc.process(ts, value) == restarted.process(ts, value)
    assert max(runs) >= 30  # restarted all through the run


def test_a_count_of_any_magnitude_that_stops_stays_finite() -> None:
    det = RobustSeasonal.create({}, seed=0)
    out = [det.update(STEP * i, 1e200 * (i % 3 + 1)) for i in range(400)]
    out += [det.update(STEP * i, 0.0) for i in range(400, 420)]
    assert all(math.isfinite(v) for row in out for v in row)
    assert det.zk == 20 and out[-1][0] > 0.999


def test_hourly_business_hours_learn_their_weekends() -> None:
    # An hourly series had no weekly profile (it needed four readings per bin per
    # week), so every weekend of a business-hours metric was news. It now has one,
    # which speaks once each hourly bin was seen four times: after four weeks. No
    # weekend nor Monday pages after that; the noise may, within the budget (one
    # false episode per 672 hourly points: three in these two series' six weeks)
    paging = 0
    transitions = 0
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        offsets = np.arange(10 * 7 * 24) * 3600.0
        hours = (offsets % 86400.0) / 3600.0
        on = (hours >= 9.0) & (hours < 18.0) & ((offsets // 86400.0) % 7 < 5)
        values = np.where(on, 60.0, 10.0) + rng.normal(0.0, 1.0, offsets.size)
        _, events = _run_at((START + offsets).tolist(), values.tolist())
        late = [e.ts for e in events if e.event == "opened" and e.ts >= START + 29 * 86400]
        paging += len(late)
        transitions += sum(1 for ts in late if ((ts - START) // 86400) % 7 in (0, 5, 6))
    assert transitions == 0
    assert paging <= 2


def _business_hours(step: float, seed: int, days: int, offset_days: int = 0) -> tuple[list, list]:
    """Hourly or half-hourly business hours with weekends, from ``offset_days`` after START."""
    rng = np.random.default_rng(seed)
    offsets = (offset_days * 86400.0 / step + np.arange(int(days * 86400.0 / step))) * step
    hours = (offsets % 86400.0) / 3600.0
    on = (hours >= 9.0) & (hours < 18.0) & ((offsets // 86400.0) % 7 < 5)
    values = np.where(on, 60.0, 10.0) + rng.normal(0.0, 1.0, offsets.size)
    return (START + offsets).tolist(), values.tolist()


def _half_hourly_schedule(seed: int, days: int = 42) -> tuple[list[float], list[float]]:
    """Read every 30 minutes: weekdays 06:30-17:30 and a job at 02:00 every night, from
    ``seed - 1`` days after START."""
    rng = np.random.default_rng(seed)
    offsets = ((seed - 1) * 48 + np.arange(days * 48)) * 1800.0
    hours = (offsets % 86400.0) / 3600.0
    on = (hours >= 6.5) & (hours < 17.5) & ((offsets // 86400.0) % 7 < 5)
    values = np.where(on, 60.0, 10.0) + rng.normal(0.0, 1.0, offsets.size)
    values[hours == 2.0] += 30.0
    return (START + offsets).tolist(), values.tolist()


def test_a_half_hourly_schedule_with_a_nightly_job_is_quiet_on_its_second_weekend() -> None:
    # An hourly weekly bin held two times of day (02:00 and 02:30, 06:00 and 06:30), its
    # value their mixture, and it could not speak for two weeks. Until then the second
    # weekend took the daily profile's right to speak: the job and the edges paged on it
    # and on the days after (29 episodes from day 7 in these six series). Now the weekly
    # bins are 30 minutes at this step, and the daily profile keeps the first week's
    # rule for weekends until each was read four times
    opened = 0
    for seed in range(1, 7):
        times, values = _half_hourly_schedule(seed)
        _, events = _run_at(times, values)
        opened += len(_opened_after(events, times[0] + 7 * 86400.0))
    assert opened <= 6


def test_a_half_hourly_schedule_restarted_every_day_continues_identically() -> None:
    # across the weekly profile's first words (day 14) and the end of the weekend rule
    # (day 28): both follow from the bins the state keeps and the time since the start
    times, values = _half_hourly_schedule(3, days=31)
    whole = SeriesProcessor.create("test/entity", "m", EngineConfig.default())
    restarted = SeriesProcessor.create("test/entity", "m", EngineConfig.default())
    for i, (ts, value) in enumerate(zip(times, values, strict=True)):
        if i % 48 == 0:
            restarted = SeriesProcessor.from_bytes(restarted.to_bytes(), EngineConfig.default())
        assert whole.process(ts, value) == restarted.process(ts, value)
    detector = restarted.detector
    assert isinstance(detector, RobustSeasonal) and len(detector.week or ()) == 336


@pytest.mark.parametrize("step", [3600.0, 1800.0])
def test_business_hours_do_not_page_while_their_weekly_profile_is_young(step: float) -> None:
    # At hourly (half-hourly) steps the weekly profile speaks after four (two) weeks;
    # until then the daily profile missed every weekend morning and the Monday after,
    # 2 to 11 onsets per series between days 8 and 29. The weekly bin's value from a
    # week before now explains such a miss (a weekly precedent)
    paging = 0
    for seed in (1, 2, 3):
        times, values = _business_hours(step, seed, 35, offset_days=seed - 1)
        _, events = _run_at(times, values)
        begin = times[0]
        paging += sum(
            1
            for e in events
            if e.event == "opened" and begin + 8 * 86400 <= e.ts < begin + 29 * 86400
        )
    assert paging <= 1


@pytest.mark.parametrize("step", [3600.0, 1800.0])
def test_a_spike_on_a_weekend_morning_still_pages_while_the_weekly_profile_is_young(
    step: float,
) -> None:
    times, values = _business_hours(step, 1, 28)
    at = int((19 * 86400 + 11 * 3600) / step)  # the third Saturday, 11:00
    values[at] += 40.0
    _, events = _run_at(times, values)
    assert times[at] in [e.ts for e in events if e.event == "opened"]


def test_a_restart_while_the_weekly_profile_is_young_continues_identically() -> None:
    # the precedent needs nothing but the state (the weekly bins, the series' start and
    # step): a worker restarted at any point of weeks 2 to 5 goes on the same
    times, values = _business_hours(3600.0, 4, 35, offset_days=3)
    proc = SeriesProcessor.create("test/entity", "m", EngineConfig.default())
    restarted = SeriesProcessor.create("test/entity", "m", EngineConfig.default())
    opened = 0
    for i, (ts, value) in enumerate(zip(times, values, strict=True)):
        if i >= 7 * 24:
            restarted = SeriesProcessor.from_bytes(restarted.to_bytes(), EngineConfig.default())
        point, events = proc.process(ts, value)
        assert (point, events) == restarted.process(ts, value)
        opened += sum(1 for e in events if e.event == "opened" and ts >= times[0] + 8 * 86400)
    assert opened <= 1


def test_jittered_readings_at_a_schedule_edge_do_not_page() -> None:
    # Timestamps off the 5-minute grid by up to 30 s, and a rise at 06:57: the reading
    # due at 07:00 comes at 06:59:40 on some days, inside the 06:30 bin, whose profile
    # is low. It belongs to the bin across the edge, and is now judged (and learned)
    # there; before, it paged on 10 of these 3 series' later days.
    paging = 0
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        offsets = np.arange(14 * DAY_POINTS) * STEP + rng.uniform(-30.0, 30.0, 14 * DAY_POINTS)
        hours = (offsets % 86400.0) / 3600.0
        on = (hours >= 6.95) & (hours < 15.95)
        values = np.where(on, 60.0, 10.0) + rng.normal(0.0, 1.0, offsets.size)
        _, events = _run_at((START + offsets).tolist(), values.tolist())
        paging += sum(1 for e in events if e.event == "opened" and e.ts >= START + 2.5 * 86400)
    assert paging == 0


def test_readings_anywhere_in_their_step_at_a_schedule_edge_rarely_page() -> None:
    # A fall at 15:36, inside the 15:30 bin, read anywhere in each 5-minute step: the
    # readings after the fall are recurring outliers of that bin, remembered by their
    # time of day to half a step. Two of one day often land within half a step of one
    # remembered time, and the second counted as a run, not the schedule: 96 onsets from
    # day 3 in these 10 series. A time already expected now explains both: 33; and a
    # time nearby seen lately at the same size continues the one not yet expected: 28.
    # Bins that take the side of the step most of their points are on, and the far side
    # judged by the bin across the step (off the grid too): 7.
    paging = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        offsets = (np.arange(14 * DAY_POINTS) + rng.uniform(0.0, 1.0, 14 * DAY_POINTS)) * STEP
        hours = (offsets % 86400.0) / 3600.0
        on = (hours >= 7.2) & (hours < 15.6)
        values = np.where(on, 60.0, 10.0) + rng.normal(0.0, 1.0, offsets.size)
        _, events = _run_at((START + offsets).tolist(), values.tolist())
        paging += len(_opened_after(events, START + 3 * 86400))
    assert paging <= 14


def _sightings(outliers: list[tuple[int, float, float]], read: float = 1.0) -> list[float]:
    """The usual size ``_recurring`` gives each outlier (day from a Monday, offset from
    07:00, residual) of a series that began on that Monday and read a share ``read`` of
    its steps: 0 where it is news."""
    det = RobustSeasonal.create({}, seed=0)
    det.tol = STEP / 2.0
    det.t0 = START
    times = [START + 7 * 3600.0 + d * 86400.0 + offset for d, offset, _ in outliers]
    return [
        det._recurring(ts, int(read * (ts - START) / STEP) + 1, r)
        for ts, (_, _, r) in zip(times, outliers, strict=True)
    ]


def test_a_schedule_edge_read_at_another_step_each_day_is_one_time_of_day() -> None:
    # the low points before a rise at 07:12, inside the 07:00 bin, with points lost: read
    # at 07:00, then 07:05, then 07:10, each was a time of day of its own, which waited
    # for sightings of its own (with 55 % of a weekday schedule's readings lost, 18 onsets
    # from day 3 in three series, now 15). A time nearby seen lately at this size, not yet
    # expected, is continued when no remembered time matches; expected from the third
    # sighting, at the size they usually have
    usual = _sightings([(0, 0.0, -40.0), (1, 300.0, -40.4), (2, 600.0, -40.8), (3, 0.0, -41.0)])
    assert usual[:2] == [0.0, 0.0] and -41.0 < usual[2] < -40.0 and -41.0 < usual[3] < -40.0
    # ... but not by an outlier of another size, nor one more than RECUR_NEAR away, nor
    # after more than RECUR_GAP_DAYS without a sighting
    assert _sightings([(0, 0.0, -40.0), (1, 300.0, -40.0), (2, 600.0, -20.0)]) == [0.0] * 3
    assert _sightings([(0, 0.0, -40.0), (1, 300.0, -40.0), (2, 1500.0, -40.0)]) == [0.0] * 3
    assert _sightings([(0, 0.0, -40.0), (1, 300.0, -40.0), (5, 600.0, -40.0)]) == [0.0] * 3
    # ... where every step was read: with half of them read, a day without a sighting
    # may be a day without a reading at that time, and up to six days (not eight) go by
    usual = _sightings([(0, 0.0, -40.0), (1, 300.0, -40.0), (5, 600.0, -40.0)], read=0.5)
    assert usual[:2] == [0.0, 0.0] and -41.0 < usual[2] < -39.0
    assert _sightings([(0, 0.0, -40.0), (1, 300.0, -40.0), (9, 600.0, -40.0)], 0.5) == [0.0] * 3


def _high_from_0910(seed: int, fall: np.ndarray) -> np.ndarray:
    """Noise 0.5 around 40, and 60 from 09:10 to each day's ``fall`` (minutes of the day)."""
    rng = np.random.default_rng(seed)
    minute = (np.arange(fall.size) % DAY_POINTS) * 5
    on = (minute >= 9 * 60 + 10) & (minute < fall)
    return np.asarray(np.where(on, 60.0, 40.0) + rng.normal(0.0, 0.5, fall.size), np.float64)


def test_a_schedule_edge_that_comes_a_step_earlier_does_not_page() -> None:
    # From a Tuesday, the fall comes at 14:40 for three days, then at 14:35 (a job a
    # step earlier, a clock a minute off). The reading at 14:30 then misses its
    # half-hour bin, which learns the low 14:35, by up to 8 sigma: an outlier at a new
    # time of day, which paged on its first sightings. So did 09:05, the point before
    # the rise, on the Monday after the first weekend: 11 onsets in these 10 series
    # (GutenTAG's square wave, whose edges move a point in two weeks, paged the same
    # way). A bin's first or last point is now judged by the bin across its edge when
    # that bin explains it and its own does not, and learned by neither.
    paging = 0
    start = START + 86400
    for seed in range(10):
        index = np.arange(14 * DAY_POINTS)
        fall = np.where(index >= 3 * DAY_POINTS, 14 * 60 + 35, 14 * 60 + 40)
        _, events = _run(_high_from_0910(seed, fall).tolist(), start=start)
        paging += len(_opened_after(events, start + 2 * 86400))
    assert paging <= 1


def test_a_day_whose_rise_does_not_come_is_found_within_a_few_points() -> None:
    # the tolerance of a step at a bin's edge must not hide a schedule that breaks
    due = 10 * DAY_POINTS + (9 * 60 + 10) // 5  # day 10, 09:10
    for seed in range(10):
        values = _high_from_0910(seed, np.full(14 * DAY_POINTS, 14 * 60 + 40))
        quiet = np.random.default_rng(seed + 50).normal(40.0, 0.5, DAY_POINTS)
        values[10 * DAY_POINTS : 11 * DAY_POINTS] = quiet
        _, events = _run(values.tolist())
        opened = _opened_after(events, START + 10 * 86400)
        assert opened, seed
        assert 0 <= opened[0].ts - (START + due * STEP) <= 4 * STEP, seed


def _cut_square(offset: int, seed: int = 1) -> np.ndarray:
    """14 days of 40 and 60 (noise sd 0.5), 60 for 114 points from ``offset`` points
    into the 00:00 bin: the rise cuts its half-hour bin unless ``offset`` is 0 or 6."""
    pos = (np.arange(14 * DAY_POINTS) - offset) % DAY_POINTS
    noise = np.random.default_rng(seed).normal(0.0, 0.5, pos.size)
    return np.asarray(np.where(pos < 114, 60.0, 40.0) + noise, np.float64)


@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_a_schedule_whose_edges_cut_bins_is_judged_by_its_noise_on_its_plateaus(
    offset: int,
) -> None:
    # The points of a bin on the far side of a step (the rise 1-3 points into its half
    # hour) missed their bin by the step's size every day: each taught the calibrator
    # that outliers come, and the band on the plateaus was 5.5-8.1 noise sd wide, against
    # 4.4 with the edges between bins (4.0 for the noise alone). A 6-sd bump there went
    # unseen. Bins now take the side most of their points are on, and the far side is
    # judged by the bin across the step.
    values = _cut_square(offset)
    det = RobustSeasonal.create({}, seed=0)
    half = []
    for i, v in enumerate(values.tolist()):
        _, _, lower, upper, _ = det.update(START + STEP * i, v)
        pos = (i - offset) % DAY_POINTS
        plateau = 30 <= pos < 94 or 144 <= pos < 270
        if i >= 10 * DAY_POINTS and plateau:
            half.append((upper - lower) / 2.0 / 0.5)
    assert float(np.median(half)) < 5.0


def test_a_bump_on_the_plateau_of_a_schedule_whose_edges_cut_bins_is_found() -> None:
    # 09:10 to 14:40 (both edges cut their bins): a 15-minute bump of 6 noise sd on the
    # high plateau at noon and on the low one at 02:00 was found 1 time in 20; the
    # plateaus were judged by a band twice as wide as the noise's (see above)
    found = other = 0
    for seed in range(6):
        values = _high_from_0910(seed, np.full(14 * DAY_POINTS, 14 * 60 + 40))
        noon = 10 * DAY_POINTS + 12 * 12
        night = 11 * DAY_POINTS + 2 * 12
        values[noon : noon + 3] += 3.0
        values[night : night + 3] -= 3.0
        _, events = _run(values.tolist())
        onsets = [round((e.ts - START) / STEP) for e in _opened_after(events, START + 2 * 86400)]
        hits = [any(at <= i <= at + 5 for i in onsets) for at in (noon, night)]
        found += sum(hits)
        other += sum(1 for i in onsets if not (noon <= i <= noon + 5 or night <= i <= night + 5))
    assert found >= 10
    assert other <= 1


@pytest.mark.parametrize(("step", "offset"), [(60.0, 20), (30.0, 25)])
def test_a_step_inside_its_bin_at_a_minute_does_not_page_once_the_profile_speaks(
    step: float, offset: int
) -> None:
    # Read every minute, a rise at 09:20 and a fall at 18:20 leave 10 points of their
    # bins on the far side each day. Before a profile spoke, each pulled its bin a clip
    # toward them: a week later the 09:00 bin sat 8 above the low side, and from then on
    # the 09:15-09:19 points and the 18:15-18:19 ones paged every day (23 onsets from day
    # 3 in these two series; at 30 seconds, 25 minutes into the bin, 16). The bin across
    # now keeps them from moving their bin while no profile speaks.
    day_points = int(86400 / step)
    paging = 0
    for seed in range(2):
        minute = (np.arange(14 * day_points) % day_points) * step / 60.0
        on = (minute >= 9 * 60 + offset) & (minute < 18 * 60 + offset)
        noise = np.random.default_rng(seed).normal(0.0, 0.5, minute.size)
        values = np.where(on, 60.0, 40.0) + noise
        _, events = _run(values.tolist(), step=step)
        paging += len(_opened_after(events, START + 3 * 86400))
    assert paging <= 2


def test_a_bins_first_visit_takes_the_side_most_of_its_points_are_on() -> None:
    # a rise at 09:10 leaves four of the 09:00 bin's six points high; a fall at 14:40,
    # four of the 14:30 bin's low. The bins started from their first two points (the
    # low 09:00 and 09:05, the high 14:30 and 14:35) and drifted for weeks
    det = RobustSeasonal.create({}, seed=0)
    values = _high_from_0910(3, np.full(2 * DAY_POINTS, 14 * 60 + 40))
    for i, v in enumerate(values[: DAY_POINTS + 12].tolist()):
        det.update(START + STEP * i, v)
    assert det.day is not None
    assert abs(det.lc + det.day[18] - 60.0) < 2.0  # 09:00
    assert abs(det.lc + det.day[29] - 40.0) < 2.0  # 14:30


def test_a_restart_inside_a_bins_first_visit_continues_identically() -> None:
    # the count of a first visit's points on each side of a step is state
    values = _high_from_0910(4, np.full(3 * DAY_POINTS, 14 * 60 + 40)).tolist()
    whole = RobustSeasonal.create({}, seed=0)
    parts = RobustSeasonal.create({}, seed=0)
    trials = 0
    for i, v in enumerate(values):
        if i % 7 == 3:
            trials += parts.tb >= _TRIAL
            parts = RobustSeasonal.load(parts.to_bytes(), {}, seed=0)
        assert parts.update(START + STEP * i, v) == whole.update(START + STEP * i, v)
    assert trials > 10  # restored on trial


def test_a_missing_business_day_is_found_once_the_pattern_is_known() -> None:
    values = _square_wave(14, weekends=False)
    day = 10 * DAY_POINTS
    values[day + 9 * 12 : day + 18 * 12] = [10.0] * (9 * 12)  # 09:00-18:00 stays low
    _, events = _run(values)
    opened = _opened_after(events, START + 2 * 86400)
    assert len(opened) >= 1
    assert abs(opened[0].ts - (START + (day + 9 * 12) * STEP)) <= 3 * STEP


@pytest.mark.parametrize("seed", [1, 7, 12, 16, 27, 34, 6, 10, 13, 20, 24, 30])
def test_a_slow_drift_within_the_noise_is_found(seed: int) -> None:
    # A noisy stationary metric that ramps away by 1.6-3.3 sigma over three to twelve
    # hours and stays there (the generated drift family): the levels follow it, no
    # point is beyond the clip, and none of 40 such series (seeds 0-39) paged in the
    # ramp (the family found 0 of 11). The mean of its misses is a sustained shift:
    # over about ten and thirty points it found 20 of the 40 (the first six seeds
    # here); a third mean, over about a hundred points, finds 38 (the other six were
    # missed before it), with as many false onsets elsewhere (16).
    t = np.arange(3000) * STEP
    values = stationary(np.random.default_rng(seed), t)
    values, ramp = drift_ramp(np.random.default_rng(seed + 100), values, 3000, DAY_POINTS)
    _, events = _run(values.tolist())
    opened = [round((e.ts - START) / STEP) for e in _opened_after(events, START + 450 * STEP)]
    length = ramp.stop - ramp.start
    assert any(ramp.start - length <= i < ramp.stop + 12 for i in opened), (ramp, opened)


def test_a_rare_one_among_zeros_is_no_sustained_shift() -> None:
    # Per-minute counts of errors: 0 for hours, then a 1. The misses were all 0, so
    # the mean square of their mean fell to nothing, and a single 1 (z 1.6) was a
    # 16-sigma "shift" (the anomaly-free service-unavailable series paged 3 times
    # instead of once). The mean is never measured below what white noise gives it.
    det = RobustSeasonal.create({}, seed=0)
    for i in range(3000):
        det.update(60.0 * i, 0.0)
    score, _, _, _, z = det.update(60.0 * 3000, 1.0)
    assert 1.0 < z < SHIFT_Z and score < 0.999  # its own surprise, not a shift's


def _cycle_in_proportion(seed: int, points: int = 1600) -> list[float]:
    """Hourly from Monday 00:00: a daily cycle from 5 to 95, noise in proportion to it."""
    t = START + 3600.0 * np.arange(points)
    return cycle_in_proportion(np.random.default_rng(seed), t).tolist()


def test_noise_that_grows_with_the_level_does_not_page_at_the_daily_peak() -> None:
    # Sales, traffic, tweets: at the daily peak the noise is 19 times the night's. With
    # one absolute error scale, learned over about a day of hourly points, every peak
    # paged: 51 false episodes in these five series (75 per 10k points against a budget
    # of 14.9). The relative scale standardises such residuals better and speaks.
    opened = 0
    for seed in range(5):
        _, events = _run(_cycle_in_proportion(seed), step=3600.0)
        opened += len(_opened_after(events, START + 240 * 3600.0))
    assert opened <= 4


def test_a_spike_at_the_peak_of_such_a_cycle_is_still_found() -> None:
    # What the relative scale must not hide: a five-sigma spike at the peak opens an
    # episode at its own point (before the relative scale, a noise point just before
    # it had opened one already)
    values = _cycle_in_proportion(1)
    at = 1500 + (15 - 1500 % 24)  # 15:00, the peak
    values[at] *= 1.6  # five sigmas of its noise (sd 0.1 of the log)
    _, events = _run(values, step=3600.0)
    opened = [round((e.ts - START) / 3600.0) for e in _opened_after(events, START)]
    assert at in opened


@pytest.mark.parametrize("seed", [6, 7])
def test_a_flow_read_in_whole_units_that_flickers_is_not_paged(seed: int) -> None:
    # A 1-second flow of about 32, read in whole units: a fifth of the readings one unit
    # off, each led by a float-rounding wiggle (SKAB's valves). The absolute scale,
    # started on the wiggles, collapsed (a flicker was 30-80 sigma, paging from the end
    # of the probation on); the relative one, started from the young unclipped scale,
    # standardises the residuals and speaks.
    values = flickering_flow(np.random.default_rng(seed), np.arange(1150.0))
    _, events = _run(values.tolist(), step=1.0)
    assert _opened_after(events, START + 172.0) == []


@pytest.mark.parametrize("base", ["walk", "seasonal"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_relative_scale_learns_misses_after_a_gap_per_step(base: str, seed: int) -> None:
    # A random walk (steps of 0.5 about 100) and a daily cycle with Gaussian noise: their
    # noise does not grow with the level. Read in busy and quiet spells, the fast level's
    # misses after a gap are larger by the square root of the steps missed. The relative
    # scale learned them as they came, grew with the gaps, was the wider scale and so the
    # better standardised, and spoke for 78 % to 100 % of the second week's points of
    # these six series. It now learns them per step, as the fast level's own scale does.
    n = 14 * DAY_POINTS
    index = _spells(n, seed)
    rng = np.random.default_rng(seed)
    if base == "walk":
        values = 100.0 + np.cumsum(rng.normal(0.0, 0.5, n))
    else:
        values = seasonal(rng, STEP * np.arange(n, dtype=np.float64))
    det = RobustSeasonal.create({}, seed=0)
    speaks = 0
    for k, i in enumerate(index):
        det.update(START + STEP * i, float(values[i]))
        if k >= index.size // 2:
            speaks += det.m2r < MULT_MARGIN * det.m2a
    assert speaks <= 0.05 * (index.size - index.size // 2)


def test_an_episode_resolves_when_the_series_is_back_to_normal() -> None:
    rng = np.random.default_rng(3)
    values = (50.0 + rng.normal(0.0, 1.0, 3000)).tolist()
    for i in range(2000, 2010):
        values[i] += 12.0  # a ten-point bump
    _, events = _run(values)
    opened = _opened_after(events, START)
    resolved = [e for e in events if e.event == "resolved"]
    assert len(opened) == 1 and len(resolved) == 1
    assert resolved[0].ts - opened[0].ts <= 20 * STEP
    # the episode keeps its direction, although the first normal point after the bump
    # sits below a forecast the bump pulled up
    assert {e.direction for e in events} == {"up"}


def _drift_ramps_found(base: Base, draws: int, quiet_from: int = 0) -> tuple[int, list[str]]:
    """Draws (seeds 0 to ``draws - 1``) of 14 days of ``base`` with a generated drift
    ramp: how many open an episode in the ramp or as long again after it, and those
    episodes' explanations. None may open before the ramp (from point ``quiet_from``)."""
    found = 0
    said: list[str] = []
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        n = 14 * DAY_POINTS
        values, where = drift_ramp(rng, base(rng, np.arange(n) * STEP), n, 0)
        _, events = _run(values.tolist())
        opened = [e for e in events if e.event == "opened"]
        begin = START + where.start * STEP
        assert not [e for e in opened if START + quiet_from * STEP <= e.ts < begin]
        end = START + (2 * where.stop - where.start) * STEP  # the ramp and as long again
        hits = [e for e in opened if begin <= e.ts < end]
        found += bool(hits)
        said += [e.explanation for e in hits]
    return found, said


def test_a_quantised_sensor_that_drifts_away_over_hours_opens_an_episode() -> None:
    # a temperature read in half units that ramps away from its daily pattern over 3 to
    # 12 hours and stays there: the fast level follows it a step at a time and no miss is
    # large, so only the drift's baseline sees it (before it, none of six draws opened an
    # episode during the ramp or as long again after it; 4 with a baseline that started
    # slow and the spread's cap at 25, all 6 with a running-mean start and a cap of 16)
    found, said = _drift_ramps_found(quantised, 6)
    assert found >= 5
    # and the episode says why: the value sits inside its band, the series has drifted
    assert all("inside its band but the series has drifted" in why for why in said)
    assert all(why.endswith(": a slow drift, detector robust_seasonal") for why in said)


def test_a_smooth_daily_cycle_that_drifts_away_over_hours_opens_an_episode() -> None:
    # a smooth daily cycle (its noise a twelfth of the amplitude) that ramps 15 to 30
    # sigmas away from its pattern over 3 to 12 hours and stays there: the fast level
    # follows it, so only the drift's baseline can see it, and the mean distance from
    # the baseline, building up over a hundred points, taught the spread it is judged by
    # as it went (1 of these 12 found). Now each square teaches it at most as
    # DRIFT_SPREAD_CAP times the mean square would: 4 found with a cap of 25 (8 with 20,
    # which split a false drift on hourly business hours in two and added one in counts,
    # while a baseline's slow start inflated the spread). With a running-mean start, a cap
    # of 16: 9 found; 12 (a slow start only soon after the shift's means spoke): 9.
    # The three missed were ramps that made the daily profile miss until it was no
    # longer credible, which ended the baseline the drift was building up against; a
    # baseline whose mean is DRIFT_KEEP root mean squares out now stays, and a square
    # beyond DRIFT_SPREAD_CAP times the mean square teaches the spread nothing: 12 of 12.
    found, _ = _drift_ramps_found(seasonal, 12, quiet_from=600)
    assert found >= 11


def _judging(values: np.ndarray) -> RobustSeasonal:
    """A detector fed ``values`` at 5-minute steps whose drift baseline is live."""
    det = RobustSeasonal.create({}, seed=0)
    for i, value in enumerate(values):
        det.update(START + STEP * i, float(value))
    assert det.ds != 0 and det.jumps == 0
    return det


def _copy(det: RobustSeasonal) -> RobustSeasonal:
    return RobustSeasonal.load(det.to_bytes(), {}, seed=0)


def test_a_random_walk_after_a_day_of_dense_spikes_does_not_drift() -> None:
    # a price whose spikes come at 15 % of its points for half a day to a day: the spikes
    # miss every forecaster alike, and learned up to 20 sigma they swelled the daily
    # profile's long-run error and the fast level's until the profile passed as credible
    # for a week, and the walk's wander spoke as a drift (47 episodes opened after the
    # spikes in these 6 draws, 26 in one). Winsorised at each forecaster's clip, the
    # errors that judge it keep the profile's misses of the walk above the fast level's
    # (3 after the spikes, at most 1 in a draw).
    late = []
    for draw in range(1, 7):
        s = kinds_matrix.one_series("random_walk", "spike_density", 1.0, draw, 4032)
        _, events = _run_at(s.timestamps, [float(v) for v in s.values if v is not None])
        after = s.timestamps[max(end for _, end in s.windows) + 50]
        late.append(sum(e.event == "opened" and e.ts > after for e in events))
    assert sum(late) <= 6 and max(late) <= 2, late


def test_a_drift_building_up_keeps_its_baseline_when_its_profile_stops_being_credible() -> None:
    # a daily cycle that ramps away makes its profile miss as the drift builds up; the
    # baseline the drift is measured from must not end because of what it measures
    values = seasonal(np.random.default_rng(3), np.arange(4 * DAY_POINTS + 1) * STEP)
    det = _judging(values[:-1])
    src = det.ds
    det.qc = det.qs = det.qw = 1e6 * det.qf  # no offset's forecaster is credible
    unit = math.sqrt(max(det.dv, _DRIFT_NULL))
    quiet, building = _copy(det), _copy(det)
    quiet.dm = 0.0
    building.dm = (DRIFT_KEEP + 1.0) * unit
    for d in (quiet, building):
        d.update(START + STEP * (len(values) - 1), float(values[-1]))
    assert quiet.ds == 0  # nothing building: a forecaster missing like that is no reference
    assert building.ds == src  # a drift building up: the baseline stays


def test_a_drift_that_speaks_goes_on_through_the_main_models_points() -> None:
    # an outlier (the main model's point) neither moves the drift's baseline nor is
    # judged by it; when the drift already spoke it gave 0 there, and the policy, back to
    # normal for one point, resolved the drift's episode and opened another at its next
    # point (generated seasonal series 0, seed 7: onsets at 2299 and 2301)
    values = seasonal(np.random.default_rng(3), np.arange(4 * DAY_POINTS) * STEP)
    det = _judging(values)
    unit = max(det.dv, _DRIFT_NULL)
    det.dm = 7.0 * math.sqrt(unit)
    level, sigma = det.dl, 1.0
    for speaking, said in ((3, 49.0), (0, 0.0)):
        d = _copy(det)
        d.dk = speaking
        got = d._drift(level + 30.0, level, d.ds, sigma, True)
        assert got == pytest.approx(said)
        assert (d.dl, d.dm, d.dv, d.dk) == (det.dl, det.dm, det.dv, speaking)  # untouched


def test_the_drift_spread_learns_every_distance_before_the_drift_may_speak() -> None:
    # before DRIFT_AFTER points the drift cannot speak, and a distance there from the
    # start is the series' own: the spread learns it as it is; later a square beyond
    # DRIFT_SPREAD_CAP times the mean square teaches it nothing (a drift building up must
    # not teach the spread it is judged by)
    values = 50.0 + np.random.default_rng(5).normal(0.0, 1.0, DRIFT_AFTER + 200)
    grown = {}
    for n in (DRIFT_AFTER // 2, DRIFT_AFTER + 100):
        det = _judging(values[:n])
        unit2 = max(det.dv, _DRIFT_NULL)
        det.dm = 5.0 * math.sqrt(unit2)  # under DRIFT_Z: it does not speak
        before = det.dv
        det.update(START + STEP * n, float(values[n]))
        assert 0.0 < det.dm * det.dm < 36.0 * unit2
        weight = 1.0 / det.age if det.age < 1000 else 0.001
        grown[n] = (det.dv - before) / (weight * unit2)
    assert DRIFT_SPREAD_CAP < 20.0
    assert grown[DRIFT_AFTER // 2] > 20.0  # learned near the 5^2 = 25 it was
    assert grown[DRIFT_AFTER + 100] == 0.0  # not learned


def test_an_hourly_metric_that_drifts_away_over_days_opens_an_episode() -> None:
    # a stationary metric read hourly (12 weeks) that ramps 5 to 10 sigmas away over 1.5
    # to 4 days and stays there. The drift's baseline started at the level the forecaster
    # had in the series' first hours and took hundreds of points to reach the values; the
    # spread learned that climb at one over the points so far and kept it for weeks at
    # hourly steps (its mean square 30 times a settled one's), so 7 of these 12 were
    # found. A young baseline is now the mean of the points so far, and the spread learns
    # every point until the drift may speak: 11, and no more episodes before the ramps
    found = false = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        n = 12 * 7 * 24
        values, where = drift_ramp(rng, stationary(rng, np.arange(n) * 3600.0), n, 24)
        _, events = _run(values.tolist(), step=3600.0)
        onsets = [round((e.ts - START) / 3600.0) for e in events if e.event == "opened"]
        found += any(where.start <= i < 2 * where.stop - where.start for i in onsets)
        false += sum(1 for i in onsets if 300 <= i < where.start)
    assert found >= 10
    assert false <= 4


def _steep_cycle(seed: int, days: int) -> np.ndarray:
    """A smooth daily cycle of amplitude 30 with noise 0.5 at 5-minute steps: within a
    30-minute profile bin it moves by up to three times the noise's spread."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * DAY_POINTS) * STEP
    return 50.0 + 30.0 * np.sin(2 * math.pi * t / 86400.0 + seed) + rng.normal(0.0, 0.5, t.size)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_steep_smooth_daily_cycle_is_forecast_between_its_bins(seed: int) -> None:
    # read bin by bin, the 30-minute profile is a staircase: its mean miss on the sixth
    # day was 0.83 (the noise alone gives 0.40); read as a curve, 0.55
    values = _steep_cycle(seed, 7)
    det = RobustSeasonal.create({}, seed=0)
    expected = [det.update(START + STEP * i, float(v))[1] for i, v in enumerate(values)]
    day6 = slice(5 * DAY_POINTS, 6 * DAY_POINTS)
    assert float(np.mean(np.abs(values[day6] - np.asarray(expected[day6])))) < 0.65


def test_a_shift_of_four_noise_sigmas_on_a_steep_smooth_cycle_is_found() -> None:
    # +2 for 60 points (5 hours) on the cycle above: the staircase's error was part of
    # sigma, and 1 of these 10 was found; read as a curve, 5
    found = false = 0
    for seed in range(1, 11):
        values = _steep_cycle(seed, 12)
        at = 9 * DAY_POINTS + 23 * seed
        values[at : at + 60] += 2.0
        _, events = _run(values.tolist())
        onsets = [round((e.ts - START) / STEP) for e in events if e.event == "opened"]
        found += any(at - 60 <= i < at + 60 for i in onsets)
        false += sum(1 for i in onsets if i >= 2 * DAY_POINTS and not at - 60 <= i < at + 60)
    assert found >= 4
    assert false <= 5


def test_a_restart_while_a_profile_is_read_as_a_curve_continues_identically() -> None:
    # which bins lie on the curve is kept up to date as bins learn, not stored: a detector
    # restored from its state counts them afresh and must go on exactly as one that was not
    values = _steep_cycle(4, 8)
    ts = [START + STEP * i for i in range(values.size)]
    whole = RobustSeasonal.create({}, seed=0)
    parts = RobustSeasonal.create({}, seed=0)
    fresh = RobustSeasonal.create({}, seed=0)
    for i, (t, v) in enumerate(zip(ts, values.tolist(), strict=True)):
        if i % 97 == 50:
            parts = RobustSeasonal.load(parts.to_bytes(), {}, seed=0)
        assert parts.update(t, v) == whole.update(t, v)
        if whole.cn >= 0 and whole.day is not None:
            # the bins kept up to date are the bins counted afresh
            counted = fresh._curve_count(whole.day)
            assert (whole.cm, whole.cn) == (fresh.cm, counted)
    assert whole.cn >= 0.6 * len(whole.day or ())  # it was read as a curve


def _weekly_business_hours(scale: float, weeks: int) -> list[float]:
    """Business hours on weekdays, quiet weekends, a flat sensor's flicker of one step."""
    rng = np.random.default_rng(5)
    out = []
    for i in range(weeks * 7 * DAY_POINTS):
        day, hour = divmod(i // 12, 24)
        busy = day % 7 < 5 and 9 <= hour < 18
        out.append(scale * (40.0 + (30.0 if busy else 0.0) + 0.1 * int(rng.integers(-1, 2))))
    return out


@pytest.mark.parametrize("scale", [1.0, 1e-300, 1e290])
def test_a_restored_weekly_profile_goes_on_exactly_and_is_kept_in_float32(scale: float) -> None:
    # the weekly profile (336 bins at 5 minutes) is most of a state: its bins are rounded
    # to float32's 24 significant bits as they are learned, so the state keeps them in
    # half the bytes and a restored detector goes on exactly; bins beyond float32's range
    # (1e290, 1e-300) are kept as float32 scaled by one power of two (2 bytes more a
    # profile). Before, they stayed doubles: a state of 4,273 B at 1e300, over 4 KB.
    values = _weekly_business_hours(scale, 3)
    whole = RobustSeasonal.create({}, seed=0)
    parts = RobustSeasonal.create({}, seed=0)
    for i, v in enumerate(values):
        if i % 1009 == 500:
            parts = RobustSeasonal.load(parts.to_bytes(), {}, seed=0)
        assert parts.update(START + STEP * i, v) == whole.update(START + STEP * i, v)
    week = whole.week or []
    assert len(week) == 336 and all(b == b for b in week)  # every bin was learned
    assert all((math.frexp(b)[0] * 2.0**24).is_integer() for b in week)
    narrow = array("d", week) == array("d", array("f", week))  # out of range: inf != b
    assert narrow == (scale == 1.0)
    # doubles, and no version 14 to 20 fields at the end
    v13 = _as_version_13(_as_version_14(_as_version_15(_as_version_16(whole.to_bytes()))))
    doubles = RobustSeasonal.load(v13, {}, seed=0)
    doubles.n0, doubles.dn, doubles.dp = whole.n0, whole.dn, whole.dp  # not in version 13
    doubles.xf, doubles.xr = whole.xf, whole.xr
    doubles.mc, doubles.mv, doubles.mt = whole.mc, whole.mv, whole.mt
    doubles.mi, doubles.mp, doubles.ms = whole.mi, whole.mp, whole.ms
    doubles.hr, doubles.hs = whole.hr, whole.hs
    doubles.qf, doubles.qs, doubles.qc, doubles.qw = whole.qf, whole.qs, whole.qc, whole.qw
    doubles.sr = whole.sr
    doubles.kq, doubles.kb, doubles.kt = whole.kq, whole.kb, whole.kt
    doubles.tk, doubles.nq = whole.tk, whole.nq
    assert doubles.to_bytes() == whole.to_bytes()
    later = _STATE_V15 + _STATE_V16 + _STATE_V17 + _STATE_V18 + _STATE_V19 + _STATE_V20
    tail = struct.calcsize("<QI") + struct.calcsize(
        "<" + later + _STATE_V21 + _STATE_V22 + _STATE_V23
    )
    assert len(whole.to_bytes()) == len(v13) - 4 * 336 + tail + (0 if narrow else 2)


def test_a_flat_sensor_read_hourly_is_as_quiet_with_its_weekly_profile_in_float32() -> None:
    # A flat sensor (a constant at 0.1 resolution that flickers by a step) read hourly: its
    # float32 weekly bins taught the weekly error scale their rounding (1e-9, where it was
    # exactly 0), and its flicker then paged at 2,800 sigma: 51 false episodes in these 6
    # series, against 0 with doubles. A miss within the bin's rounding is no miss: 0.
    opened = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        t = 3600.0 * np.arange(4032)
        values = flat(rng, t).tolist()
        _, events = _run(values, step=3600.0)
        opened += len(_opened_after(events, START + 3600.0 * 605))  # after NAB's probation
    assert opened <= 3


def test_bins_a_first_weekend_saw_first_start_again_on_the_first_monday() -> None:
    # Business hours from a Thursday noon, with no readings on Thursday and Friday
    # mornings (a sensor that reported only after noon that week, or readings at
    # irregular times with quiet spells): the morning bins were first learned on the
    # weekend, low. A series that began on a Friday or a weekend has every bin on notice
    # for its first Monday; this one had none, and its 09:00 rise paged on the next
    # Monday and again on Tuesday, Wednesday and Thursday (18 onsets from Tuesday in
    # these 6 series). Those bins are now on notice too: Monday pages, the rest do not (0).
    later = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        times, values = [], []
        for i in range(3 * DAY_POINTS + DAY_POINTS // 2, 12 * DAY_POINTS):
            day, hour = divmod(i // 12, 24)
            if day in (3, 4) and hour < 12:
                continue  # no readings on the first Thursday and Friday mornings
            busy = day % 7 < 5 and 9 <= hour < 18
            times.append(START + STEP * i)
            values.append((60.0 if busy else 10.0) + float(rng.normal(0.0, 0.5)))
        _, events = _run_at(times, values)
        later += len(_opened_after(events, START + 8 * 86400))  # from the second Tuesday
    assert later <= 1


def test_business_hours_read_at_irregular_times_page_less_in_their_first_weeks() -> None:
    # Readings anywhere in their step, in busy spells (80 % kept) and quiet ones (5 %):
    # the profiles wait for the step and start late (about 90 points in), and their
    # long-run error started as the slow level's, which by then held a business day's
    # rise and, as a mean over all the points so far, kept the daily profile from
    # speaking for a week. 12 anomaly-free series, false episodes after NAB's
    # probation: 47 before, 39 with the first weekend's bins on notice, 29 now.
    from stream_app.offline.families import generate_families

    opened = 0
    for s in generate_families(12, 7, "events")["free_business_hours"]:
        _, events = _run_at(s.timestamps, s.values)
        after = s.timestamps[int(0.15 * len(s.timestamps))]
        opened += len(_opened_after(events, after))
    assert opened <= 34


def test_a_noise_free_trapezoid_does_not_page_at_its_corners() -> None:
    # ramps 06:13-09:13 and 17:13-20:13 with plateaus between: a profile read as a curve,
    # whose corners fall inside bins. One error scale for the day is the ramps' (near 0);
    # without the floor where the curve bends (KINK_FLOOR) the end of the evening ramp
    # paged on the fourth day
    hours = ((np.arange(14 * DAY_POINTS) * STEP + 13 * 60.0) % 86400.0) / 3600.0
    rise = np.clip(np.minimum((hours - 6.0) / 3.0, (20.0 - hours) / 3.0), 0.0, 1.0)
    _, events = _run((20.0 + 60.0 * rise).tolist())
    assert _opened_after(events, START + DAY_POINTS * STEP) == []


def test_a_damaged_state_with_an_age_of_0_does_not_stop_the_drift_baseline() -> None:
    # the points since the last jump are at least 1 wherever a point is scored; a state
    # read back with 0 there (a flipped byte, found by mutating states) divided by it
    det = RobustSeasonal.create({}, seed=0)
    for i in range(700):
        det.update(STEP * i, 10.0 + (i % 5) * 0.1)
    assert det.ds != 0  # the baseline is judging
    head = bytearray(det.to_bytes())
    struct.pack_into("<I", head, struct.calcsize("<BI" + "d" * 17 + "i"), 0)
    damaged = RobustSeasonal.load(bytes(head), {}, seed=0)
    assert damaged.age == 0
    assert all(math.isfinite(v) for v in damaged.update(STEP * 700, 10.2))


def _shift_spoke(seed: int, step: float = STEP) -> tuple[RobustSeasonal, list[float], int]:
    """A noisy metric (3,000 points, five days at 5-minute steps) whose level moves 2
    sigma: the detector up to the point where the shift's means spoke, the values, the
    next index."""
    values = (50.0 + np.random.default_rng(seed).normal(0.0, 1.0, 3000)).tolist()
    for i in range(1500, 3000):
        values[i] += 2.0
    det = RobustSeasonal.create({}, seed=0)
    for i, value in enumerate(values):
        det.update(START + step * i, value)
        if det.dn > _DRIFT_RUN:
            assert i >= 1500 and det.ds == 0  # the baseline waits for the level to settle
            return det, values, i + 1
    raise AssertionError("the shift's means never spoke")


def _wait_for_baseline(det: RobustSeasonal, values: list[float], i: int) -> tuple[int, int]:
    """Feed ``values`` from ``i`` until a drift's baseline starts again: the next index and
    the points that baseline had learned when it started."""
    for k in range(i, len(values)):
        det.update(START + STEP * k, values[k])
        if det.ds:
            return k + 1, det.dn
    raise AssertionError("the baseline never started again")


@pytest.mark.parametrize("seed", [1, 2, 3, 7])  # (4: a jump took the step)
def test_a_drift_baseline_starts_slow_only_soon_after_the_shift_spoke(seed: int) -> None:
    # A level that moved: the baseline that starts soon after is slow from the start
    # (the level after the move is what a further move is judged from) ...
    det, values, i = _shift_spoke(seed)
    _, learned = _wait_for_baseline(det, values, i)
    assert learned == _DRIFT_RUN
    # ... but one that waited longer, its forecaster missing as a random walk's would
    # (application crash rate 2 in the development set waited 235 points), would start
    # from a level gone stale: it starts rough, the mean of the points so far
    det, values, i = _shift_spoke(seed)
    det.qc = det.qs = det.qw = 1e6 * det.qf  # no forecaster is credible
    waited = [det.dn]
    for k in range(i, i + DRIFT_RECENT + 100):
        det.update(START + STEP * k, values[k])
        waited.append(det.dn)
    assert det.ds == 0  # the baseline waited, counting down from where the means last spoke
    last = max(k for k, dn in enumerate(waited) if dn == _DRIFT_RUN + DRIFT_RECENT)
    assert last < 50
    assert waited[last + 1 : last + DRIFT_RECENT + 1] == [
        *range(_DRIFT_RUN + DRIFT_RECENT - 1, _DRIFT_RUN, -1),
        0,
    ]
    assert waited[-1] == 0
    det.qc = det.qs = det.qw = det.qf  # credible again
    i, learned = _wait_for_baseline(det, values, i + DRIFT_RECENT + 100)
    assert learned == 0
    det.update(START + STEP * i, values[i])
    assert det.ds and det.dn == 1  # its first point is its running mean


def test_the_level_to_come_back_to_is_kept_where_the_baseline_is_a_level() -> None:
    # the baseline from before the shift's means spoke is kept where the profiles have
    # seen a day (a day lower than its pattern ends by coming back to it), and where the
    # baseline is the value's own: a 1-second sensor under a day old, whose one-bin
    # profile follows its value like a level, is judged without that bin's offset, so a
    # return of the value is a return of its baseline
    det, _, _ = _shift_spoke(3)
    assert det.dp == det.dp and abs(det.dp - 50.0) < 1.0
    det, _, _ = _shift_spoke(3, step=1.0)
    assert det.dp == det.dp and abs(det.dp - 50.0) < 1.0


def _valve(seed: int) -> list[float]:
    """A flow read every second in whole units (noise 0.45), 1,100 points: at point 560 a
    valve closes over 40 seconds, the flow 1.5 lower (about 3 sigma), and at 900 it opens
    again over 15 (SKAB's valve2 runs)."""
    shape = np.zeros(1100)
    shape[560:600] = np.linspace(0.0, 1.0, 40)
    shape[600:900] = 1.0
    shape[900:915] = np.linspace(1.0, 0.0, 15)
    noisy = 32.0 + np.random.default_rng(seed).normal(0.0, 0.45, 1100)
    return [float(v) for v in np.round(noisy - 1.5 * shape)]


def test_a_valve_that_closes_on_a_one_second_sensor_drifts_and_its_reopening_does_not() -> None:
    # The drift used to judge a 1-second sensor's value less its daily bin's offset, though
    # the profile may not speak for 1.25 days: a bin that holds 1,800 points in a row
    # followed the flow down like a level, and the drift saw nothing (SKAB valve2: 2 of 4
    # runs found; 1 of 10 here). Judged on the value itself, the drift finds the closing
    # (7); the reopening, back where the baseline was before the drift became the new
    # level, is the end of a temporary change (all 10 reopenings paged without that; 2
    # still do, twice each, where the shift's means spoke on the way back)
    found = reopened = 0
    times = [START + float(i) for i in range(1100)]
    for seed in range(10):
        _, events = _run_at(times, _valve(seed))
        opened = [round(e.ts - START) for e in events if e.event == "opened"]
        found += any(560 <= i < 900 for i in opened)
        reopened += sum(i >= 900 for i in opened)
    assert found >= 6
    assert reopened <= 4


def test_a_smooth_daily_cycle_read_every_second_is_quiet_after_its_first_day() -> None:
    # Once its first 1.25 days were over, a 1-second sensor's daily profile gave the
    # drift its offset: a 30-minute bin learned in one visit of 1,800 points is a
    # staircase on a smooth cycle, and the drift spoke at every bin's edge (8 false
    # episodes between 33 h and 36 h; 19-24 a day at 30 times the noise). Where that
    # profile does not speak, the drift judges the value itself, whose baseline over 100
    # seconds barely sees the cycle move.
    n = 130_000
    times = START + np.arange(n, dtype=np.float64)
    rng = np.random.default_rng(0)
    values = 50.0 + 10.0 * np.sin(2.0 * math.pi * times / 86400.0) + rng.normal(0.0, 1.0, n)
    _, events = _run_at(times.tolist(), values.tolist())
    assert not [e for e in events if e.event == "opened" and e.ts > START + 3600.0]


def test_a_schedule_read_every_second_learns_its_edges_among_outliers_of_noise() -> None:
    # A 1-second square wave (20 at night, 80 from 09:00 to 18:00, noise 1) paged at
    # both edges every day: some 350 outliers of noise a day (beyond the clip) each took
    # one of the RECUR_SLOTS times of day in turn, and each edge's run of 12 took 12
    # more, so no edge was ever seen on two days. Runs now leave at most RECUR_RUN_MAX
    # times, and at steps under 18 s only an outlier beyond what noise reaches about
    # once a day is remembered: the third day's 09:00 is the schedule's. The second
    # day's fall is a move to the night's level, visited twice by then (the start counts
    # as a visit since the first move remembers where the run began), and no news.
    n = 57 * 3600 + 600
    times = START + np.arange(n, dtype=np.float64)
    hours = (times % 86400.0) / 3600.0
    rng = np.random.default_rng(0)
    values = np.where((hours >= 9.0) & (hours < 18.0), 80.0, 20.0) + rng.normal(0.0, 1.0, n)
    _, events = _run_at(times.tolist(), values.tolist())
    opened = [(e.ts - START) / 3600.0 for e in events if e.event == "opened"]
    assert [round(h) for h in opened] == [9, 18, 33]  # the first two days' edges, but one


def test_a_drift_that_ends_its_ramp_about_its_threshold_is_one_episode() -> None:
    # The generated drift family's sixth series (draw 11): after its ramp's window (points
    # 1174-1308) the drift's mean hovered about DRIFT_Z, and every point below it ended
    # the episode: 7 opened within 50 points. Once the drift speaks it goes on down to
    # DRIFT_HOLD, so it lasts DRIFT_ACCEPT points in a row and is the new level: one.
    # Since a square beyond DRIFT_SPREAD_CAP times the mean square teaches the spread
    # nothing, the drift, which goes on (its labels run to point 2517), speaks once more
    # 50 points later, as one episode of DRIFT_ACCEPT points: two, neither a flicker.
    g = generate_families(6, 11)["drift"][5]
    (a, b), *_ = nab_windows(g.labels)
    assert (a, b) == (1174, 1308)
    assert max(i for i, label in enumerate(g.labels) if label) == 2517
    _, events = _run_at(list(g.timestamps), list(g.values))
    opened = [e.ts for e in events if e.event == "opened"]
    assert any(g.timestamps[a] <= ts <= g.timestamps[b] for ts in opened)  # found
    after = [ts for ts in opened if g.timestamps[b] < ts <= g.timestamps[b + 100]]
    assert len(after) <= 2
    assert all(t - s >= 20 * STEP for s, t in itertools.pairwise(after))


def test_the_day_after_a_day_lower_than_its_pattern_is_no_drift() -> None:
    # A daily trapezoid (20 at night, 80 by day, unit noise; the shape of NAB's artificial
    # series) with one day 40 % lower. The shift's means speak that evening, and the
    # drift's baseline starts again slow, at the lower day's level; the day after opened
    # an episode in 8 of these 10 draws (most a drift above that level as the pattern
    # came back; 3 with the spread cap at 16). Back within DRIFT_BACK sigmas of the
    # baseline from before the shift spoke, the change is over: that baseline is taken
    # back, no drift (2: a sustained shift as the day ends, and one drift; 3 since the
    # spikes' lower line is read from the week's rate: in one more draw the lower day's
    # run of outliers no longer caps the return to the pattern as that day ends; 5 since
    # a weekly bin's first point no longer counts as a perfect forecast: the weekly
    # profile, whose bins hold the week before, had spoken here by that count alone, and
    # the daily profile, which learned some of the lower day, pages the return to the
    # pattern in two more draws. Each of the 5 pages that return 1 to 5 points after the
    # day, inside the window NAB's rule gives the day; one of them also opens later in the
    # day after, once before and twice now).
    start = 1_700_000_000.0  # a Tuesday, 22:13 UTC
    day, at = DAY_POINTS, 2800
    after = 0
    for seed in range(1, 11):
        values = _trapezoid_days(14, seed)
        values[at : at + day] = 20.0 + (values[at : at + day] - 20.0) * 0.6
        _, events = _run(values.tolist(), start=start)
        onsets = [round((e.ts - start) / STEP) for e in events if e.event == "opened"]
        assert any(at - day <= i <= at + day for i in onsets)  # the day is found
        after += any(at + day < i <= at + 2 * day for i in onsets)
    assert after <= 5


def test_a_level_shift_that_stays_is_one_episode_that_resolves() -> None:
    rng = np.random.default_rng(4)
    values = (50.0 + rng.normal(0.0, 1.0, 4000)).tolist()
    for i in range(2000, 4000):
        values[i] += 15.0
    _, events = _run(values)
    # the 500 points after the shift: one episode, resolved once the new level is learned
    # (later ones would be the ordinary false-alarm budget of noise)
    after = [e for e in events if START + 1999 * STEP <= e.ts < START + 2500 * STEP]
    opened = [e for e in after if e.event == "opened"]
    resolved = [e for e in after if e.event == "resolved"]
    assert len(opened) == 1 and opened[0].ts == START + 2000 * STEP
    assert len(resolved) == 1 and resolved[0].ts - opened[0].ts <= 50 * STEP


@pytest.mark.parametrize(
    ("level", "noise"), [(1e6, 0.1), (-1e6, 0.1), (101325.0, 0.01), (52.52, 1e-5)]
)
def test_a_series_far_from_zero_with_little_noise_is_judged_by_its_noise(
    level: float, noise: float
) -> None:
    # an absolute pressure in Pa, a coordinate in degrees, a value offset by a million:
    # the same noise draws and a shift of ten noise sigmas open the same episodes as they
    # do at 50 +- 0.1 (a sigma floor of a millionth of the level hid the shift)
    draws = np.random.default_rng(2).standard_normal(1728)
    draws[1200:] += 10.0
    near = _opened_after(_run((50.0 + 0.1 * draws).tolist())[1], START)
    far = _opened_after(_run((level + noise * draws).tolist())[1], START)
    assert [e.ts for e in far] == [e.ts for e in near]
    assert START + 1200 * STEP in [e.ts for e in far]


def test_the_ewma_z_detector_is_judged_by_its_noise_far_from_zero() -> None:
    detector = REGISTRY.create("ewma_z", {}, 0)
    noise = np.random.default_rng(3).normal(0.0, 0.01, 500)
    for i, value in enumerate((101325.0 + noise).tolist()):
        detector.update(START + 60.0 * i, value)
    score, expected, _, upper, _ = detector.update(START + 60.0 * 500, 101325.1)
    assert upper - expected < 0.1 and score > 0.999


def test_a_series_flat_for_a_week_that_comes_alive_pages_once() -> None:
    # a rate at exactly 0 for a week (1-minute data) that starts moving: the calibrator
    # saw no surprise for a week; without a restart it paged 40 times in 10 hours
    rng = np.random.default_rng(7)
    ramp = [100.0, 400.0, 1200.0, 3000.0, 5500.0, 12000.0, 20000.0, 26000.0]
    values = [0.0] * 10080 + ramp + (38000.0 + rng.normal(0.0, 3000.0, 600)).tolist()
    _, events = _run(values, step=60.0)
    opened = _opened_after(events, START + 10080 * 60.0)
    assert opened and opened[0].ts == START + 10080 * 60.0
    assert len(opened) <= 2


def _trapezoid_days(days: int, seed: int) -> np.ndarray:
    """Low at night, ramps 06-09 and 17-20 h, a plateau in between; unit noise."""
    hours = (np.arange(days * DAY_POINTS) * STEP % 86400.0) / 3600.0
    rise = np.clip(np.minimum((hours - 6.0) / 3.0, (20.0 - hours) / 3.0), 0.0, 1.0)
    return 20.0 + 60.0 * rise + np.random.default_rng(seed).normal(0.0, 1.0, hours.size)


@pytest.mark.parametrize("jump_points", [5, 12])
def test_the_days_after_a_day_long_anomaly_rarely_page(jump_points: int) -> None:
    # a day without its daily rise (the level stays at night values), then normal days;
    # the jump taken at the anomaly is undone when the series returns, and the fast
    # level then restarts at the value. It used to go back to its level from before
    # the jump (the night before), stale by a hundred points, and the next mornings
    # paged in every one of these series (28 onsets in 12 with jump_points 5). Judged
    # over 12 noise draws, not a few: a false onset in the days after remains possible
    # (the morning ramp the fast level lags; 3 and 4 series of 12 measured, 11 and 9 of
    # 40 with the defaults of 5 and 12), and a seed or two decide nothing.
    config = EngineConfig.from_mapping({"defaults": {"params": {"jump_points": jump_points}}})
    found = paging_after = 0
    for seed in range(1, 13):
        values = _trapezoid_days(14, seed)
        day = 9 * DAY_POINTS
        values[day : day + DAY_POINTS] = 20.0 + np.random.default_rng(seed + 10).normal(
            0.0, 1.0, DAY_POINTS
        )
        _, events = _run(values.tolist(), config=config)
        opened = _opened_after(events, START + 9 * 86400.0)
        found += bool(opened) and opened[0].ts < START + 10 * 86400.0
        paging_after += bool(_opened_after(events, START + 10.5 * 86400.0))
    assert found >= 11  # the missing rise is found
    assert paging_after <= 5


def test_one_extreme_pair_does_not_disable_a_series() -> None:
    rng = np.random.default_rng(5)
    values = [1e308, -1e308, *(20.0 + rng.normal(0.0, 1.0, 2000)).tolist()]
    values[1800] = 45.0
    proc = SeriesProcessor.create("test/entity", "m", EngineConfig.default())
    opened_at = []
    for i, value in enumerate(values):
        point, events = proc.process(START + STEP * i, value)
        for field in (point.score, point.expected, point.lower, point.upper, point.z):
            assert field is None or math.isfinite(field), (i, point)
        opened_at += [i for e in events if e.event == "opened" and e.kind == "value"]
    assert 1800 in opened_at
    assert len(opened_at) <= 3  # the extreme pair itself may open one


finite = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True)
extremes = st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324, 0.0, 1e-300])


def _finite_and_round_trips(values: list[float], step: float, at: int = -1) -> None:
    """Every published field of every point of ``values`` (read every ``step`` s) is
    finite and every score in [0, 1]; the state round-trips after whatever it saw, and
    after point ``at`` too."""
    proc = SeriesProcessor.create("prop/entity", "m", EngineConfig.default())
    for i, value in enumerate(values):
        point, _ = proc.process(START + step * i, value)
        for field in (point.score, point.expected, point.lower, point.upper, point.z):
            assert field is None or math.isfinite(field), (i, value, point)
        if point.score is not None:
            assert 0.0 <= point.score <= 1.0
        if i == at:
            again = SeriesProcessor.from_bytes(proc.to_bytes(), EngineConfig.default())
            assert again.to_bytes() == proc.to_bytes()
    again = SeriesProcessor.from_bytes(proc.to_bytes(), EngineConfig.default())
    assert again.to_bytes() == proc.to_bytes()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(finite, extremes), min_size=1, max_size=120), finite)
def test_finite_input_never_gives_a_non_finite_output(values: list[float], tail: float) -> None:
    _finite_and_round_trips(values + [tail] * 5 + [1.0, 2.0, 3.0] * 15, 60.0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(finite, extremes), min_size=1, max_size=120), finite)
def test_the_long_run_errors_stay_finite_after_any_finite_input(
    values: list[float], tail: float
) -> None:
    # the errors that pick the forecaster and those that judge whose offset the drift may
    # use: a miss of inf (1.8e308 less -1.8e308) learned as it is made the winsorised ones
    # inf, then NaN at the next miss (the wide ones clip each miss at 1e150, and so do
    # they now)
    det = RobustSeasonal.create({}, seed=0)
    for i, value in enumerate([*values, *[tail] * 5, *[1.0, 2.0, 3.0] * 15]):
        det.update(START + 300.0 * i, value)
        errors = (det.sf, det.ss, det.sc, det.swl, det.qf, det.qs, det.qc, det.qw)
        assert all(math.isfinite(e) for e in errors), (i, errors)


intervals = st.one_of(
    st.floats(min_value=1e-3, max_value=1e6), st.sampled_from([1e12, 1e15, 0.25, 60.0])
)


@settings(max_examples=100, deadline=None)
@given(
    st.floats(min_value=-320.0, max_value=307.0),
    st.floats(min_value=0.0, max_value=3.0),
    st.lists(st.one_of(finite, extremes), max_size=20),
)
def test_noise_in_proportion_to_the_level_stays_finite_at_any_magnitude(
    exponent: float, sd: float, after: list[float]
) -> None:
    # positive series of any magnitude (denormals to 1e307) with noise in proportion to
    # the level, long enough for the relative scale to speak and the spikes' rate to be
    # learned, then any values; drawn in logs, and kept under the largest double
    rng = np.random.default_rng(0)
    logs = exponent * math.log(10.0) + np.log1p(0.9 * np.sin(np.arange(400) / 4.0))
    logs += rng.normal(0.0, sd, 400)
    _finite_and_round_trips(np.exp(np.minimum(logs, math.log(1e308))).tolist() + after, 3600.0)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(min_value=-3.0, max_value=300.0),
    st.integers(min_value=1, max_value=60),
    st.lists(st.one_of(finite, extremes), max_size=20),
)
def test_a_count_of_any_magnitude_that_stops_stays_finite_and_round_trips(
    exponent: float, zeros: int, after: list[float]
) -> None:
    # whole numbers of any magnitude with a daily-ish cycle, long enough to be known as
    # counts, then a run of zeros (the run of counts below one), then any values
    rng = np.random.default_rng(0)
    level = 10.0**exponent * (1.2 + np.sin(np.arange(400) / 20.0))
    counts = np.round(level * np.exp(rng.normal(0.0, 0.2, 400))).tolist()
    # ... and the state round-trips inside the run of zeros too
    _finite_and_round_trips(counts + [0.0] * zeros + after, 300.0, at=400 + zeros - 1)


@given(st.lists(st.tuples(intervals, st.one_of(finite, extremes)), min_size=1, max_size=80))
def test_any_intervals_never_give_a_non_finite_output(steps: list[tuple[float, float]]) -> None:
    # gaps of any length (the fast level's sigma grows with the steps missed) with any
    # values, then ordinary data: every output stays finite and the state round-trips
    proc = SeriesProcessor.create("prop/entity", "m", EngineConfig.default())
    ts = START
    tail = [(60.0, 1.0 + (i % 3)) for i in range(40)]
    for dt, value in steps + tail:
        ts += dt
        point, _ = proc.process(ts, value)
        for field in (point.score, point.expected, point.lower, point.upper, point.z):
            assert field is None or math.isfinite(field), (dt, value, point)
    again = SeriesProcessor.from_bytes(proc.to_bytes(), EngineConfig.default())
    assert again.to_bytes() == proc.to_bytes()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.floats(min_value=-1e12, max_value=1e12),
                st.sampled_from([1e-300, 5e-324, -1e10, 0.0, 300.0, 299.7]),
            ),
            st.one_of(finite, extremes),
        ),
        min_size=1,
        max_size=80,
    )
)
def test_the_detector_itself_takes_any_timestamps(steps: list[tuple[float, float]]) -> None:
    # The cleaner passes on only later timestamps, but the detector is a library too:
    # times out of order, repeated or 1e-300 apart must not raise (an interval of -1e10
    # over a step of 1e-300 once overflowed reading how far off the grid a point was)
    det = RobustSeasonal.create({}, seed=0)
    ts = 0.0
    for dt, value in steps + [(300.0, 1.0 + (i % 3)) for i in range(40)]:
        ts += dt
        for field in det.update(ts, value):
            assert math.isfinite(field), (dt, value)


def test_a_gap_of_any_length_leaves_a_series_that_still_pages() -> None:
    rng = np.random.default_rng(2)
    proc = SeriesProcessor.create("test/entity", "m", EngineConfig.default())
    ts = START
    # nearly eight thousand years without data (into the year 9900: a time after 9999 is
    # no time, rejected as bad_timestamp), then none
    for gap in (2.5e11, 0.0):
        for _ in range(500):
            ts += STEP
            proc.process(ts, 50.0 + float(rng.normal(0.0, 1.0)))
        ts += gap
    _, events = proc.process(ts + STEP, 80.0)
    assert [e.event for e in events] == ["opened"]


def test_false_episode_budget_holds_on_anomaly_free_noise() -> None:
    """Gaussian noise at 5-minute steps: the 7-day budget allows about 1 false episode a week."""
    weeks = 6
    opened = 0
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        _, events = _run((100.0 + rng.normal(0.0, 3.0, weeks * 7 * DAY_POINTS)).tolist())
        opened += len(_opened_after(events, START + 7 * 86400))  # after a week of learning
    budget = 3 * (weeks - 1) * 1.0
    assert opened <= 2 * budget


def test_the_budget_sets_the_opening_score_from_the_series_interval() -> None:
    policy = PolicyConfig()
    assert math.isclose(1.0 - policy.open_threshold(300.0), 300.0 / (7 * 86400))
    assert math.isclose(1.0 - policy.open_threshold(1.0), 1.0 / (7 * 86400))
    assert policy.open_threshold(86400.0) < policy.open_threshold(60.0)
    assert PolicyConfig(threshold=0.999).open_threshold(1.0) == 0.999


def _as_version_9(v10: bytes, slots: int) -> bytes:
    """A version 10 state as version 9 wrote it: days as doubles, no third shift mean."""
    after = sum(struct.calcsize("<" + f) for f in (_STATE_V6, _STATE_V7, _STATE_V8, _STATE_V9))
    end = len(v10) - struct.calcsize("<" + _STATE_V10) - after
    begin = end - slots * struct.calcsize("<" + _SLOT)
    old = b"".join(
        struct.pack("<" + _SLOT_V5, *struct.unpack_from("<" + _SLOT, v10, begin + k))
        for k in range(0, end - begin, struct.calcsize("<" + _SLOT))
    )
    return b"\x09" + v10[1:begin] + old + v10[end : -struct.calcsize("<" + _STATE_V10)]


def _as_version_22(v23: bytes) -> bytes:
    """A version 23 state as version 22 wrote it: no time of the last change at the end."""
    return b"\x16" + v23[1 : -struct.calcsize("<" + _STATE_V23)]


def _as_version_21(v22: bytes) -> bytes:
    """A version 22 state (or a version 23 one) as version 21 wrote it: no bursts of
    spikes (nor the time of the last change) at the end."""
    if v22[0] == 23:
        v22 = _as_version_22(v22)
    return b"\x15" + v22[1 : -struct.calcsize("<" + _STATE_V22)]


def _as_version_20(v21: bytes) -> bytes:
    """A version 21 state (or a version 22 one) as version 20 wrote it: no fast level's
    error as it came (nor bursts of spikes) at the end."""
    if v21[0] >= 22:
        v21 = _as_version_21(v21)
    return b"\x14" + v21[1 : -struct.calcsize("<" + _STATE_V21)]


def _as_version_19(v20: bytes) -> bytes:
    """A version 20 state (or a version 21 one) as version 19 wrote it: no winsorised
    long-run errors (nor the fast level's error as it came) at the end."""
    if v20[0] >= 21:
        v20 = _as_version_20(v20)
    return b"\x13" + v20[1 : -struct.calcsize("<" + _STATE_V20)]


def _as_version_18(v19: bytes) -> bytes:
    """A version 19 state (or a version 20 one) as version 18 wrote it: no rate of shifts
    (nor winsorised long-run errors) at the end."""
    if v19[0] >= 20:
        v19 = _as_version_19(v19)
    return b"\x12" + v19[1 : -struct.calcsize("<" + _STATE_V19)]


def _as_version_17(v18: bytes) -> bytes:
    """A version 18 state (or a later one) as version 17 wrote it: no modes (nor rate of
    shifts, nor winsorised long-run errors) at the end."""
    if v18[0] >= 19:
        v18 = _as_version_18(v18)
    return b"\x11" + v18[1 : -struct.calcsize("<" + _STATE_V18)]


def _as_version_16(v17: bytes) -> bytes:
    """A version 17 state (or a later one) as version 16 wrote it: no far tail (nor modes,
    nor rate of shifts) at the end."""
    if v17[0] >= 18:
        v17 = _as_version_17(v17)
    return b"\x10" + v17[1 : -struct.calcsize("<" + _STATE_V17)]


def _as_version_15(v16: bytes) -> bytes:
    """A version 16 state as version 15 wrote it: no baseline from before the shift's
    means spoke at the end."""
    return b"\x0f" + v16[1 : -struct.calcsize("<" + _STATE_V16)]


def _as_version_14(v15: bytes) -> bytes:
    """A version 15 state as version 14 wrote it: no points the drift's baseline learned
    at the end."""
    return b"\x0e" + v15[1 : -struct.calcsize("<" + _STATE_V15)]


def _as_version_13(v14: bytes) -> bytes:
    """A version 14 state as version 13 wrote it: the two profiles in doubles, and at
    the end no daily bins first seen on the first weekend, nor the profiles' start."""
    out, pos = bytearray(b"\x0d" + v14[1 : struct.calcsize(_STATE)]), struct.calcsize(_STATE)
    for _ in range(2):
        (n,) = struct.unpack_from("<I", v14, pos)
        pos, shift = pos + 4, 0
        if n & 1 << 31 and n & 1 << 30:  # float32 scaled by a power of two first
            (shift,) = struct.unpack_from("<h", v14, pos)
            pos += 2
        size, code = (4, "f") if n & 1 << 31 else (8, "d")
        n &= (1 << 30) - 1
        values = [math.ldexp(v, shift) for v in struct.unpack_from(f"<{n}{code}", v14, pos)]
        out += struct.pack(f"<I{n}d", n, *values)
        pos += size * n
    return bytes(out + v14[pos : -struct.calcsize("<" + _STATE_V14)])


def _as_version_12(v13: bytes) -> bytes:
    """A version 13 state as version 12 wrote it: the spikes' mean size and how often one
    follows another as doubles, and no slower rate of spikes at the end."""
    tail = sum(struct.calcsize("<" + f) for f in (_STATE_V10, _STATE_V11, _STATE_V12, _STATE_V13))
    end = len(v13) - tail
    begin = end - struct.calcsize("<" + _STATE_V9_V13)
    spikes = struct.pack("<" + _STATE_V9, *struct.unpack_from("<" + _STATE_V9_V13, v13, begin))
    return b"\x0c" + v13[1:begin] + spikes + v13[end : -struct.calcsize("<" + _STATE_V13)]


def _as_version_11(v12: bytes) -> bytes:
    """A version 12 state as version 11 wrote it: in the head the two rates (not the step
    the seasons started with), the points since the last jump as a u32 and the fast level
    before it (any value: it was never read); the bins on trial and the count of
    remembered outliers as u32; no drift baseline at the end."""
    head = struct.unpack_from(_STATE, v12)
    rates = RobustSeasonal.create({}, seed=0)
    rates._season_rates(head[13])
    out = struct.pack(
        _STATE_V3, 11, *head[1:13], rates.a_sel, rates.a_season, *head[14:27], 0.0, *head[27:]
    )
    pos = struct.calcsize(_STATE)
    for _ in range(2):  # the profiles, as they were
        (n,) = struct.unpack_from("<I", v12, pos)
        pos += 4 + 8 * n
    pos += struct.calcsize("<" + _STATE_V4)
    out += v12[struct.calcsize(_STATE) : pos]
    out += struct.pack("<" + _STATE_V5_V11, *struct.unpack_from("<" + _STATE_V5, v12, pos))
    pos += struct.calcsize("<" + _STATE_V5)
    out += struct.pack("<I", v12[pos])
    return out + v12[pos + 1 : -struct.calcsize("<" + _STATE_V12)]


def _as_version_11_of(det: RobustSeasonal) -> bytes:
    """``det``'s state as version 11 wrote it."""
    return _as_version_11(
        _as_version_12(
            _as_version_13(_as_version_14(_as_version_15(_as_version_16(det.to_bytes()))))
        )
    )


def test_versions_3_to_18_detector_states_still_load() -> None:
    # version 4 appended the bump's two fields, version 5 the remembered outliers,
    # version 6 the first week's deferred miss and bins on notice, version 7 the
    # sustained shift's evidence, version 8 the relative error scale, version 9 the
    # spikes' rate and size, version 10 a third mean of the shift's evidence (and the
    # remembered outliers' days in float32), version 11 the count share and the run of
    # zeros, version 12 a drift's baseline (and a smaller head, see ``_as_version_11``),
    # version 13 a slower rate of spikes (and their size in float32, see
    # ``_as_version_12``), version 14 the profiles in float32 (``_as_version_13``),
    # version 15 the points the drift's baseline learned, version 16 the baseline from
    # before the shift's means spoke, version 17 the far tail, version 18 the modes,
    # version 19 the rate at which the shift's means start speaking, version 20 the
    # long-run errors winsorised at each forecaster's clip, version 21 the fast level's
    # long-run error as it came, for the profiles, version 22 the bursts of spikes (their
    # CUSUM, the rate accepted, the last spike's time), version 23 the time of the last
    # value unlike the one before and the repeats since; a worker upgraded
    # over an older state keeps what its series learned
    det = RobustSeasonal.create({}, seed=0)
    for i in range(400):
        det.update(60.0 * i, 10.0 + (i % 7) * 0.1 + (5.0 if i % 97 == 0 else 0.0))
    assert det.mem  # the outliers are remembered
    assert det.mr > 0.0 and det.m2a != 1.0  # the relative scale has learned
    assert det.kr > 0.0 and det.kk == 1 and det.ks != SPIKE_SIZE0  # and the spike at 388
    assert det.ds == 2 and det.dv != _DRIFT_NULL and det.dl != 0.0  # and a drift's baseline
    assert det.zw < COUNT_SHARE  # and that its values are no counts
    assert det.kl == det.kr > 0.0  # the slower rate learned it too (as fast, this young)
    det.kl = det.kr / 3.0  # as if a week on, when the two differ: the state keeps its own
    det.wm = 1 << 47 | 5  # as if the first weekend had seen bins first: kept too
    assert det.n0 == 20  # the profiles started at the 20th point
    assert det.dn == _DRIFT_RUN  # the baseline is past its running mean ...
    det.dn = 37  # ... as if it had started 37 points ago: kept
    det.dp = 9.5  # as if the shift's means had spoken with a baseline at 9.5: kept
    det.xf, det.xr = 0.0025, True  # as if its far tail were long, and passed just now: kept
    # as if it had moved between two levels, and just now to a third, settling
    det.mc, det.mv, det.mt = (
        [10.0, 15.0, 20.0, math.nan],
        [3.0, 2.0, 0.0, 0.0],
        [90.0, 40.0, 2.0, 0.0],
    )
    det.mi, det.mp, det.ms = 2, 3, 0.25
    det.hr, det.hs = 0.004, True  # as if its shifts came often, and spoke just now: kept
    # the spikes at 97, 194, 291 and 388 were winsorised for the drift's judge
    assert 0.0 < det.qf < det.sf and 0.0 < det.qs < det.ss and 0.0 < det.qc < det.sc
    det.sr = 3.0 * det.sf  # as if gaps had come: its fast level's misses as they came
    assert det.kt == 60.0 * 388  # the last spike's time
    det.kq, det.kb = 2.5, 0.01  # as if a burst had come and another were building: kept
    det.nq = 12.0  # as if the last 12 values had repeated the one before: kept
    v23 = det.to_bytes()
    assert RobustSeasonal.load(v23, {}, seed=0).to_bytes() == v23
    v22 = _as_version_22(v23)
    assert len(v22) == len(v23) - 16
    twentytwo = RobustSeasonal.load(v22, {}, seed=0)
    assert math.isnan(twentytwo.tk) and twentytwo.nq == 0.0  # counted from its next value
    twentytwo.tk, twentytwo.nq = det.tk, det.nq
    assert twentytwo.to_bytes() == v23
    assert _as_version_22(RobustSeasonal.load(v22, {}, seed=0).to_bytes()) == v22
    v21 = _as_version_21(v22)
    assert len(v21) == len(v22) - 24
    twentyone = RobustSeasonal.load(v21, {}, seed=0)
    assert (twentyone.kq, twentyone.kb) == (0.0, 0.0) and math.isnan(twentyone.kt)  # none yet
    twentyone.kq, twentyone.kb, twentyone.kt = det.kq, det.kb, det.kt
    assert _as_version_22(twentyone.to_bytes()) == v22
    assert _as_version_21(RobustSeasonal.load(v21, {}, seed=0).to_bytes()) == v21
    v20 = _as_version_20(v21)
    assert len(v20) == len(v21) - 8
    twenty = RobustSeasonal.load(v20, {}, seed=0)
    assert twenty.sr == det.sf  # the profiles are compared as before: per step
    twenty.sr = det.sr
    assert _as_version_21(twenty.to_bytes()) == v21
    assert _as_version_20(RobustSeasonal.load(v20, {}, seed=0).to_bytes()) == v20
    v19 = _as_version_19(v20)
    assert len(v19) == len(v20) - 32
    nineteen = RobustSeasonal.load(v19, {}, seed=0)
    # the winsorised errors start at the long-run errors, and learn from there
    assert (nineteen.qf, nineteen.qs, nineteen.qc, nineteen.qw) == (
        det.sf,
        det.ss,
        det.sc,
        det.swl,
    )
    nineteen.qf, nineteen.qs, nineteen.qc, nineteen.qw = det.qf, det.qs, det.qc, det.qw
    assert _as_version_20(nineteen.to_bytes()) == v20
    assert _as_version_19(RobustSeasonal.load(v19, {}, seed=0).to_bytes()) == v19
    v18 = _as_version_18(v19)
    assert len(v18) == len(v19) - 9
    eighteen = RobustSeasonal.load(v18, {}, seed=0)
    assert (eighteen.hr, eighteen.hs) == (0.0, False)  # learned again
    eighteen.hr, eighteen.hs = det.hr, det.hs
    assert _as_version_19(eighteen.to_bytes()) == v19
    assert _as_version_18(RobustSeasonal.load(v18, {}, seed=0).to_bytes()) == v18
    v17 = _as_version_17(v18)
    assert len(v17) == len(v18) - struct.calcsize("<" + _STATE_V18)
    seventeen = RobustSeasonal.load(v17, {}, seed=0)
    assert seventeen.mi == -1 and seventeen.mv == [0.0] * 4  # no modes: they are learned
    seventeen.mc, seventeen.mv, seventeen.mt = det.mc, det.mv, det.mt
    seventeen.mi, seventeen.mp, seventeen.ms = det.mi, det.mp, det.ms
    assert _as_version_18(seventeen.to_bytes()) == v18
    assert RobustSeasonal.load(v17, {}, seed=0).xf == 0.0025
    at = len(v18) - struct.calcsize("<bBd")  # the level the series is at: one of the four
    with pytest.raises(ValueError, match="damaged"):
        RobustSeasonal.load(v18[:at] + b"\x04" + v18[at + 1 :], {}, seed=0)
    assert _as_version_17(RobustSeasonal.load(v17, {}, seed=0).to_bytes()) == v17
    v16 = _as_version_16(v17)
    assert len(v16) == len(v17) - 9
    sixteen = RobustSeasonal.load(v16, {}, seed=0)
    assert (sixteen.xf, sixteen.xr) == (FAR_P, False)  # the calibrator's own line to start
    sixteen.xf, sixteen.xr = det.xf, det.xr
    assert _as_version_17(sixteen.to_bytes()) == v17
    assert RobustSeasonal.load(v16, {}, seed=0).dp == 9.5
    assert _as_version_16(RobustSeasonal.load(v16, {}, seed=0).to_bytes()) == v16
    v15 = _as_version_15(v16)
    assert len(v15) == len(v16) - 8
    fifteen = RobustSeasonal.load(v15, {}, seed=0)
    assert math.isnan(fifteen.dp)  # none known: a drift is judged as it was
    fifteen.dp = det.dp
    assert _as_version_16(fifteen.to_bytes()) == v16
    assert RobustSeasonal.load(v15, {}, seed=0).dn == 37
    waiting = RobustSeasonal.load(v15, {}, seed=0)
    waiting.ds, waiting.dn = 0, _DRIFT_RUN + DRIFT_RECENT  # a baseline waiting: kept too
    assert RobustSeasonal.load(waiting.to_bytes(), {}, seed=0).dn == _DRIFT_RUN + DRIFT_RECENT
    v14 = _as_version_14(v15)
    assert len(v14) == len(v15) - 1
    fourteen = RobustSeasonal.load(v14, {}, seed=0)
    assert fourteen.dn == _DRIFT_RUN  # a live baseline goes on learning slowly
    fourteen.dn = det.dn
    assert _as_version_15(_as_version_16(fourteen.to_bytes())) == v15
    assert RobustSeasonal.load(v14, {}, seed=0).kl == det.kl
    assert (RobustSeasonal.load(v14, {}, seed=0).wm, RobustSeasonal.load(v14, {}, seed=0).n0) == (
        det.wm,
        20,
    )
    v13 = _as_version_13(v14)
    # the daily profile was in doubles already; version 14 added the first weekend's bins
    # and the point the profiles started at
    assert len(v13) == len(v14) + 4 * len(det.week or ()) - struct.calcsize("<QI")
    thirteen = RobustSeasonal.load(v13, {}, seed=0)
    assert (thirteen.wm, thirteen.n0) == (0, 0)  # none on notice; the profiles long mature
    thirteen.wm, thirteen.n0 = det.wm, det.n0
    # the same bins (NaN where not yet seen)
    assert _as_version_14(_as_version_15(_as_version_16(thirteen.to_bytes()))) == v14
    v12 = _as_version_12(v13)
    assert len(v12) == len(v13)  # the size's and the follow-up's 8 B made the slower rate's
    twelve = RobustSeasonal.load(v12, {}, seed=0)
    assert twelve.kl == twelve.kr == det.kr  # the day's rate is the best there is
    assert (twelve.ks, twelve.kc, twelve.dl, twelve.mem) == (det.ks, det.kc, det.dl, det.mem)
    assert (
        _as_version_12(
            _as_version_13(_as_version_14(_as_version_15(_as_version_16(twelve.to_bytes()))))
        )
        == v12
    )
    v11 = _as_version_11(v12)
    assert len(v11) == len(v12)  # the head and the counts made the drift's 25 B
    eleven = RobustSeasonal.load(v11, {}, seed=0)
    assert (eleven.ds, eleven.dm, eleven.dv) == (0, 0.0, 1.0)  # the baseline starts again
    assert (eleven.pre, eleven.mem, eleven.zw, eleven.sml) == (det.pre, det.mem, det.zw, det.sml)
    # the rates as they were (the step found again from them may be another that gives them)
    assert (eleven.a_sel, eleven.a_season) == (det.a_sel, det.a_season)
    assert _as_version_11_of(eleven) == v11
    v11_tail = struct.calcsize("<" + _STATE_V11)
    v10 = b"\x0a" + v11[1:-v11_tail]
    ten = RobustSeasonal.load(v10, {}, seed=0)
    assert (ten.zw, ten.zk) == (0.0, 0)  # no count series until its values say so
    assert (ten.mem, ten.kr, ten.sml) == (det.mem, det.kr, det.sml)
    assert _as_version_11_of(ten)[1:-v11_tail] == v10[1:]
    v9 = _as_version_9(v10, len(det.mem) // 4)
    nine = RobustSeasonal.load(v9, {}, seed=0)
    assert (nine.sml, nine.svl) == (0.0, _LONG_NULL)  # the third mean starts again
    assert (nine.dm, nine.dv, nine.ds) == (0.0, 1.0, 0)  # no drift's baseline yet
    assert (nine.mem, nine.kr, nine.sm) == (det.mem, det.kr, det.sm)
    assert _as_version_11_of(nine)[1 : -16 - v11_tail] == v10[1:-16]
    v8 = b"\x08" + v9[1 : -struct.calcsize("<" + _STATE_V9)]
    eight = RobustSeasonal.load(v8, {}, seed=0)
    assert (eight.kr, eight.ks, eight.kk, eight.kp) == (0.0, SPIKE_SIZE0, 0, 0)
    assert eight.kc == SPIKE_GO_ON0 and det.kc < SPIKE_GO_ON0  # the spike came alone
    assert (eight.mr, eight.m2a, eight.mem) == (det.mr, det.m2a, det.mem)
    det = eight  # below, the version 8 state stands for the newer ones
    v7 = b"\x07" + v8[1 : -struct.calcsize("<" + _STATE_V8)]
    seven = RobustSeasonal.load(v7, {}, seed=0)
    assert (seven.mr, seven.m2a, seven.m2r, seven.mem) == (0.0, 1.0, 1.0, det.mem)
    assert seven.sm == det.sm  # the shift's evidence is kept
    v6 = b"\x06" + v7[1 : -struct.calcsize("<" + _STATE_V7)]
    six = RobustSeasonal.load(v6, {}, seed=0)
    assert (six.sm, six.mem) == (0.0, det.mem)  # the shift's evidence starts again
    det = six  # below, every older state is compared with the version 6 one
    v5 = b"\x05" + v6[1 : -struct.calcsize("<" + _STATE_V6)]
    tail = (
        struct.calcsize("<" + _STATE_V5) + 4 + struct.calcsize("<" + _SLOT_V5) * (len(det.mem) // 4)
    )
    v4 = b"\x04" + v5[1:-tail]
    v3 = b"\x03" + v5[1 : -tail - struct.calcsize("<di")]
    older = RobustSeasonal.load(v5, {}, seed=0)
    assert (older.scd, older.rm, older.mem) == (0.0, 0, det.mem)
    for blob in (v4, v3):
        old = RobustSeasonal.load(blob, {}, seed=0)
        assert old.mem == [] and old.tol == -1.0  # the step is learned again at an outlier
        assert old.stp == 0.0 and math.isnan(old.tp)  # no gap is judged at the next point
        assert old.update(60.0 * 300, 10.3) == det.update(60.0 * 300, 10.3)
        det = RobustSeasonal.load(v6, {}, seed=0)
    assert older.update(60.0 * 300, 10.3) == det.update(60.0 * 300, 10.3)
    assert (RobustSeasonal.load(v3, {}, seed=0).rl, RobustSeasonal.load(v3, {}, seed=0).rk) == (
        0.0,
        0,
    )
    with pytest.raises(ValueError, match="older layout"):
        RobustSeasonal.load(b"\x02" + v6[1:], {}, seed=0)


def test_a_state_from_before_the_v3_detector_restarts_the_series() -> None:
    w = Writer()
    w.blob(b"TSG1")
    w.text("old/entity")
    w.text("m")
    w.text("robust_seasonal")
    proc = SeriesProcessor.from_bytes(w.getvalue() + b"\x00" * 64, EngineConfig.default())
    assert (proc.entity, proc.metric, proc.cleaner.n) == ("old/entity", "m", 0)


def test_detector_parameters_are_checked_in_defaults_and_where_rules_inherit_them() -> None:
    with pytest.raises(ValueError, match=r"defaults: .*unknown parameters"):
        EngineConfig.from_mapping({"defaults": {"params": {"short_weight": 1}}})
    # a rule that switches detector inherits the defaults' parameters: they must fit it
    with pytest.raises(ValueError, match=r"rules\[0\]"):
        EngineConfig.from_mapping(
            {
                "defaults": {"params": {"season_margin": 0.8}},
                "rules": [{"pattern": "x/*", "detector": "ewma_z"}],
            }
        )
    assert EngineConfig.from_mapping({"defaults": {"params": {"season_margin": 0.8}}})


def test_the_far_tail_and_old_spikes_start_when_the_default_budget_starts_to_grow() -> None:
    # a detector is built from its own parameters and never sees the policy's, so the
    # two weeks after which its far tail and its spike rule for old series apply are its
    # own constants: they must move with PolicyConfig's defaults for the budget's growth
    policy = PolicyConfig()
    assert policy.budget_growth_points == robust_seasonal.FAR_AFTER_POINTS
    assert policy.budget_growth_days == robust_seasonal.FAR_AFTER_DAYS


@pytest.mark.parametrize("glitch", [1e149, -1e149, 1e6])
def test_a_constant_series_that_once_read_an_absurd_value_alarms_again_after_a_week(
    glitch: float,
) -> None:
    """A repeated value never unlearns an error scale, so a series of 42s that once read
    1e149 judged every later value within +-1.5e145 for good: a move to 92 thirty days
    later opened nothing (review rev65b). A week and more of one repeated value after
    the scales learned from others makes them stale: the model starts again, and the
    move opens an episode; a move before that week is still judged by the old scales."""
    values = [42.0] * 3000 + [glitch] + [42.0] * 2100 + [92.0] * 5
    _, events = _run(values)
    opened = [e for e in events if e.event == "opened"]
    assert [round((e.started_at - START) / STEP) for e in opened] == [3000, 5101]
    # the same series whose values change each day (a rare count) keeps its model
    daily = [0.0 if i % 288 else 5.0 for i in range(6000)]
    _, events = _run(daily)
    assert not [e for e in events if e.event == "opened" and e.started_at > START + STEP * 600]
