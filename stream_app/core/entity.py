"""``EntityScorer``: one calibrated score per reading of a multivariate entity.

The series processors judge each metric of an entity alone; a pump whose
temperature and vibration always move together is also anomalous when they
stop doing so, even if neither is far from its own forecast. Per reading, the
entity scorer takes the :class:`ScoredPoint` of every metric, maps each signed
residual ``z`` to [0, 1] with the normal CDF ``Phi(z / scale)`` (0.5 is
"as expected"; no global MinMax needed, the per-series detectors already
standardised it) and feeds the vector to River's ``HalfSpaceTrees``. The raw
HST score is calibrated by a :class:`TailCalibrator`, like every other score.

Metrics that are missing, rejected or still warming up in a reading take the
neutral value 0.5. A metric seen for the first time restarts the trees (their
features are fixed when they are built), so the entity warms up again for one
window. Readings without any usable metric (e.g. replayed duplicates) are
neither scored nor learned. State is compact: the trees are rebuilt from the
seed and only their masses are stored (a few KB instead of ~170 KB of pickle).

>>> scorer = EntityScorer("pump-7", {"n_trees": 3, "height": 4, "window_size": 20})
>>> def pt(m, z):
...     return ScoredPoint("pump-7", m, 0.0, z, "ok", True, 0.5, 0.0, -1.0, 1.0, False, "d", z)
>>> for i in range(60):
...     z = (i % 7 - 3) / 2
...     result = scorer.update(float(i), {"a": pt("a", z), "b": pt("b", z)})
>>> result.status, 0.0 <= result.score <= 1.0
('ok', True)
>>> odd = scorer.update(60.0, {"a": pt("a", 2.5), "b": pt("b", -2.5)})
>>> odd.score > result.score, odd.top
(True, 'a')
>>> params = {"n_trees": 3, "height": 4, "window_size": 20}
>>> EntityScorer.from_bytes(scorer.to_bytes(), params).to_bytes() == scorer.to_bytes()
True
"""

from __future__ import annotations

import math
import sys
import zlib
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .calibration import TailCalibrator
from .codec import Reader, Writer
from .config import EngineConfig
from .detectors.base import CAL_RATE, Bounds, check_forest, check_params
from .records import ScoredPoint

_MAGIC = b"TSE1"
NEUTRAL = 0.5
DEFAULTS: dict[str, float] = {
    "n_trees": 10,
    "height": 8,
    "window_size": 250,
    "scale": 1.0,  # z is divided by this before Phi (1.0 resolved joint breaks best)
    "max_metrics": 16,
    "cal_rate": 0.05,
}
# a forest's size is memory and time per entity (as the river_hst detector's)
BOUNDS: dict[str, Bounds] = {
    "n_trees": (1.0, 50.0, True),
    "height": (1.0, 12.0, True),
    "window_size": (1.0, 65_535.0, True),
    "scale": (1e-6, 1e6, False),
    "max_metrics": (1.0, 1024.0, True),
    "cal_rate": CAL_RATE,
}
_SQRT2 = math.sqrt(2.0)


def check_entity_params(params: Mapping[str, Any]) -> None:
    """Reject an entity rule's unknown parameters and values out of :data:`BOUNDS`, with
    the parameter's name (a ``window_size`` of ``"abc"`` was an unnamed ``int()`` error)."""
    check_params(params, set(DEFAULTS), "entity scorer", BOUNDS)
    check_forest(params, DEFAULTS, "entity scorer")


Ranked = tuple[tuple[str, float, float | None], ...]  # (metric, score, z), best first


@dataclass(frozen=True, slots=True)
class EntityScore:
    """The entity-level result of one reading."""

    entity: str
    ts: float
    score: float  # calibrated in [0, 1]; 0.0 while warming up or without usable metrics
    status: str  # "ok", "warmup" (first HST window) or "empty" (no usable metric)
    top: str | None  # the metric that contributed most (highest score, then |z|)
    ranked: Ranked  # at most three metrics, best first


