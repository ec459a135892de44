"""Per-series input cleaning: validity, limits, ordering, sampling interval,
silence and stuck values.

Two intervals are learned: the typical one (``step``, a running median, which
silence and the detector's clock go by) and the *pace* (``pace``, the mean
interval while the series is live), which the false-alarm budget goes by: the
budget is a number of false episodes per unit of time, so a series read at
irregular times (events, a sensor that reports on change) is allowed a point's
share of it by how many points a week it actually has, not by its median
interval, which for such a series is several times shorter than the mean. Each
interval counts at most ``_PACE_CLIP`` typical ones, so an outage, a night or a
weekend without readings does not count as time: a market-hours series keeps
the pace of its trading minutes.

The cleaner accepts or rejects each point with a reason; the processor turns
silence and stuck runs into episodes. Points that are out of order but within
``allowed_lateness_s`` are accepted and scored on arrival (never reordered, so
no output is delayed); they do not move the series clock or the learned
interval.

A time before the year 1 or after the year 9999 is ``bad_timestamp``: no calendar
holds it, and from about 1e16 s on a float no longer tells one second from the next.
A value beyond +-``VALUE_MAX`` is ``out_of_limits`` whatever the configured limits: the
stream's schema refuses it (the squares that means keep overflow a double beyond it), and
the detectors clipped at 1e300, so a series living there was scored 0 for ever.

>>> c = SeriesCleaner(CleaningConfig(allowed_lateness_s=5.0), Limits(upper=100.0))
>>> [c.check(t, v) for t, v in [(0.0, 1.0), (1.0, None), (1.0, 2.0), (1.0, 3.0),
...                              (-9.0, 1.0), (2.0, 500.0), (0.5, 1.0), (1e17, 1.0)]]
['ok', 'missing', 'ok', 'duplicate', 'late', 'out_of_limits', 'ok', 'bad_timestamp']
>>> c = SeriesCleaner(CleaningConfig(), Limits(lower=-1e150))
>>> [c.check(t, v) for t, v in [(0.0, 1e150), (1.0, -2e150), (2.0, 4e301), (3.0, 1.0)]]
['ok', 'out_of_limits', 'out_of_limits', 'ok']
"""

from __future__ import annotations

import math

from .codec import Reader, Writer
from .config import CleaningConfig, Limits, parse_schedule

_RING = 8
# the times a point may carry: 0001-01-01 to 9999-12-31 UTC (the wire's MAX_EPOCH)
TS_MIN = -62_135_596_800.0
TS_MAX = 253_402_300_800.0  # exclusive
# the values a point may carry (the wire's MAX_VALUE), configured limits or not
VALUE_MAX = 1e150
DAY = 86400.0
WEEK = 7 * DAY
BIN = 1800.0  # activity is learned per half hour of the (UTC) day
_ALL_BINS = (1 << int(DAY / BIN)) - 1
_LIVE_GAP = 2.0  # consecutive points at most this many intervals apart: the series was live
_MAX_SCAN = 2 * WEEK  # a gap longer than this is silence whatever the pattern
_STEP_GAIN = 1.05  # multiplicative step of the online median of the interval
_PACE_CLIP = 10.0  # an interval counts for the pace as at most this many typical ones
_PACE_ALPHA = 0.005  # weight of one interval in the pace (a mean over about 200)
# How long a run of identical values may last before it counts as stuck: the longer of
# two limits. (1) What the runs the series ended allow, by their number (fading with a
# half-life of _RUN_HALF_LIFE points, or of a week of the series' points where that is
# longer: a night's run at 1-minute steps is measured against last week's nights) and
# their total length (the points before this run, fading alike). A run's length is taken
# as exponential with a mean known only from those runs (a gamma posterior of the rate),
# so the chance that a new run lasts L points or more is (1 + L / total) ** -count (a
# Lomax law), and the run is stuck where that falls to stuck_probability. With few runs
# behind it that law has a heavy tail: a counter at zero but for a blip every few hours,
# or a status at 1 but for a rare 0, is not stuck for staying at its usual value (a
# repeat rate over 100 points, the rule before, allowed at most about 1,100 points, and
# (2) alone was passed one time in three after one run). Count is at most _RUN_COUNT_MAX
# runs (the total scaled with it): the runs of quantised and flickering sensors are not
# exponential. (2) _LONG_RUN_FACTOR times the longest run the series recently ended
# (fading alike): runs whose length depends on the time of day (a low count's zeros at
# night, a schedule's flat hours) are not exponential either, and a night's run is long
# among a day's short ones. A run that was stuck counts as its limit: a flat line does not
# teach the next one to be normal. Before any run ended nothing is stuck (a constant
# series is its own normal); a noisy sensor that freezes is stuck after stuck_min_points.
# A schedule stuck at the wrong level is a value anomaly, which the daily profile sees.
_RUN_HALF_LIFE = 2016.0
_RUN_DECAY: float = 0.5 ** (1.0 / _RUN_HALF_LIFE)
_RUN_WEEK_STEP = WEEK / _RUN_HALF_LIFE  # 300 s: at longer steps the half-life is in points
_RUN_COUNT_MAX = 20.0
_LONG_RUN_FACTOR = 2.0
_NEVER = 1 << 30  # a stuck limit no run reaches
# One object each for every cleaner's unset limits and empty state: a point reads its
# series' limits first, and thousands of series sharing two floats keep them in cache.
_NEG_INF = -math.inf
_NAN = math.nan
_isfinite = math.isfinite


