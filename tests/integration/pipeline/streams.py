"""Generated labelled streams for the pipeline tests (no files, no /work/shared)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Injected:
    entity: str
    metric: str
    kind: str
    start: float
    end: float


def labelled_stream(
    *,
    entities: int = 6,
    metrics: tuple[str, ...] = ("temperature", "pressure"),
    points: int = 600,
    step_s: float = 60.0,
    start_ts: float = 1_790_000_000.0,
    seed: int = 7,
) -> tuple[list[dict[str, Any]], list[Injected]]:
    """Readings in event-time order, and the anomalies injected into them.

    Each series is a daily cycle plus noise; every series gets one anomaly
    (alternating spike and level shift) somewhere after the warm-up.
    """
    rng = random.Random(seed)
    truth: list[Injected] = []
    plans: dict[tuple[str, str], tuple[str, int, int, float]] = {}
    for e in range(entities):
        for m_index, metric in enumerate(metrics):
            kind = "spike" if (e + m_index) % 2 == 0 else "level_shift"
            begin = rng.randrange(points // 3, max(points - 120, points // 3 + 1))
            length = 3 if kind == "spike" else 40
            plans[(f"site-{e}/dev-{e}", metric)] = (
                kind,
                begin,
                length,
                1 if rng.random() < 0.5 else -1,
            )
    readings: list[dict[str, Any]] = []
    for i in range(points):
        ts = start_ts + i * step_s
        for e in range(entities):
            entity = f"site-{e}/dev-{e}"
            values: dict[str, float] = {}
            for m_index, metric in enumerate(metrics):
                base = 50.0 + 10 * m_index + 5.0 * math.sin(2 * math.pi * i * step_s / 86_400)
                value = base + rng.gauss(0.0, 1.0)
                kind, begin, length, sign = plans[(entity, metric)]
                if begin <= i < begin + length:
                    value += sign * (12.0 if kind == "spike" else 9.0)
                values[metric] = round(value, 4)
            readings.append({"entity": entity, "ts": ts, "metrics": values, "source": "test"})
    for (entity, metric), (kind, begin, length, _) in sorted(plans.items()):
        truth.append(
            Injected(
                entity,
                metric,
                kind,
                start_ts + begin * step_s,
                start_ts + (begin + length - 1) * step_s,
            )
        )
    return readings, truth


def _overlaps(t: Injected, ep: dict[str, Any], slack_s: float) -> bool:
    return (
        ep["entity"] == t.entity
        and ep["metric"] == t.metric
        and ep["start"] <= t.end + slack_s
        and ep["end"] >= t.start - slack_s
    )


def recall_precision(
    truth: list[Injected], episodes: list[dict[str, Any]], slack_s: float
) -> tuple[float, float]:
    """Share of injected anomalies hit by an episode, and of episodes that hit one."""
    hit_truth = sum(1 for t in truth if any(_overlaps(t, ep, slack_s) for ep in episodes))
    good = sum(1 for ep in episodes if any(_overlaps(t, ep, slack_s) for t in truth))
    recall = hit_truth / len(truth) if truth else 1.0
    precision = good / len(episodes) if episodes else 1.0
    return recall, precision
