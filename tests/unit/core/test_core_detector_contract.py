"""One contract suite, parametrised over every registered detector."""

from __future__ import annotations

import math

from stream_app.core import SeriesProcessor
from tests.unit.core.core_streams import auc, config_for, labelled_stream

N = 900


def run(name: str, ts: list[float], values: list[float | None]) -> list[float | None]:
    proc = SeriesProcessor.create("plant-1/pump-2", "temperature", config_for(name))
    return [proc.process(t, v)[0].score for t, v in zip(ts, values, strict=True)]


def test_deterministic_under_seed(detector_name: str) -> None:
    ts, values, _ = labelled_stream(1, N)
    assert run(detector_name, ts, list(values)) == run(detector_name, ts, list(values))


def test_no_look_ahead(detector_name: str) -> None:
    ts, values, _ = labelled_stream(2, N)
    cut = 600
    changed: list[float | None] = list(values)
    changed[cut:] = [v * 3.0 + 100.0 for v in values[cut:]]
    assert run(detector_name, ts, list(values))[:cut] == run(detector_name, ts, changed)[:cut]


def test_state_round_trip_continues_identically(detector_name: str) -> None:
    ts, values, _ = labelled_stream(3, N)
    cfg = config_for(detector_name)
    proc = SeriesProcessor.create("e", "m", cfg)
    for t, v in zip(ts[:500], values[:500], strict=True):
        proc.process(t, v)
    clone = SeriesProcessor.from_bytes(proc.to_bytes(), cfg)
    for t, v in zip(ts[500:], values[500:], strict=True):
        a, events_a = proc.process(t, v)
        b, events_b = clone.process(t, v)
        assert a == b
        assert events_a == events_b


def test_bad_values_are_rejected_not_raised(detector_name: str) -> None:
    ts, values, _ = labelled_stream(4, 200)
    proc = SeriesProcessor.create("e", "m", config_for(detector_name))
    bad: list[float | None] = [None, math.nan, math.inf, -math.inf]
    statuses = []
    for i, (t, v) in enumerate(zip(ts, values, strict=True)):
        value = bad[i % 4] if i % 7 == 3 else v
        point, _ = proc.process(t, value)
        statuses.append(point.status)
        if not point.accepted:
            assert point.score is None
        else:
            assert point.score is not None and 0.0 <= point.score <= 1.0
    assert {"missing", "non_finite"} <= set(statuses)
    assert "ok" in statuses


def test_better_than_chance_on_labelled_stream(detector_name: str) -> None:
    ts, values, labels = labelled_stream(5, 3000)
    scores = run(detector_name, ts, list(values))
    start = 300  # past warm-up
    kept = [0.0 if s is None else s for s in scores[start:]]
    assert auc(kept, labels[start:]) > 0.7
