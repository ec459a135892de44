"""Metrics counted per batch read the same as metrics counted per reading."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry

from stream_app.metrics import LATENCY_BUCKETS, build_metrics, observe_many


def _histogram(registry: CollectorRegistry, name: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.startswith(name) and not sample.name.endswith("_created"):
                samples[f"{sample.name}{sorted(sample.labels.items())}"] = sample.value
    return samples


@pytest.mark.parametrize(
    "values",
    [
        [],
        [0.0],
        [-3.0, 0.0004, 0.0005, 0.00051, 2.5, 31.0, 1e9],
        [*LATENCY_BUCKETS, *(b * 1.000001 for b in LATENCY_BUCKETS)],
        [0.001 * i for i in range(3000)],
    ],
)
def test_observe_many_fills_the_buckets_observe_does(values: list[float]) -> None:
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    single, many = build_metrics(one_by_one), build_metrics(batched)
    for value in values:
        single.scoring_latency.observe(max(value, 0.0))
    observe_many(many.scoring_latency, values)
    name = "tsguard_event_to_scored_seconds"
    expected, got = _histogram(one_by_one, name), _histogram(batched, name)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-12, abs_tol=1e-12), key


def test_a_delay_of_minutes_is_told_from_one_of_seconds() -> None:
    """The latency panels' quantiles read a delay past the last finite bucket as that
    bucket: with 30 s the last, readings 10 minutes late showed a p99 of 30 s."""
    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    observe_many(metrics.scoring_latency, [600.0] * 99 + [0.01])
    buckets = {
        float(s.labels["le"]): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == "tsguard_event_to_scored_seconds_bucket"
    }
    assert buckets[30.0] == 1.0  # only the fast one
    assert buckets[300.0] == 1.0
    assert buckets[900.0] == 100.0  # the ten-minute delays have a finite bucket
