"""``ensemble``: combine the calibrated scores of several detectors.

``combine`` is ``max`` (the most surprised member decides) or ``noisy_or``
(``1 - prod(1 - score)``: independent weak evidence adds up). Expected value,
band and ``z`` come from the first member. Members are given by name and use
their default parameters, or as ``{"detector": name, "params": {...}}``.

>>> det = Ensemble.create({"members": ["ewma_z", "robust_seasonal"]}, seed=0)
>>> det.name
'ensemble'
>>> for i in range(50):
...     _ = det.update(float(i), 1.0 + (i % 2) * 0.1)
>>> det.update(50.0, 9.0)[0] > 0.99
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..codec import Reader, Writer
from .base import Detector, DetectorRegistry, Update, check_params


class Ensemble:
    """Several detectors on the same series, one combined calibrated score."""

    name = "ensemble"
    __slots__ = ("members", "noisy_or")

    def __init__(self, members: Sequence[Detector], combine: str) -> None:
        if not members:
            raise ValueError("ensemble: needs at least one member")
        if combine not in ("max", "noisy_or"):
            raise ValueError(f"ensemble: combine must be max or noisy_or, not {combine!r}")
        self.members = list(members)
        self.noisy_or = combine == "noisy_or"

    @staticmethod
    def _members(params: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
        check_params(params, {"members", "combine"}, "ensemble")
        out: list[tuple[str, Mapping[str, Any]]] = []
        for item in params.get("members", ("robust_seasonal", "ewma_z")):
            if isinstance(item, str):
                out.append((item, {}))
            else:
                out.append((str(item["detector"]), dict(item.get("params", {}))))
        if any(name == "ensemble" for name, _ in out):
            raise ValueError("ensemble: members cannot be ensembles")
        return out

    @classmethod
    def create(
        cls, params: Mapping[str, Any], seed: int, registry: DetectorRegistry | None = None
    ) -> Ensemble:
        reg = registry or _default_registry()
        members = [
            reg.create(name, p, seed + i) for i, (name, p) in enumerate(cls._members(params))
        ]
        return cls(members, str(params.get("combine", "max")))

    @classmethod
    def load(
        cls,
        blob: bytes,
        params: Mapping[str, Any],
        seed: int,
        registry: DetectorRegistry | None = None,
    ) -> Ensemble:
        reg = registry or _default_registry()
        r = Reader(blob)
        members = [
            reg.load(name, r.blob(), p, seed + i)
            for i, (name, p) in enumerate(cls._members(params))
        ]
        return cls(members, str(params.get("combine", "max")))

    def to_bytes(self) -> bytes:
        w = Writer()
        for member in self.members:
            w.blob(member.to_bytes())
        return w.getvalue()

    def update(self, ts: float, value: float) -> Update:
        first = self.members[0].update(ts, value)
        score = first[0]
        if self.noisy_or:
            keep = 1.0 - score
            for member in self.members[1:]:
                keep *= 1.0 - member.update(ts, value)[0]
            score = 1.0 - keep
        else:
            for member in self.members[1:]:
                s = member.update(ts, value)[0]
                if s > score:
                    score = s
        return (score, first[1], first[2], first[3], first[4])


def _default_registry() -> DetectorRegistry:
    from . import REGISTRY

    return REGISTRY
