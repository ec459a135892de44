"""``river_sad``: River's ``StandardAbsoluteDeviation`` with our calibrator.

Kept as a reference detector (and the cheapest River scorer); state goes
through pickle, about 300 bytes.

>>> det = RiverSAD.create({}, seed=0)
>>> for i in range(100):
...     _ = det.update(float(i), 5.0 + (i % 3) * 0.1)
>>> det.update(100.0, 9.0)[0] > 0.99
True
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping
from typing import Any

from ..calibration import TailCalibrator
from . import river_state
from .base import BAND_P, CAL_RATE, Update, check_params

DEFAULTS: dict[str, float] = {"cal_rate": 0.05, "band_p": 0.001}
BOUNDS = {"cal_rate": CAL_RATE, "band_p": BAND_P}


class RiverSAD:
    """``river.anomaly.StandardAbsoluteDeviation`` on the value, calibrated."""

    name = "river_sad"
    __slots__ = ("band_k", "cal", "model", "n")

    def __init__(self, params: Mapping[str, Any]) -> None:
        from river import anomaly, stats

        check_params(params, set(DEFAULTS), self.name, BOUNDS)
        p = {**DEFAULTS, **params}
        self.band_k = math.log10(0.1 / float(p["band_p"]))
        self.cal = TailCalibrator(rate=float(p["cal_rate"]))
        self.model: Any = anomaly.StandardAbsoluteDeviation(sub_stat=stats.Mean())
        self.n = 0

    @classmethod
    def create(cls, params: Mapping[str, Any], seed: int) -> RiverSAD:
        return cls(params)

    @classmethod
    def load(cls, blob: bytes, params: Mapping[str, Any], seed: int) -> RiverSAD:
        det = cls(params)
        det.model, det.n, q = river_state.load(blob)
        det.cal.set_state(*q)
        return det

    def to_bytes(self) -> bytes:
        return pickle.dumps((self.model, self.n, self.cal.state()), protocol=5)

    def update(self, ts: float, value: float) -> Update:
        model = self.model
        self.n += 1
        mean = model.sub_stat.get() if self.n > 1 else value
        sd = math.sqrt(model.variance.get()) if self.n > 1 else 0.0
        raw = model.score_one(None, value) if self.n > 1 else 0.0
        model.learn_one(None, value)
        z = (value - mean) / sd if sd > 0.0 else 0.0
        score = self.cal.score_learn(raw) if self.n > 10 else 0.0
        cal = self.cal
        half = (cal.q_lo + (cal.q_hi - cal.q_lo) * self.band_k) * sd
        return (score, mean, mean - half, mean + half, z)