def usable(point: ScoredPoint) -> bool:
    """Scored, accepted and past its series' warm-up."""
    return point.status == "ok" and point.score is not None


def rank(points: Mapping[str, ScoredPoint], limit: int = 3) -> Ranked:
    """Usable metrics by contribution: calibrated score, then ``|z|``, then name."""
    rows = [(m, p.score, p.z) for m, p in points.items() if usable(p) and p.score is not None]
    rows.sort(key=lambda r: (-r[1], -abs(r[2] or 0.0), r[0]))
    return tuple(rows[:limit])


class EntityScorer:
    """HalfSpaceTrees on the scaled residuals of all metrics of one entity."""

    __slots__ = ("cal", "entity", "max_metrics", "metrics", "model", "n", "params", "scale", "seed")

    def __init__(self, entity: str, params: Mapping[str, Any] | None = None, seed: int = 0) -> None:
        raw = dict(params or {})
        check_entity_params(raw)
        p = {**DEFAULTS, **raw}
        self.entity = entity
        self.params = p
        self.seed = (zlib.crc32(entity.encode()) ^ seed) & 0x7FFFFFFF
        self.scale = float(p["scale"])
        self.max_metrics = int(p["max_metrics"])
        self.cal = TailCalibrator(q_lo=0.5, q_hi=0.8, rate=float(p["cal_rate"]))
        self.metrics: list[str] = []  # the features, in order of first appearance
        self.model: Any = self._new_model()
        self.n = 0  # readings learned since the trees were (re)built

    @classmethod
    def for_entity(cls, entity: str, config: EngineConfig) -> EntityScorer | None:
        """The scorer ``config`` enables for ``entity`` (``None`` when no rule does)."""
        params = config.entity_params(entity)
        return None if params is None else cls(entity, params, config.seed)

    def _new_model(self) -> Any:
        from river import anomaly

        p = self.params
        return anomaly.HalfSpaceTrees(
            n_trees=int(p["n_trees"]),
            height=int(p["height"]),
            window_size=int(p["window_size"]),
            seed=self.seed,
        )

    def features(self, points: Mapping[str, ScoredPoint]) -> dict[str, float]:
        """The HST input of one reading: ``Phi(z / scale)`` per known metric."""
        x = dict.fromkeys(self.metrics, NEUTRAL)
        for metric, point in points.items():
            if metric in x and usable(point):
                z = point.z if point.z is not None and math.isfinite(point.z) else 0.0
                x[metric] = 0.5 * math.erfc(-z / (self.scale * _SQRT2))
        return x

    def update(self, ts: float, points: Mapping[str, ScoredPoint]) -> EntityScore:
        """Score one reading against the past, then learn from it."""
        ranked = rank(points)
        if not ranked:
            return EntityScore(self.entity, ts, 0.0, "empty", None, ranked)
        new = [m for m in sorted(points) if m not in self.metrics and usable(points[m])]
        room = self.max_metrics - len(self.metrics)
        if new and room > 0:
            self.metrics.extend(new[:room])
            self.model = self._new_model()
            self.n = 0
        x = self.features(points)
        model = self.model
        raw = model.score_one(x)
        model.learn_one(x)
        self.n += 1
        if self.n <= model.window_size:  # HST scores mean nothing before a full window
            return EntityScore(self.entity, ts, 0.0, "warmup", ranked[0][0], ranked)
        score = self.cal.score_learn(float(raw))
        return EntityScore(self.entity, ts, score, "ok", ranked[0][0], ranked)

    def to_bytes(self) -> bytes:
        """Compact state: the trees come back from the seed, only their masses are kept."""
        w = Writer()
        w.blob(_MAGIC)
        w.text(self.entity)
        w.raw("I", self.seed)
        w.u32(len(self.metrics))
        for metric in self.metrics:
            w.text(metric)
        model = self.model
        w.raw("II?", self.n, model.counter, model._first_window)
        w.floats(self.cal.state())
        counts: list[int] = []
        for nodes in model._tree_nodes:
            counts += [node.l_mass for node in nodes]
            counts += [node.r_mass for node in nodes]
        masses = array("H", counts)  # a mass never exceeds window_size (< 2**16)
        if sys.byteorder == "big":
            masses.byteswap()
        w.blob(zlib.compress(masses.tobytes(), 6))
        return w.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes, params: Mapping[str, Any] | None = None) -> EntityScorer:
        """Restore a scorer with ``params`` (normally ``config.entity_params(entity)``).

        If the trees' size in ``params`` changed since the state was written, the
        trees start afresh (one window of warm-up) and the rest is kept.
        """
        r = Reader(blob)
        if r.blob() != _MAGIC:
            raise ValueError("not a tsguard entity state")
        scorer = cls(r.text(), params)
        (seed,) = r.raw("I")
        scorer.seed = int(seed)
        scorer.metrics = [r.text() for _ in range(r.u32())]
        n, counter, first_window = r.raw("II?")
        scorer.cal.set_state(*r.floats())
        masses = array("H")
        masses.frombytes(zlib.decompress(r.blob()))
        if sys.byteorder == "big":
            masses.byteswap()
        model = scorer.model = scorer._new_model()
        if not masses:
            return scorer
        model.learn_one(dict.fromkeys(scorer.metrics, NEUTRAL))  # rebuilds the same trees
        if len(masses) != 2 * sum(len(nodes) for nodes in model._tree_nodes):
            scorer.model = scorer._new_model()
            return scorer
        pos = 0
        for nodes in model._tree_nodes:
            size = len(nodes)
            for i, node in enumerate(nodes, pos):
                node.l_mass, node.r_mass = masses[i], masses[i + size]
            pos += 2 * size
        scorer.n, model.counter, model._first_window = int(n), int(counter), bool(first_window)
        return scorer

    def state_size(self) -> int:
        """Bytes of serialised state."""
        return len(self.to_bytes())


