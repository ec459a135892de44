"""Per-series input cleaning: validity, limits, ordering, sampling interval,
silence and stuck values.

The cleaner accepts or rejects each point with a reason; the processor turns
silence and stuck runs into episodes. Points that are out of order but within
``allowed_lateness_s`` are accepted and scored on arrival (never reordered, so
no output is delayed); they do not move the series clock or the learned
interval.

>>> c = SeriesCleaner(CleaningConfig(allowed_lateness_s=5.0), Limits(upper=100.0))
>>> [c.check(t, v) for t, v in [(0.0, 1.0), (1.0, None), (1.0, 2.0), (1.0, 3.0),
...                              (-9.0, 1.0), (2.0, 500.0), (0.5, 1.0)]]
['ok', 'missing', 'ok', 'duplicate', 'late', 'out_of_limits', 'ok']
"""

from __future__ import annotations

import math

from .codec import Reader, Writer
from .config import CleaningConfig, Limits

_RING = 8
_STEP_GAIN = 1.05  # multiplicative step of the online median of the interval
_REPEAT_RATE = 0.01


class SeriesCleaner:
    """Validates points of one series and learns its sampling interval."""

    __slots__ = (
        "last_ts",
        "last_value",
        "lateness",
        "limit",
        "lower",
        "n",
        "rate",
        "recent",
        "run",
        "run_start",
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
        self.lower = -math.inf if limits.lower is None else limits.lower
        self.upper = math.inf if limits.upper is None else limits.upper
        self.last_ts = -math.inf
        self.last_value = math.nan
        self.step = 0.0  # typical interval (online median, 0 = unknown)
        self.n = 0  # accepted points
        self.run = 0  # length of the current run of identical values
        self.run_start = 0.0
        self.limit = 0  # stuck run length of the current run (set when it reaches stuck_min)
        self.rate = 0.0  # EW rate of "same value as before"
        self.recent: list[float] = []  # recent timestamps, for duplicates when lateness > 0

    def check(self, ts: float, value: float | None) -> str:
        """``"ok"`` and learn, or the rejection reason (state unchanged)."""
        if value is None:
            return "missing"
        try:
            if not (math.isfinite(value) and math.isfinite(ts)):
                return "non_finite"
        except TypeError:
            return "non_finite"
        if value < self.lower or value > self.upper:
            return "out_of_limits"
        last = self.last_ts
        if ts > last:
            if self.n:
                dt = ts - last
                step = self.step
                if step == 0.0:
                    self.step = dt
                elif dt > step:
                    self.step = step * _STEP_GAIN if dt > step * _STEP_GAIN else dt
                elif dt < step:
                    self.step = step / _STEP_GAIN if dt < step / _STEP_GAIN else dt
            self.last_ts = ts
        elif ts == last or ts in self.recent:
            return "duplicate"
        elif last - ts > self.lateness:
            return "late"
        if self.lateness > 0.0:
            recent = self.recent
            recent.append(ts)
            if len(recent) > _RING:
                del recent[0]
        self.n += 1
        if value == self.last_value:
            run = self.run = self.run + 1
            if run == self.stuck_min:
                self.limit = self.stuck_limit()
            if run < self.stuck_min or run < self.limit:  # a stuck run does not teach
                self.rate += _REPEAT_RATE * (1.0 - self.rate)
        else:
            self.run = 1
            self.run_start = ts
            self.rate -= _REPEAT_RATE * self.rate
            self.last_value = value
        return "ok"

    def stuck_limit(self) -> int:
        """Run length at which identical values count as stuck."""
        rate = self.rate
        if rate <= 0.0:
            return self.stuck_min
        if rate >= 1.0:
            return 1 << 30
        return max(self.stuck_min, math.ceil(math.log(self.stuck_p) / math.log(rate)))

    def silent_for(self, watermark_ts: float) -> float:
        """Seconds since the last point when that exceeds the silence limit, else 0."""
        if self.step <= 0.0 or self.n < 2:
            return 0.0
        gap = watermark_ts - self.last_ts
        return gap if gap > self.silence_intervals * self.step else 0.0

    def write(self, w: Writer) -> None:
        w.raw(
            "dddIIddI",
            self.last_ts,
            self.last_value,
            self.step,
            self.n,
            self.run,
            self.rate,
            self.run_start,
            self.limit,
        )
        w.floats(self.recent)

    def read(self, r: Reader) -> None:
        last_ts, last_value, step, n, run, rate, run_start, limit = r.raw("dddIIddI")
        self.limit = int(limit)
        self.run_start = float(run_start)
        self.last_ts, self.last_value, self.step = float(last_ts), float(last_value), float(step)
        self.n, self.run, self.rate = int(n), int(run), float(rate)
        self.recent = r.floats()
