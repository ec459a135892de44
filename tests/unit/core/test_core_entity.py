"""Entity-level scoring of multivariate entities and its explanation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream_app.core import EngineConfig, ScoredPoint, SeriesProcessor
from stream_app.core.entity import EntityScore, EntityScorer, explain_entity
from tests.unit.core.core_streams import auc

SMALL = {"n_trees": 5, "height": 6, "window_size": 50}
Reading = dict[str, float | None]


def point(metric: str, score: float, z: float) -> ScoredPoint:
    return ScoredPoint("pump-7", metric, 0.0, z, "ok", True, score, 0.0, -1.0, 1.0, False, "d", z)


def correlated_stream(
    seed: int, n: int = 2500, start: int = 600
) -> tuple[list[Reading], list[int]]:
    """Three metrics driven by one shared factor; every 100 readings from ``start``
    the vibration's link to it flips sign: each metric is about one sigma off,
    jointly the reading is very unusual. Labels are 1 on those readings."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(0.0, 1.0, n)
    readings: list[Reading] = []
    labels = [0] * n
    for i in range(n):
        sign = 1.0
        if i >= start and (i - start) % 100 == 0:
            factor[i] = float(rng.choice([-1.0, 1.0]))
            sign, labels[i] = -1.0, 1
        f = float(factor[i])
        readings.append(
            {
                "temperature": 70.0 + 2.0 * f + float(rng.normal(0.0, 0.5)),
                "vibration": 5.0 + sign * 0.4 * f + float(rng.normal(0.0, 0.1)),
                "pressure": 30.0 - 1.5 * f + float(rng.normal(0.0, 0.4)),
            }
        )
    return readings, labels


def score_stream(
    readings: list[Reading], scorer: EntityScorer
) -> list[tuple[dict[str, ScoredPoint], EntityScore]]:
    """What the worker does per reading: every series processor, then the entity."""
    procs: dict[str, SeriesProcessor] = {}
    out = []
    for i, reading in enumerate(readings):
        points = {}
        for metric, value in reading.items():
            proc = procs.setdefault(metric, SeriesProcessor.create("pump-7", metric))
            points[metric] = proc.process(60.0 * i, value)[0]
        out.append((points, scorer.update(60.0 * i, points)))
    return out


def entity_scores(results: list[tuple[dict[str, ScoredPoint], EntityScore]]) -> list[float]:
    return [r.score for _, r in results]


def test_joint_anomaly_scores_above_normal_readings() -> None:
    readings, labels = correlated_stream(1)
    results = score_stream(readings, EntityScorer("pump-7"))  # default size 10/8/250
    skip = 400  # series and trees warming up
    joint = entity_scores(results)[skip:]
    alone = [max(p.score or 0.0 for p in pts.values()) for pts, _ in results][skip:]
    assert auc(joint, labels[skip:]) > 0.8
    # the per-metric scores alone barely see it: the entity score adds information
    assert auc(joint, labels[skip:]) > auc(alone, labels[skip:]) + 0.1


def test_top_contributor_is_the_spiking_metric() -> None:
    readings, _ = correlated_stream(2, n=800, start=10_000)
    readings[700]["vibration"] = 5.0 + 8.0 * 0.41  # about 8 sigma, the others normal
    points, result = score_stream(readings, EntityScorer("pump-7", SMALL))[700]
    assert result.status == "ok"
    assert result.top == "vibration"
    assert result.ranked[0][0] == "vibration"
    assert len(result.ranked) == 3
    text = explain_entity(points, result)
    assert text is not None and text.startswith("entity: vibration most unusual (score 0.9")
    assert "above expected" in text


def test_state_round_trip_continues_identically() -> None:
    readings, _ = correlated_stream(3, n=400, start=200)
    scorer = EntityScorer("pump-7", SMALL, seed=5)
    results = score_stream(readings, scorer)
    points = [pts for pts, _ in results]
    first = EntityScorer("pump-7", SMALL, seed=5)
    for i in range(173):  # mid-window, so the masses being filled are kept too
        first.update(60.0 * i, points[i])
    clone = EntityScorer.from_bytes(first.to_bytes(), SMALL)
    assert clone.to_bytes() == first.to_bytes()
    for i in range(173, 400):
        assert clone.update(60.0 * i, points[i]) == first.update(60.0 * i, points[i])
    assert first.to_bytes() == scorer.to_bytes()


