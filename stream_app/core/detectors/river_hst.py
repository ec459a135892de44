"""``river_hst``: River ``HalfSpaceTrees`` on a scaled shingle of recent values.

The feature vector of a point is the last ``shingle`` values (the point
included), scaled online to [0, 1] by River's ``MinMaxScaler``; the trees see
the shape of the recent window, not only the level. The raw HST score is
calibrated by a :class:`TailCalibrator`; expected value, band and ``z`` come
from an :class:`EwmaZ` run alongside (HST has no forecast). State goes through
pickle and is large (about 170 KB at the default size): use it for a few
important series, not for thousands.

>>> det = RiverHST.create({"n_trees": 3, "height": 4, "window_size": 20}, seed=1)
>>> scores = [det.update(float(i), float(i % 5))[0] for i in range(60)]
>>> all(0.0 <= s <= 1.0 for s in scores)
True
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

from ..calibration import TailCalibrator
from . import river_state
from .base import CAL_RATE, Bounds, Update, check_forest, check_params
from .ewma_z import EwmaZ

DEFAULTS: dict[str, float] = {
    "n_trees": 10,
    "height": 8,
    "window_size": 250,
    "shingle": 4,
    "cal_rate": 0.05,
}
# a forest's size is memory and time per series: River's own defaults are 10 trees of
# height 8
BOUNDS: dict[str, Bounds] = {
    "n_trees": (1.0, 50.0, True),
    "height": (1.0, 12.0, True),
    "window_size": (1.0, 10_000.0, True),
    "shingle": (1.0, 32.0, True),
    "cal_rate": CAL_RATE,
}


class RiverHST:
    """Half-space trees on shingles, with calibrated scores."""

    name = "river_hst"
    __slots__ = ("base", "cal", "keys", "model", "n", "scaler", "window")

    def __init__(self, params: Mapping[str, Any], seed: int) -> None:
        from river import anomaly, preprocessing

        check_params(params, set(DEFAULTS), self.name, BOUNDS)
        check_forest(params, DEFAULTS, self.name)
        p = {**DEFAULTS, **params}
        self.keys = tuple(f"x{i}" for i in range(int(p["shingle"])))
        self.scaler: Any = preprocessing.MinMaxScaler()
        self.model: Any = anomaly.HalfSpaceTrees(
            n_trees=int(p["n_trees"]),
            height=int(p["height"]),
            window_size=int(p["window_size"]),
            seed=seed,
        )
        self.cal = TailCalibrator(q_lo=0.5, q_hi=0.8, rate=float(p["cal_rate"]))
        self.base = EwmaZ({})
        self.window: list[float] = []
        self.n = 0

    @classmethod
    def create(cls, params: Mapping[str, Any], seed: int) -> RiverHST:
        return cls(params, seed)

    @classmethod
    def load(cls, blob: bytes, params: Mapping[str, Any], seed: int) -> RiverHST:
        det = cls(params, seed)
        state = river_state.load(blob)
        det.scaler, det.model, det.window, det.n, q, base = state
        det.cal.set_state(*q)
        det.base = EwmaZ.load(base, {}, seed)
        return det

    def to_bytes(self) -> bytes:
        state = (self.scaler, self.model, self.window, self.n, self.cal.state(),
                 self.base.to_bytes())  # fmt: skip
        return pickle.dumps(state, protocol=5)

    def update(self, ts: float, value: float) -> Update:
        _, expected, lower, upper, z = self.base.update(ts, value)
        window = self.window
        window.append(value)
        if len(window) > len(self.keys):
            del window[0]
        # pad the shingle with the oldest value until it is full
        values = [window[0]] * (len(self.keys) - len(window)) + window
        x = dict(zip(self.keys, values, strict=True))
        self.scaler.learn_one(x)
        xs = self.scaler.transform_one(x)
        raw = self.model.score_one(xs)
        self.model.learn_one(xs)
        self.n += 1
        # HST scores are meaningless until its first window is complete
        score = self.cal.score_learn(raw) if self.n > self.model.window_size else 0.0
        return (score, expected, lower, upper, z)