def run_fade(step: float) -> float:
    """How much the memory of runs fades per point at this typical interval: a half-life
    of ``_RUN_HALF_LIFE`` points or of a week, whichever is longer."""
    if step >= _RUN_WEEK_STEP or step <= 0.0:
        return _RUN_DECAY
    fade: float = 0.5 ** (step / WEEK)
    return fade


def next_step(step: float, dt: float) -> float:
    """The online median of a series' interval after one more interval ``dt``.

    It moves by at most ``_STEP_GAIN`` per interval; ``0`` means none seen yet, and
    an interval that is not positive (or not a number) leaves it as it is.
    """
    if step <= 0.0:
        return dt if dt > 0.0 else step
    if dt > step:
        return step * _STEP_GAIN if dt > step * _STEP_GAIN else dt
    if dt < step:
        return step / _STEP_GAIN if dt < step / _STEP_GAIN else dt
    return step


class SeriesCleaner:
    """Validates points of one series and learns its sampling interval."""

    __slots__ = (
        "fade",
        "first_ts",
        "last_ts",
        "last_value",
        "lateness",
        "limit",
        "live_dow",
        "live_since",
        "live_tod",
        "live_until",
        "long_run",
        "lower",
        "n",
        "pace",
        "prev_dow",
        "prev_tod",
        "recent",
        "run",
        "run_count",
        "run_start",
        "schedule",
        "silence_intervals",
        "step",
        "stuck_min",
        "stuck_p",
        "upper",
    )

    def __init__(self, cleaning: CleaningConfig, limits: Limits) -> None:
        self.lateness = cleaning.allowed_lateness_s
        self.silence_intervals = cleaning.silence_intervals
        self.stuck_min = cleaning.stuck_min_points
        self.stuck_p = cleaning.stuck_probability
        lower, upper = limits.lower, limits.upper
        self.lower = -VALUE_MAX if lower is None or lower < -VALUE_MAX else lower
        self.upper = VALUE_MAX if upper is None or upper > VALUE_MAX else upper
        self.last_ts = _NEG_INF
        self.last_value = _NAN
        self.step = 0.0  # typical interval (online median, 0 = unknown)
        self.fade = _RUN_DECAY  # run_fade(step): derived, not state
        self.pace = 0.0  # mean interval while live, for the budget (0 = unknown)
        self.n = 0  # accepted points
        self.run = 0  # length of the current run of identical values
        self.run_start = 0.0
        self.limit = 0  # stuck run length of the current run (set when it reaches stuck_min)
        self.run_count = 0.0  # runs ended (fading), see _RUN_HALF_LIFE
        self.long_run = 0.0  # longest recent completed run (fading), see _LONG_RUN_FACTOR
        self.recent: list[float] = []  # the last _RING accepted times: a resend is duplicates
        self.schedule = parse_schedule(cleaning.schedule)
        self.first_ts = _NAN
        # when it reports, in two generations (see _new_generation): the half hours of
        # the day and the weekdays (Monday = 0) it has been live in since live_since, and
        # those of the generation before
        self.live_tod = 0
        self.live_dow = 0
        self.live_since = _NEG_INF  # event time at which the current generation began
        self.prev_tod = 0
        self.prev_dow = 0
        self.live_until = _NEG_INF  # end of the newest half hour already marked

    def check(self, ts: float, value: float | None) -> str:
        """``"ok"`` and learn, or the rejection reason (state unchanged)."""
        if value is None:
            return "missing"
        try:
            if not (_isfinite(value) and _isfinite(ts)):
                return "non_finite"
        except (TypeError, OverflowError):  # not a number, or an int beyond any float
            return "non_finite"
        if ts < TS_MIN or ts >= TS_MAX:
            return "bad_timestamp"
        if value < self.lower or value > self.upper:
            return "out_of_limits"
        last = self.last_ts
        if ts > last:
            if self.n:
                dt = ts - last
                before = self.step
                step = self.step = next_step(before, dt)
                if step != before:
                    self.fade = run_fade(step)
                counted = dt if dt < _PACE_CLIP * step else _PACE_CLIP * step
                pace = self.pace
                self.pace = counted if pace <= 0.0 else pace + _PACE_ALPHA * (counted - pace)
                if ts >= self.live_since + WEEK:
                    self._new_generation(ts)
                if ts > self.live_until and dt <= _LIVE_GAP * step:
                    self._mark_live(last, ts)
            else:
                self.first_ts = self.live_since = ts
            self.last_ts = ts
        elif ts == last or ts in self.recent:
            return "duplicate"
        elif last - ts > self.lateness:
            return "late"
        # the last _RING times taken, late or not: a batch sent again (a client's retry,
        # a broker's resend) is duplicates, not late points to dead-letter
        recent = self.recent
        recent.append(ts)
        if len(recent) > _RING:
            del recent[0]
        self.n += 1
        if value == self.last_value:
            run = self.run = self.run + 1
            if run == self.stuck_min:
                self.limit = self.stuck_limit()
        else:
            run = self.run
            if run == 1:
                fade = self.fade
                self.run_count = self.run_count * fade + 1.0
                self.long_run *= fade
            elif run:
                fade = self.fade**run
                stuck_at = self.limit
                # a stuck run teaches no more than its limit
                taught = run if run < self.stuck_min or run < stuck_at else stuck_at
                self.run_count = self.run_count * fade + 1.0
                faded = self.long_run * fade
                self.long_run = faded if faded > taught else float(taught)
            self.run = 1
            self.run_start = ts
            self.last_value = value
        return "ok"

    def stuck_limit(self) -> int:
        """Run length at which identical values count as stuck (see ``_RUN_HALF_LIFE``)."""
        count = self.run_count
        if count <= 0.0:
            return _NEVER  # no run has ended: nothing to compare with
        total = self._run_total()
        if count > _RUN_COUNT_MAX:
            total *= _RUN_COUNT_MAX / count
            count = _RUN_COUNT_MAX
        exponent = -math.log(self.stuck_p) / count
        if exponent > 40.0:
            return _NEVER
        limit = total * math.expm1(exponent)
        longest = _LONG_RUN_FACTOR * self.long_run
        if limit < longest:
            limit = longest
        if limit >= _NEVER:
            return _NEVER
        return max(self.stuck_min, math.ceil(limit))

    def _run_total(self) -> float:
        """The points before the current run, fading like the count of runs."""
        fade = self.fade
        before: int = self.n - self.run
        return -math.expm1(before * math.log(fade)) / (1.0 - fade)

    def mean_run(self) -> float:
        """The mean length of the runs the series ended lately (0 before any)."""
        return self._run_total() / self.run_count if self.run_count > 0.0 else 0.0

    def silent_for(self, watermark_ts: float) -> float:
        """Seconds since the last point when that exceeds the silence limit, else 0.

        Only time in which the series is expected to be live counts: inside the
        configured schedule, or else in the half hours and weekdays in which it
        has been live lately (once it has a day of history; before a week, an
        unseen weekday is expected live only for a series live around the clock).
        Lately is the current generation and the one before (``_new_generation``): a
        half hour or weekday it has not been live in for one to two weeks of its own
        readings is no longer expected.
        """
        if self.step <= 0.0 or self.n < 2:
            return 0.0
        gap = watermark_ts - self.last_ts
        need = self.silence_intervals * self.step
        if gap <= need:
            return 0.0
        if self.schedule is None and self.last_ts - self.first_ts < DAY:
            return gap  # no pattern to judge by yet
        return gap if self._expected_time(self.last_ts, watermark_ts, need) > need else 0.0

    def _new_generation(self, ts: float) -> None:
        """A reading a week or more after the current generation began starts the next
        (by the series' own time, as the sources' in migration 011 by the worker's): the
        half hours and weekdays live in so far become the generation before, or go too
        when it began two weeks or more before. So one not live in for one to two weeks
        is forgotten (a machine moved to the night shift is not expected at its day
        hours for good), one week without it is not enough (a Wednesday's holiday), and
        a series that reports every week keeps every hour and weekday it reports in."""
        if ts < self.live_since + 2.0 * WEEK:
            self.prev_tod, self.prev_dow = self.live_tod, self.live_dow
        else:
            self.prev_tod = self.prev_dow = 0
        self.live_tod = self.live_dow = 0
        self.live_since = ts

    def _mark_live(self, start: float, end: float) -> None:
        t = start
        if end - start >= WEEK:
            # every half hour of every weekday lies in between: set them at once (a
            # loop over half hours took minutes for readings decades apart)
            self.live_tod = _ALL_BINS
            self.live_dow = 0x7F
            t = (math.floor(end / BIN) + 1) * BIN
        while t <= end:
            day = math.floor(t / DAY)
            b = int((t - day * DAY) / BIN)
            self.live_tod |= 1 << b
            self.live_dow |= 1 << (day + 3) % 7  # 1970-01-01 was a Thursday
            t = day * DAY + (b + 1) * BIN
        self.live_until = t

    def _expected_time(self, start: float, end: float, need: float) -> float:
        """Seconds of ``(start, end]`` in which data was expected (stops once past ``need``)."""
        if end - start > _MAX_SCAN:
            return end - start
        sched = self.schedule
        tod, dow = self.live_tod | self.prev_tod, self.live_dow | self.prev_dow
        # an unseen weekday is expected only of a young series live around the clock
        unseen_day_live = tod == _ALL_BINS and self.last_ts - self.first_ts < WEEK
        total = 0.0
        t = start
        while t < end and total <= need:
            day = math.floor(t / DAY)
            midnight = day * DAY
            b = int((t - midnight) / BIN)
            nxt = min(midnight + (b + 1) * BIN, end)
            weekday = (day + 3) % 7
            if sched is not None:
                days, open_s, close_s = sched
                if days >> weekday & 1:
                    lo, hi = max(t, midnight + open_s), min(nxt, midnight + close_s)
                    total += max(0.0, hi - lo)
            elif tod >> b & 1 and (dow >> weekday & 1 or unseen_day_live):
                total += nxt - t
            t = nxt
        return total

    def write(self, w: Writer) -> None:
        w.raw(
            "dddIIddI",
            self.last_ts,
            self.last_value,
            self.step,
            self.n,
            self.run,
            self.run_count,
            self.run_start,
            self.limit,
        )
        w.floats(self.recent)

    def read(self, r: Reader) -> None:
        last_ts, last_value, step, n, run, count, run_start, limit = r.raw("dddIIddI")
        self.limit = int(limit)
        self.run_start = float(run_start)
        self.last_ts, self.last_value, self.step = float(last_ts), float(last_value), float(step)
        self.fade = run_fade(self.step)
        self.pace = self.step  # kept after the rest (read_pace); older states: the step
        self.n, self.run, self.run_count = int(n), int(run), float(count)
        self.recent = r.floats()

    def write_activity(self, w: Writer) -> None:
        """The learned activity pattern (kept after the rest of the state, see the processor)."""
        w.raw("dQBd", self.first_ts, self.live_tod, self.live_dow, self.live_until)

    def write_long_run(self, w: Writer) -> None:
        w.raw("d", self.long_run)

    def read_long_run(self, r: Reader) -> None:
        (long_run,) = r.raw("d")
        self.long_run = float(long_run)

    def write_pace(self, w: Writer) -> None:
        w.raw("d", self.pace)

    def read_pace(self, r: Reader) -> None:
        (pace,) = r.raw("d")
        self.pace = float(pace)

    def read_activity(self, r: Reader) -> None:
        first_ts, tod, dow, until = r.raw("dQBd")
        self.first_ts, self.live_until = float(first_ts), float(until)
        self.live_tod, self.live_dow = int(tod), int(dow)
        # what a state saved before the generations (read_generations) holds: its
        # series' hours since its first reading, taken as seen at its last one. Not
        # since first_ts: a series older than two weeks would lose them all at its next
        # reading, before it could learn them again (a week of silences not judged);
        # this way, an hour it still reports in is seen again within the week, and one
        # it no longer does is forgotten one to two weeks on, as one seen at the upgrade
        self.live_since = self.last_ts

    def write_generations(self, w: Writer) -> None:
        """The generation before and when the current one began (see _new_generation)."""
        w.raw("QBd", self.prev_tod, self.prev_dow, self.live_since)

    def read_generations(self, r: Reader) -> None:
        tod, dow, since = r.raw("QBd")
        self.prev_tod, self.prev_dow, self.live_since = int(tod), int(dow), float(since)
