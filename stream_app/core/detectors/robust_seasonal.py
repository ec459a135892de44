"""``robust_seasonal``: the default detector, for unknown series with no tuning.

Three forecasters run side by side on every point, all with winsorised
(clipped at ``clip`` sigma) updates so outliers barely move them:

* a fast level (``alpha_fast``): good for random walks and prices;
* a slow level with a damped trend (``alpha_slow``, ``beta``, ``phi``): good
  for noisy stationary series;
* a seasonal forecast: a slow level plus a daily profile (48 phase bins of
  30 min) and a weekly profile (168 bins of 1 h) on top, enabled once the
  series has a day (a week) of history at a sampling interval that fills the
  bins.

**Which forecaster speaks** is decided on a long horizon (about a day of
points, at least 50 and at most 500): each keeps a long-run mean absolute
error, and the one with the smallest gives the expected value (the seasonal
one must beat the others by ``season_margin``). A short horizon would not do:
between the transitions of a daily step pattern the fast level forecasts as
well as the seasonal profile, and only the long run shows that it is wrong at
every transition. The chosen forecaster's *short*-horizon error scale gives
sigma (1.2533 x mean absolute error), the robust ``z`` and the band. The
surprise ``|z|`` goes through a :class:`TailCalibrator` (on ``log1p``) to a
score in [0, 1].

Robustness: updates are winsorised, identical consecutive values do not shrink
the error scales (quantised or flat stretches), sigma is floored at ``floor``
times its long-run value, and ``jump_points`` consecutive same-side outliers
are taken as a level shift: the levels restart there and the scales re-learn
quickly, so a shift is one alarm rather than a long string of them. While such
a run builds up, its points are judged together (Stouffer's ``sum(z) /
sqrt(run length)``, each ``z`` clipped at ``3 clip``). Arithmetic is kept
finite whatever the input: values are judged relative to a scale, residuals
are computed without overflow, and a state that still turns non-finite is
restarted from the current point, so no single value can disable a series.

>>> det = RobustSeasonal.create({}, seed=0)
>>> for i in range(200):
...     _ = det.update(60.0 * i, 10.0 + (i % 7) * 0.1)
>>> score, expected, lower, upper, z = det.update(60.0 * 200, 25.0)
>>> score > 0.999 and lower < expected < upper and z > 10
True
>>> det = RobustSeasonal.create({}, seed=0)
>>> _ = det.update(0.0, 1e308), det.update(60.0, -1e308)
>>> out = [det.update(60.0 * i, 5.0 + i % 3) for i in range(2, 60)]
>>> all(math.isfinite(v) for row in out for v in row)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..calibration import TailCalibrator
from ..codec import Reader, Writer
from .base import Update, check_params

DAY = 86400.0
WEEK = 7 * DAY
DAY_BINS = 48
WEEK_BINS = 168
SIGMA_PER_MAE = 1.2533  # sigma / mean absolute deviation for a normal law
_NAN = math.nan
_VERSION = 3
_STATE = "<BI" + "d" * 19 + "iIddd"
# the calibrator works on log1p(surprise): a power-law tail, robust to heavy tails
LOG_Q_LO = math.log1p(1.645)
LOG_Q_HI = math.log1p(2.576)
_BIG = 1e300  # residuals and levels beyond this are clipped: no overflow to inf
_SQRT_BIG = 1e150
WEEKLY_MIN_VISITS = 4  # the weekly profile needs a step that visits each hour 4 times
SELECT_MIN_POINTS = 50.0
SEASON_START_POINTS = 20  # profiles are kept from here on if the step fills their bins
DAILY_AFTER = 1.25 * DAY  # a profile speaks once every bin was seen and learned a little
WEEKLY_AFTER = WEEK + 0.25 * DAY
SELECT_MAX_POINTS = 2016.0

DEFAULTS: dict[str, float] = {
    "alpha_fast": 0.3,
    "alpha_slow": 0.03,
    "beta": 0.05,
    "phi": 0.98,
    "alpha_err": 0.05,
    "gamma": 0.1,
    "clip": 3.0,
    "cal_rate": 0.02,
    "band_p": 0.001,
    "floor": 0.1,
    "jump_points": 5,
    "season_margin": 0.9,
    "short_alpha": 0.1,
    "short_weight": 0.0,
}
LONG_ALPHA = 0.001  # memory of the long-run error scale behind the sigma floor


def _clip(x: float) -> float:
    return _BIG if x > _BIG else -_BIG if x < -_BIG else x


class RobustSeasonal:
    """Robust level/trend/seasonal forecaster with a calibrated residual score."""

    name = "robust_seasonal"

    __slots__ = (
        "a_err", "a_fast", "a_season", "a_sel", "a_slow", "age", "band_k", "beta", "cal",
        "clip", "day", "ec", "ef", "el", "es", "floor", "gamma", "jump", "jumps", "lc", "lf",
        "ls", "margin", "n", "phi", "prev", "rsum", "sc", "sf", "short_norm", "ss", "t0", "tr",
        "week", "zs", "a_short", "ew", "swl", "lw",
    )  # fmt: skip

    def __init__(self, params: Mapping[str, Any]) -> None:
        check_params(params, set(DEFAULTS), self.name)
        p = {**DEFAULTS, **params}
        self.a_fast = float(p["alpha_fast"])
        self.a_slow = float(p["alpha_slow"])
        self.beta = float(p["beta"])
        self.phi = float(p["phi"])
        self.a_err = float(p["alpha_err"])
        self.gamma = float(p["gamma"])
        self.clip = float(p["clip"])
        self.band_k = math.log10(0.1 / float(p["band_p"]))
        self.floor = float(p["floor"])
        self.margin = float(p["season_margin"])
        self.jump = int(p["jump_points"])
        self.a_short = float(p["short_alpha"])
        self.short_norm = float(p["short_weight"]) * math.sqrt((2.0 - self.a_short) / self.a_short)
        self.cal = TailCalibrator(LOG_Q_LO, LOG_Q_HI, rate=float(p["cal_rate"]))
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.el = 0.0
        self.age = 0  # points since the start or the last level jump (bias correction)
        self.prev = math.nan
        self.jumps = 0  # consecutive points beyond the clip on the same side (signed)
        self.rsum = 0.0  # sum of their (clipped) z
        self.t0 = self.lf = self.ef = self.ls = self.tr = self.es = 0.0
        self.lc = self.lw = self.ec = self.zs = 0.0
        self.sf = self.ss = self.sc = self.swl = self.ew = 0.0  # long-horizon errors: which forecaster speaks
        self.a_sel = 0.0
        self.a_season = 0.0  # 0: not decided yet, -1: step too coarse for seasons
        self.day: list[float] | None = None
        self.week: list[float] | None = None

    @classmethod
    def create(cls, params: Mapping[str, Any], seed: int) -> RobustSeasonal:
        return cls(params)

    @classmethod
    def load(cls, blob: bytes, params: Mapping[str, Any], seed: int) -> RobustSeasonal:
        """Restore a state; a state of an older layout raises ``ValueError``."""
        det = cls(params)
        r = Reader(blob)
        if not blob or blob[0] != _VERSION:
            raise ValueError(f"{cls.name}: state of an older layout")
        (_v, n, det.t0, det.lf, det.ef, det.ls, det.tr, det.es, det.lc, det.ec, det.sf,
         det.ss, det.sc, det.a_sel, det.a_season, q_lo, q_hi, det.el, det.prev, det.rsum,
         det.zs, jumps, age, det.ew, det.swl, det.lw) = r.raw(_STATE[1:])  # fmt: skip
        det.n = int(n)
        det.jumps = int(jumps)
        det.age = int(age)
        det.cal.set_state(float(q_lo), float(q_hi))
        day, week = r.floats(), r.floats()
        det.day = day or None
        det.week = week or None
        return det

    def to_bytes(self) -> bytes:
        w = Writer()
        q_lo, q_hi = self.cal.state()
        w.raw(_STATE[1:], _VERSION, self.n, self.t0, self.lf, self.ef, self.ls, self.tr,
              self.es, self.lc, self.ec, self.sf, self.ss, self.sc, self.a_sel, self.a_season,
              q_lo, q_hi, self.el, self.prev, self.rsum, self.zs, self.jumps, self.age, self.ew,
              self.swl, self.lw)  # fmt: skip
        w.floats(self.day or ())
        w.floats(self.week or ())
        return w.getvalue()

    def update(self, ts: float, value: float) -> Update:
        out = self._update(ts, value)
        if not (
            math.isfinite(self.lf + self.ls + self.lc + self.lw + self.tr + self.ew + self.swl)
            and math.isfinite(self.ef + self.es + self.ec + self.el + self.sf + self.ss + self.sc)
        ):
            # overflow in spite of the clipping (sums of huge levels): start again here
            self._reset()
            self._update(ts, value)
            return (out[0], value, value, value, 0.0)
        return out

    def _update(self, ts: float, value: float) -> Update:
        n = self.n
        value = _clip(value)
        if n == 0:
            self.n = self.age = 1
            self.t0 = ts
            self.lf = self.ls = self.lc = value
            return (0.0, value, value, value, 0.0)
        n += 1
        self.n = n
        lf = self.lf
        trend = self.phi * self.tr
        fs = _clip(self.ls + trend)
        day = self.day
        week = self.week
        if day is None:
            if self.a_season == 0.0 and n >= SEASON_START_POINTS:
                self._start_season(ts, n)
            fc = fw = fs
            sd = sw = 0.0
            bd = bw = 0
        else:
            lc = self.lc
            bd = int((ts % DAY) * (DAY_BINS / DAY)) % DAY_BINS
            sd = day[bd]
            if sd != sd:  # first visit of this bin: start from the level residual
                sd = day[bd] = _clip(value - lc)
            fc = _clip(lc + sd)
            if week is None:
                bw = 0
                sw = 0.0
                fw = fc
            else:
                bw = int(((ts + 3 * DAY) % WEEK) * (WEEK_BINS / WEEK)) % WEEK_BINS
                sw = week[bw]
                if sw != sw:
                    sw = week[bw] = _clip(value - self.lw)
                fw = _clip(self.lw + sw)
        expected, err = self._choose(ts, lf, fs, fc, fw)
        # sigma never collapses below a fraction of its long-run value (flat stretches)
        el = self.el
        if value != self.prev:
            el += (LONG_ALPHA if n * LONG_ALPHA > 1.0 else 1.0 / n) * (err - el)
            self.el = el
        if err < self.floor * el:
            err = self.floor * el
        sigma = SIGMA_PER_MAE * err
        floor = 1e-300 + 1e-6 * abs(expected)
        if sigma < floor:
            sigma = floor
        z = _clip(value - expected) / sigma
        a = z if z >= 0.0 else -z
        if self.short_norm:
            # a small sustained shift: the short-window mean of z, in its own sigmas
            zc = 3.0 * self.clip
            zs = self.zs + self.a_short * ((zc if z > zc else -zc if z < -zc else z) - self.zs)
            self.zs = zs
            b = (zs if zs >= 0.0 else -zs) * self.short_norm
            if b > a:
                a = b
        a = self._run_evidence(z, a)
        cal = self.cal
        score = cal.score_learn(math.log1p(a)) if n > 10 else 0.0
        half = _clip(math.expm1(cal.q_lo + (cal.q_hi - cal.q_lo) * self.band_k) * sigma)
        self._learn(value, lf, fs, fc, fw, bd, bw, sd, sw)
        return (score, expected, _clip(expected - half), _clip(expected + half), _clip(z))

    def _choose(
        self, ts: float, lf: float, fs: float, fc: float, fw: float
    ) -> tuple[float, float]:
        """Expected value and short-horizon error scale of the forecaster that speaks.

        A seasonal forecaster must beat the simpler ones by ``season_margin`` on
        the long horizon; the weekly one must also beat the daily one.
        """
        if self.ss < self.sf:
            expected, err, best = fs, self.es, self.ss
        else:
            expected, err, best = lf, self.ef, self.sf
        if self.day is not None:
            age = ts - self.t0
            margin = self.margin
            if age >= DAILY_AFTER and self.sc < margin * best:
                expected, err, best = fc, self.ec, self.sc
            if self.week is not None and age >= WEEKLY_AFTER and self.swl < margin * best:
                expected, err = fw, self.ew
        return expected, err

    def _run_evidence(self, z: float, a: float) -> float:
        """A run of same-side outliers counts as a whole: Stouffer's sum / sqrt(length)."""
        clip = self.clip
        zc = clip * 3.0
        if z > clip:
            jumps = self.jumps + 1 if self.jumps > 0 else 1
        elif z < -clip:
            jumps = self.jumps - 1 if self.jumps < 0 else -1
        else:
            jumps = 0
        self.jumps = jumps
        zr = zc if z > zc else -zc if z < -zc else z
        if jumps == 1 or jumps == -1:
            self.rsum = zr
        elif jumps:
            self.rsum = rsum = self.rsum + zr
            b = rsum / math.sqrt(jumps) if jumps > 0 else -rsum / math.sqrt(-jumps)
            if b > a:
                a = b
        return a

    def _learn(
        self,
        value: float,
        lf: float,
        fs: float,
        fc: float,
        fw: float,
        bd: int,
        bw: int,
        sd: float,
        sw: float,
    ) -> None:
        """Winsorised error-correction updates, bias-corrected while young.

        A repeated value says nothing about the noise (quantised or flat
        stretches), so it does not shrink the error scales.
        """
        age = self.age + 1
        self.age = age
        a_err = self.a_err if age * self.a_err > 1.0 else 1.0 / age
        n = self.n
        a_sel = self.a_sel if self.a_sel and n * self.a_sel > 1.0 else 1.0 / n
        if value == self.prev:
            a_err = 0.0
        self.prev = value
        r, self.ef, self.sf = self._residual(value - lf, self.ef, self.sf, a_err, a_sel, age)
        self.lf = _clip(lf + self.a_fast * r)
        a_slow = self.a_slow if age * self.a_slow > 1.0 else 1.0 / age
        r, self.es, self.ss = self._residual(value - fs, self.es, self.ss, a_err, a_sel, age)
        self.ls = _clip(fs + a_slow * r)
        self.tr = _clip(self.phi * self.tr + self.beta * a_slow * r)
        day = self.day
        week = self.week
        a_season_err = a_err and self.a_err
        if day is not None:
            r, self.ec, self.sc = self._residual(
                value - fc, self.ec, self.sc, a_season_err, a_sel, age
            )
            self.lc = _clip(self.lc + self.a_season * r)
            day[bd] = _clip(sd + self.gamma * r)
        if week is not None:
            r, self.ew, self.swl = self._residual(
                value - fw, self.ew, self.swl, a_season_err, a_sel, age
            )
            self.lw = _clip(self.lw + self.a_season * r)
            week[bw] = _clip(sw + self.gamma * r)
        jumps = self.jumps
        if jumps >= self.jump or -jumps >= self.jump:
            self._jump(value, sd, sw)

    def _residual(
        self, r: float, err: float, long: float, a_err: float, a_sel: float, age: int
    ) -> tuple[float, float, float]:
        """One forecaster's residual, winsorised at ``clip`` sigma; its new error scales.

        The long-horizon error that picks the forecaster is a mean *square*,
        clipped far wider (20 sigma): it must weigh the large misses of a
        forecaster that ignores a season (a daily profile on weekends, a level at
        every step of a daily pattern) above a slightly wider noise, and only a
        wild outlier is kept from dominating it.
        """
        r = _clip(r)
        ar = r if r >= 0.0 else -r
        big = 20.0 * SIGMA_PER_MAE * err if err > 0.0 else _SQRT_BIG
        e = ar if ar < big else big
        long += a_sel * (e * e - long)
        lim = self.clip * SIGMA_PER_MAE * err
        if age > 5 and lim > 0.0:
            r = lim if r > lim else -lim if r < -lim else r
        err += a_err * ((r if r >= 0.0 else -r) - err)
        return r, err, long

    def _jump(self, value: float, daily: float, weekly: float) -> None:
        """Restart the levels at ``value`` (a level shift); scales and profiles stay."""
        self.lf = self.ls = value
        self.lc = _clip(value - daily)
        self.lw = _clip(value - weekly)
        self.tr = 0.0
        self.zs = 0.0
        self.jumps = 0
        self.age = 1  # re-learn the error scales quickly in the new regime

    def _start_season(self, ts: float, n: int) -> None:
        """Allocate the daily profile once a day of history shows a fine enough step."""
        step = (ts - self.t0) / (n - 1)
        # the long horizon that decides which forecaster speaks: about a week of points
        self.a_sel = 1.0 / min(max(WEEK / max(step, 1e-9), SELECT_MIN_POINTS), SELECT_MAX_POINTS)
        if step > DAY / 24:
            self.a_season = -1.0
            return
        # a seasonal level slow enough not to swallow the daily cycle
        self.a_season = min(self.a_slow, 50.0 * step / DAY)
        self.lc = self.lw = self.ls
        self.ec = self.es
        self.sc = self.swl = self.ss
        self.ew = self.es
        self.day = [_NAN] * DAY_BINS
        if step <= WEEK / WEEK_BINS / WEEKLY_MIN_VISITS:
            self.week = [_NAN] * WEEK_BINS
