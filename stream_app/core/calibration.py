"""Turn a raw, non-negative surprise (e.g. ``|z|``) into a calibrated score.

The score is ``1 - p`` where ``p`` estimates the probability, under the
series' own recent behaviour, of a surprise at least this large. Two quantiles
of the raw surprise (``tau_lo`` = 0.9 and ``tau_hi`` = 0.99) are tracked online
with sign-gradient (stochastic quantile) updates whose step is proportional to
their spread, so the tracker is scale-free and a single huge value moves it by
a bounded amount. Above the 0.9 quantile the tail is extrapolated as an
exponential through the two quantiles; below it the score rises linearly.
Beyond the 0.99 quantile the exponential's scale may be ``far`` times that
spread (1 by default, the same line): a caller that has measured how often its
series goes beyond the line's 0.999 point sets it (a heavier far tail, e.g.
counts whose bursts are their normal behaviour).

Because each series is compared with itself, a score of 0.999 means "about
one point in a thousand looks like this" on every series, whatever its units
or noise shape: that is what makes one threshold work across series. During a
long anomaly the quantiles drift up and the score decays, like Numenta's
anomaly likelihood: the calibrator gets used to a new regime.

>>> cal = TailCalibrator()
>>> round(cal.score(0.0), 3), round(cal.score(1.645), 3)
(0.0, 0.9)
>>> cal.score(10.0) > 0.9999
True
>>> abs(cal.inverse(cal.tail(3.0)) - 3.0) < 1e-9
True
>>> cal.far = 2.0  # a far tail twice as long: the line's 0.999 point is 3 in 1,000
>>> round(cal.tail(cal.q_hi + (cal.q_hi - cal.q_lo)), 6), abs(cal.inverse(cal.tail(5.0)) - 5.0) < 1e-9
(0.003162, True)
"""

from __future__ import annotations

import math

_LN10 = math.log(10.0)
TAU_LO = 0.9
TAU_HI = 0.99
# the quantiles' steps down (a surprise at or below them): computed once, not per point
_TAU_LO_DOWN = TAU_LO - 1.0
_TAU_HI_DOWN = TAU_HI - 1.0


class TailCalibrator:
    """Online tail-probability calibrator (scores in [0, 1])."""

    __slots__ = ("far", "q_hi", "q_lo", "rate")

    def __init__(self, q_lo: float = 1.645, q_hi: float = 2.576, rate: float = 0.05) -> None:
        if not 0.0 < q_lo < q_hi:
            raise ValueError("need 0 < q_lo < q_hi")
        self.q_lo = q_lo
        self.q_hi = q_hi
        self.rate = rate
        self.far = 1.0  # the far tail's scale beyond q_hi, in units of q_hi - q_lo

    def tail(self, a: float) -> float:
        """Estimated probability of a raw surprise >= ``a``."""
        q_lo = self.q_lo
        if a <= q_lo:
            return 1.0 - 0.9 * a / q_lo if a > 0.0 else 1.0
        q_hi = self.q_hi
        if a > q_hi and self.far != 1.0:
            return 0.01 * math.exp(-_LN10 * (a - q_hi) / ((q_hi - q_lo) * self.far))
        return 0.1 * math.exp(-_LN10 * (a - q_lo) / (q_hi - q_lo))

    def inverse(self, p: float) -> float:
        """The raw surprise whose tail probability is ``p``."""
        if p >= 0.1:
            return (1.0 - p) / 0.9 * self.q_lo
        spread = self.q_hi - self.q_lo
        if p < 0.01 and self.far != 1.0:
            return self.q_hi + spread * self.far * math.log10(0.01 / p)
        return self.q_lo + spread * math.log10(0.1 / p)

    def score(self, a: float) -> float:
        """Calibrated score of ``a`` without learning from it."""
        return 1.0 - self.tail(a)

    def score_learn(self, a: float) -> float:
        """Score ``a`` against the past, then learn from it (the hot path)."""
        q_lo = self.q_lo
        q_hi = self.q_hi
        spread = q_hi - q_lo
        if a <= q_lo:
            score = 0.9 * a / q_lo if a > 0.0 else 0.0
        elif a > q_hi and self.far != 1.0:
            score = 1.0 - 0.01 * math.exp(-_LN10 * (a - q_hi) / (spread * self.far))
        else:
            score = 1.0 - 0.1 * math.exp(-_LN10 * (a - q_lo) / spread)
        step = self.rate * spread
        q_lo += step * _TAU_LO_DOWN if a <= q_lo else step * TAU_LO
        q_hi += step * _TAU_HI_DOWN if a <= q_hi else step * TAU_HI
        # keep the quantiles ordered and positive
        if q_lo < 1e-12:
            q_lo = 1e-12
        if q_hi < q_lo * 1.05:
            q_hi = q_lo * 1.05
        self.q_lo = q_lo
        self.q_hi = q_hi
        return score

    def state(self) -> tuple[float, float]:
        return (self.q_lo, self.q_hi)

    def set_state(self, q_lo: float, q_hi: float) -> None:
        self.q_lo = q_lo
        self.q_hi = q_hi