def test_fresh_state_round_trips() -> None:
    blob = EntityScorer("pump-7", SMALL).to_bytes()
    assert EntityScorer.from_bytes(blob, SMALL).to_bytes() == blob
    grown = EntityScorer("pump-7", SMALL)
    for i in range(60):
        grown.update(float(i), {"a": point("a", 0.5, (i % 5) / 2.0)})
    resized = EntityScorer.from_bytes(grown.to_bytes(), {**SMALL, "height": 4})
    assert resized.metrics == ["a"] and resized.n == 0  # other tree size: trees start afresh
    with pytest.raises(ValueError, match="entity state"):
        EntityScorer.from_bytes(b"\x04\x00\x00\x00nope")


def test_deterministic_and_no_look_ahead() -> None:
    readings, _ = correlated_stream(4, n=500, start=300)
    a = entity_scores(score_stream(readings, EntityScorer("pump-7", SMALL, seed=3)))
    b = entity_scores(score_stream(readings, EntityScorer("pump-7", SMALL, seed=3)))
    assert a == b
    changed = [dict(r) for r in readings]
    for r in changed[350:]:
        r["temperature"] = (r["temperature"] or 0.0) * 3.0 + 100.0
    c = entity_scores(score_stream(changed, EntityScorer("pump-7", SMALL, seed=3)))
    assert c[:350] == a[:350]
    assert c != a


def test_missing_rejected_and_new_metrics_do_not_crash() -> None:
    readings, _ = correlated_stream(5, n=600, start=300)
    for i, r in enumerate(readings):
        if i % 7 == 0:
            del r["pressure"]
        if i % 11 == 0:
            r["vibration"] = math.nan
        if i % 13 == 0:
            r["temperature"] = None
        if i >= 400:
            r["current"] = 12.0 + (i % 5) * 0.1  # a metric that appears later
    scorer = EntityScorer("pump-7", SMALL)
    results = score_stream(readings, scorer)
    assert all(0.0 <= r.score <= 1.0 for _, r in results)
    statuses = [r.status for _, r in results]
    assert {"empty", "warmup", "ok"} <= set(statuses)
    assert statuses[:30] == ["empty"] * 30  # every series still in its warm-up
    # features in order of each metric's first usable point, the late one last
    assert sorted(scorer.metrics[:3]) == ["pressure", "temperature", "vibration"]
    assert scorer.metrics[3] == "current"
    assert statuses[440] == "warmup"  # the new metric rebuilt the trees
    assert statuses[-1] == "ok"


def test_no_usable_metric_is_neither_scored_nor_learned() -> None:
    scorer = EntityScorer("pump-7", SMALL)
    dup = ScoredPoint(
        "pump-7", "a", 1.0, 2.0, "duplicate", False, None, None, None, None, False, "d"
    )
    assert dup.z is None  # positional construction with 12 fields still works
    before = scorer.to_bytes()
    result = scorer.update(1.0, {"a": dup})
    assert (result.status, result.score, result.top, result.ranked) == ("empty", 0.0, None, ())
    assert scorer.to_bytes() == before
    assert explain_entity({"a": dup}) is None


def test_metrics_beyond_the_cap_are_ranked_not_modelled() -> None:
    scorer = EntityScorer("pump-7", {**SMALL, "max_metrics": 2})
    points = {m: point(m, s, 1.0) for m, s in (("a", 0.1), ("b", 0.2), ("c", 0.9))}
    result = scorer.update(0.0, points)
    assert scorer.metrics == ["a", "b"]
    assert result.top == "c"


def test_entity_scoring_is_enabled_per_config_rule() -> None:
    cfg = EngineConfig.from_mapping(
        {"seed": 2, "entities": [{"pattern": "plant-*", "params": {"window_size": 100}}]}
    )
    scorer = EntityScorer.for_entity("plant-3/pump-7", cfg)
    assert scorer is not None and scorer.model.window_size == 100
    assert EntityScorer.for_entity("bank/fx", cfg) is None
    assert EntityScorer.for_entity("plant-3/pump-7", EngineConfig.default()) is None
    with pytest.raises(ValueError, match="unknown"):
        EngineConfig.from_mapping({"entities": [{"pattern": "x", "oops": 1}]})
    with pytest.raises(ValueError, match="unknown parameters"):
        EntityScorer("e", {"trees": 3})


def test_state_is_compact_at_default_size() -> None:
    readings, _ = correlated_stream(6, n=700, start=10_000)
    scorer = EntityScorer("pump-7")
    score_stream(readings, scorer)
    assert scorer.state_size() < 8_000  # pickle of the same trees: about 170 KB
