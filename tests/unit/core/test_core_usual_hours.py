"""The hours and weekdays a series usually reports in, by which its silence is judged,
forget what it has not done for one to two weeks of its own time."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from stream_app.core import EngineConfig, SeriesProcessor
from stream_app.core.cleaning import SeriesCleaner
from stream_app.core.config import CleaningConfig, Limits

MONDAY = 1_767_571_200.0  # 2026-01-05T00:00:00Z
DAY = 86_400.0
HOUR = 3600.0
STEP = 300.0  # five-minute readings; silence after 10 of them (50 minutes)


def shift(days: Iterable[int], start_h: float, hours: float = 8.0) -> list[float]:
    """The times of five-minute readings from ``start_h`` for ``hours`` on each day
    (days after ``MONDAY``); a night shift runs past midnight into the next day."""
    per_day = int(hours * HOUR / STEP)
    return [MONDAY + d * DAY + start_h * HOUR + STEP * k for d in days for k in range(per_day)]


def feed(cleaner: SeriesCleaner, times: Iterable[float]) -> float:
    for i, ts in enumerate(times):
        assert cleaner.check(ts, float(i % 7)) == "ok"
    return cleaner.last_ts


def silent_at(cleaner: SeriesCleaner, day: int, hour: float) -> bool:
    """Whether the series, quiet since its last reading, is judged silent at ``hour``
    on ``day`` (the worker's judgement: ``SeriesProcessor.advance``)."""
    return cleaner.silent_for(MONDAY + day * DAY + hour * HOUR) > 0.0


def test_a_series_moved_from_the_day_shift_to_nights_is_not_expected_at_its_old_hours() -> None:
    cleaner = SeriesCleaner(CleaningConfig(), Limits())
    feed(cleaner, shift(range(21), 9.0))  # three weeks, every day 09:00-17:00
    feed(cleaner, shift([21], 21.0))  # its first night, 21:00-05:00
    assert silent_at(cleaner, 22, 12.0)  # the next noon: still expected at its old hours
    feed(cleaner, shift(range(22, 42), 21.0))  # three weeks of nights in all
    assert cleaner.last_ts == MONDAY + 42 * DAY + 5 * HOUR - STEP
    # its day hours were last seen 22 days ago: quiet through them is no silence (it
    # paged at 09:50 every day for good before)
    assert not silent_at(cleaner, 42, 12.0)
    assert not silent_at(cleaner, 42, 20.9)
    assert silent_at(cleaner, 42, 22.0)  # ... but it is, an hour into its night shift


def test_a_weekday_skipped_for_one_week_is_still_expected() -> None:
    """Monday to Friday 09:00-17:00; no Wednesday in the third week (a holiday). A week
    without it is not enough to forget it: that Wednesday is still expected (quiet
    through it is a silence), and once it reports on Wednesdays again, so is the next."""
    weekdays = [d for d in range(35) if d % 7 < 5]
    cleaner = SeriesCleaner(CleaningConfig(), Limits())
    feed(cleaner, shift([d for d in weekdays if d < 16], 9.0))  # to Tuesday of week 3
    assert silent_at(cleaner, 16, 10.0)  # the Wednesday it skips
    assert not silent_at(cleaner, 16, 8.5)  # (before its hours: none of them)
    feed(cleaner, shift([d for d in weekdays if 17 <= d < 30], 9.0))  # Thu .. Tue of week 5
    assert silent_at(cleaner, 30, 10.0)  # Wednesday of week 5
    feed(cleaner, shift([d for d in weekdays if 30 <= d < 35], 9.0))
    assert not silent_at(cleaner, 33, 23.0)  # a Saturday: never seen
    for day in range(35, 40):  # each weekday of the next week, quiet since Friday
        assert silent_at(cleaner, day, 10.0)


def test_a_weekday_no_longer_reported_on_stops_being_expected_in_two_weeks() -> None:
    """Monday to Friday, then Monday to Thursday: a Friday is expected a week after the
    last one (that one missed is a silence) and not two weeks after it."""
    cleaner = SeriesCleaner(CleaningConfig(), Limits())
    feed(cleaner, shift([d for d in range(21) if d % 7 < 5], 9.0))  # three weeks
    feed(cleaner, shift(range(21, 25), 9.0))  # Monday to Thursday
    assert silent_at(cleaner, 25, 10.0)  # Friday, a week after the last one
    feed(cleaner, shift([d for d in range(25, 32) if d % 7 < 4], 9.0))
    assert not silent_at(cleaner, 32, 10.0)  # Friday, two weeks after the last one
    assert not silent_at(cleaner, 34, 10.0)  # (nor the weekend)
    assert silent_at(cleaner, 35, 10.0)  # Monday still is


def test_a_state_saved_before_the_generations_loads_and_forgets_its_old_hours() -> None:
    """A state of the release before (its hours in one mask, ORed for good: the same
    bytes but for the generations at the end) loads with those hours as the current
    generation, begun at its last reading: still expected right after, forgotten once it
    has reported at other hours for two weeks."""
    proc = SeriesProcessor.create("press-4", "load", EngineConfig.default())
    for i, ts in enumerate(shift(range(21), 9.0)):  # three weeks of day shifts
        proc.process(ts, 50.0 + i % 7)
    blob = proc.to_bytes()
    old = blob[: -struct.calcsize("<QBd")]
    loaded = SeriesProcessor.from_bytes(old)
    cleaner = loaded.cleaner
    day_hours = sum(1 << b for b in range(18, 34))  # the half hours 09:00-17:00
    assert (cleaner.live_tod, cleaner.live_dow, cleaner.prev_tod, cleaner.prev_dow) == (
        day_hours,
        0x7F,
        0,
        0,
    )
    assert cleaner.live_since == cleaner.last_ts == MONDAY + 20 * DAY + 17 * HOUR - STEP
    assert loaded.to_bytes() == old + struct.pack("<QBd", 0, 0, cleaner.last_ts)
    nights = shift(range(21, 42), 21.0)
    for i, ts in enumerate(nights[:96]):  # its first night on the night shift
        loaded.process(ts, 50.0 + i % 7)
    assert silent_at(cleaner, 22, 12.0)  # the day hours it had are still expected
    for i, ts in enumerate(nights[96:]):  # three weeks of nights in all
        loaded.process(ts, 50.0 + i % 7)
    assert loaded.advance(MONDAY + 42 * DAY + 12 * HOUR) == []
    (opened,) = loaded.advance(MONDAY + 42 * DAY + 22 * HOUR)
    assert (opened.kind, opened.event) == ("silence", "opened")
