"""Result records of the detector core: one :class:`ScoredPoint` per input
point and :class:`EpisodeEvent` for the lifecycle of an anomaly episode.

>>> p = ScoredPoint("e", "m", 10.0, 1.5, "ok", True, 0.2, 1.4, 1.0, 1.8, False, "ewma_z")
>>> p.score, p.is_anomaly
(0.2, False)
>>> severity_for(0.99999, threshold=0.999)
'high'
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

EventKind = Literal["opened", "updated", "resolved"]
EpisodeKind = Literal["value", "silence", "stuck"]
Severity = Literal["low", "medium", "high", "critical"]
Direction = Literal["up", "down", "none"]

SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")

# Statuses a ScoredPoint can carry; everything but "ok" and "warmup" is a
# rejection reason that the caller dead-letters.
STATUS_OK = "ok"
STATUS_WARMUP = "warmup"
REJECTION_REASONS = (
    "non_finite",
    "bad_timestamp",
    "out_of_limits",
    "duplicate",
    "late",
    "missing",
    "too_many_series",
)


@dataclass(slots=True)
class ScoredPoint:
    """The outcome of one input point (see CONTRACT.md)."""

    entity: str
    metric: str
    ts: float
    value: float | None
    status: str
    accepted: bool
    score: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    is_anomaly: bool
    detector: str
    # signed deviation from expected in robust standard deviations (accepted
    # points only); last and optional so positional construction keeps working
    z: float | None = None


@dataclass(frozen=True, slots=True)
class EpisodeEvent:
    """One lifecycle event of an episode: ``opened``, ``updated`` or ``resolved``."""

    event: EventKind
    episode_id: str
    entity: str
    metric: str
    kind: EpisodeKind
    started_at: float
    ended_at: float | None
    ts: float
    value: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    score: float
    peak_score: float
    severity: Severity
    direction: Direction
    detector: str
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite floats become ``None``)."""
        out = asdict(self)
        for key, val in out.items():
            if isinstance(val, float) and not math.isfinite(val):
                out[key] = None
        return out


def episode_id(entity: str, metric: str, kind: str, started_at: float) -> str:
    """Deterministic id of an episode: the same inputs give the same id after a replay.

    >>> episode_id("plant-3/pump-7", "temperature", "value", 1.0) == episode_id(
    ...     "plant-3/pump-7", "temperature", "value", 1.0)
    True
    """
    key = f"{entity}\x1f{metric}\x1f{kind}\x1f{started_at!r}".encode()
    return hashlib.blake2b(key, digest_size=8).hexdigest()


def severity_for(score: float, threshold: float) -> Severity:
    """Severity from how far the tail probability ``1 - score`` is below the
    threshold's: within 10x is ``low``, 10-100x ``medium``, 100-1000x ``high``,
    beyond ``critical``."""
    p_thr = max(1.0 - threshold, 1e-300)
    p = 1.0 - score
    if p > p_thr * 0.1:
        return "low"
    if p > p_thr * 0.01:
        return "medium"
    if p > p_thr * 0.001:
        return "high"
    return "critical"