def _fmt_score(score: float) -> str:
    """Enough decimals to show how close to 1 a score is (0.995, 0.99993)."""
    nines = int(-math.log10(max(1.0 - score, 1e-9)))
    return f"{score:.{min(max(nines + 1, 3), 9)}f}"


def explain_entity(
    points: Mapping[str, ScoredPoint], score: EntityScore | None = None
) -> str | None:
    """Which metric of a multivariate reading contributed most (``None`` if under two).

    >>> def pt(m, s, z):
    ...     return ScoredPoint("e", m, 0.0, 1.0, "ok", True, s, 0.0, -1.0, 1.0, False, "d", z)
    >>> text = explain_entity({"temperature": pt("temperature", 0.99993, 5.2),
    ...                 "vibration": pt("vibration", 0.995, -3.1), "rpm": pt("rpm", 0.3, 0.2)})
    >>> print(text.encode("ascii", "replace").decode())
    entity: temperature most unusual (score 0.99993, 5.2? above expected); also vibration 0.995
    >>> explain_entity({"temperature": pt("temperature", 0.99993, 5.2)}) is None
    True
    """
    ranked = rank(points)
    if len(ranked) < 2:
        return None
    metric, top_score, z = ranked[0]
    detail = f"score {_fmt_score(top_score)}"
    if z is not None and math.isfinite(z):
        detail += f", {abs(z):.1f}\N{GREEK SMALL LETTER SIGMA} {'above' if z >= 0 else 'below'}"
        detail += " expected"
    text = f"entity: {metric} most unusual ({detail})"
    also = [f"{m} {_fmt_score(s)}" for m, s, _ in ranked[1:] if s >= 0.99]
    if also:
        text += "; also " + ", ".join(also)
    if score is not None and score.status == "ok":
        text += f"; joint score {_fmt_score(score.score)}"
    return text
