"""``ewma_z``: exponentially weighted mean and variance, calibrated ``|z|``.

The classic control-chart detector: cheap, no seasonality, no trend. Updates
are winsorised at ``clip`` standard deviations.

>>> det = EwmaZ.create({}, seed=0)
>>> for i in range(100):
...     _ = det.update(float(i), 5.0 + (i % 3) * 0.1)
>>> det.update(100.0, 9.0)[0] > 0.999
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..calibration import TailCalibrator
from ..codec import Reader, Writer
from .base import BAND_P, CAL_RATE, CLIP, RATE, RELATIVE_SIGMA_FLOOR, Update, check_params

DEFAULTS: dict[str, float] = {"alpha": 0.02, "clip": 4.0, "cal_rate": 0.05, "band_p": 0.001}
BOUNDS = {"alpha": RATE, "clip": CLIP, "cal_rate": CAL_RATE, "band_p": BAND_P}
_STATE = "Idddd"


class EwmaZ:
    """EW mean/variance z-score with a tail calibrator."""

    name = "ewma_z"
    __slots__ = ("alpha", "band_k", "cal", "clip", "mean", "n", "var")

    def __init__(self, params: Mapping[str, Any]) -> None:
        check_params(params, set(DEFAULTS), self.name, BOUNDS)
        p = {**DEFAULTS, **params}
        self.alpha = float(p["alpha"])
        self.clip = float(p["clip"])
        self.band_k = math.log10(0.1 / float(p["band_p"]))
        self.cal = TailCalibrator(rate=float(p["cal_rate"]))
        self.n = 0
        self.mean = 0.0
        self.var = 0.0

    @classmethod
    def create(cls, params: Mapping[str, Any], seed: int) -> EwmaZ:
        return cls(params)

    @classmethod
    def load(cls, blob: bytes, params: Mapping[str, Any], seed: int) -> EwmaZ:
        det = cls(params)
        n, mean, var, q_lo, q_hi = Reader(blob).raw(_STATE)
        det.n, det.mean, det.var = int(n), float(mean), float(var)
        det.cal.set_state(float(q_lo), float(q_hi))
        return det

    def to_bytes(self) -> bytes:
        w = Writer()
        w.raw(_STATE, self.n, self.mean, self.var, *self.cal.state())
        return w.getvalue()

    def update(self, ts: float, value: float) -> Update:
        n = self.n + 1
        self.n = n
        mean = self.mean
        if n == 1:
            self.mean = value
            return (0.0, value, value, value, 0.0)
        sd = math.sqrt(self.var)
        floor = 1e-9 + RELATIVE_SIGMA_FLOOR * abs(mean)
        if sd < floor:
            sd = floor
        z = (value - mean) / sd
        cal = self.cal
        score = cal.score_learn(abs(z)) if n > 10 else 0.0
        half = (cal.q_lo + (cal.q_hi - cal.q_lo) * self.band_k) * sd
        alpha = self.alpha if n * self.alpha > 1.0 else 1.0 / n
        d = value - mean
        lim = self.clip * sd
        if n > 5:
            d = lim if d > lim else -lim if d < -lim else d
        self.mean = mean + alpha * d
        self.var = (1.0 - alpha) * (self.var + alpha * d * d)
        return (score, mean, mean - half, mean + half, z)
