"""EntityProcessor: the worker and the offline tools take the same per-reading step."""

from __future__ import annotations

import math
import random

import orjson

from stream_app.core import EngineConfig, EntityProcessor
from stream_app.offline.replay import score_series
from stream_app.worker.decode import ReadingDecoder
from stream_app.worker.feed import Record
from stream_app.worker.scoring import ReadingScorer
from stream_app.worker.states import EntityStates

T0 = 1_790_000_000.0


def _series(n: int) -> tuple[list[float], list[float | None]]:
    rng = random.Random(5)
    values: list[float | None] = []
    for i in range(n):
        value = 20 + 3 * math.sin(i / 40) + rng.gauss(0, 0.3) + (9.0 if i in (250, 251) else 0.0)
        values.append(None if i == 120 else value)
    return [T0 + 60 * i for i in range(n)], values


def test_replay_scores_exactly_what_the_worker_scores() -> None:
    timestamps, values = _series(400)
    config = EngineConfig.default()
    offline = score_series("plant/pump-1", "temperature", timestamps, values, config)
    worker = ReadingScorer(EntityStates(config, {}.get), ReadingDecoder(max_future_s=1e12))
    messages = [
        Record(
            orjson.dumps({"entity": "plant/pump-1", "ts": ts, "metrics": {"temperature": v}}),
            b"plant/pump-1",
            "r",
            0,
            i,
        )
        for i, (ts, v) in enumerate(zip(timestamps, values, strict=True))
    ]
    rows = worker.process(messages, now=timestamps[-1]).rows
    assert [r.score for r in rows] == offline.scores
    assert [r.status for r in rows] == offline.status
    assert any(offline.is_anomaly)


def test_a_value_episode_of_a_multi_metric_reading_names_its_most_unusual_metric() -> None:
    proc = EntityProcessor.create("plant/pump-1", EngineConfig.default())
    timestamps, values = _series(400)
    opened = []
    for ts, v in zip(timestamps, values, strict=True):
        step = proc.process(ts, {"temperature": v, "pressure": 5.0 + 0.01 * math.cos(ts)})
        opened += [e for e in step.events if e.event == "opened" and e.kind == "value"]
    assert opened and all("most unusual" in e.explanation for e in opened)


def test_silence_is_judged_against_the_given_watermark_from_a_resumption() -> None:
    proc = EntityProcessor.create("site/dev-1", EngineConfig.default())
    for i in range(200):
        proc.process(T0 + 10 * i, {"t": 20.0 + (i % 3)})
    last = T0 + 10 * 199
    # The whole source was quiet for an hour and resumed just now: not silent yet.
    assert proc.advance(last + 3600, resumed_at=last + 3590) == []
    # Without the resumption the same watermark makes the series silent.
    assert [e.kind for e in proc.advance(last + 3600)] == ["silence"]


def test_an_entity_that_keeps_naming_new_metrics_stops_at_max_series() -> None:
    # A producer that puts a request id in the metric name: every reading a new series.
    from stream_app.core.entity_processor import MAX_SERIES

    proc = EntityProcessor.create("gateway-1", EngineConfig.default())
    refused = []
    for i in range(MAX_SERIES + 200):
        step = proc.process(T0 + 60 * i, {"temperature": 20.0 + (i % 3), f"req-{i}": 1.0})
        assert step.points["temperature"].accepted
        point = step.points[f"req-{i}"]
        if not point.accepted:
            assert point.status == "too_many_series" and point.score is None
            refused.append(i)
    # temperature is one of the entity's series: the first MAX_SERIES - 1 request ids fit
    assert len(proc.series) == MAX_SERIES
    assert refused == list(range(MAX_SERIES - 1, MAX_SERIES + 200))
    # Its saved state holds MAX_SERIES series, and restores with them.
    states = EntityStates(EngineConfig.default(), {}.get)
    states._live["gateway-1"] = proc
    blob = states.dump("gateway-1")
    again = EntityStates(EngineConfig.default(), {"gateway-1": blob}.get).entity("gateway-1")
    assert sorted(again.series) == sorted(proc.series)


def test_the_worker_dead_letters_the_points_of_metrics_an_entity_has_no_room_for() -> None:
    from stream_app.core.entity_processor import MAX_SERIES

    scorer = ReadingScorer(
        EntityStates(EngineConfig.default(), {}.get), ReadingDecoder(max_future_s=1e12)
    )
    messages = []
    for i in range(MAX_SERIES + 10):
        doc = {"entity": "gw", "ts": T0 + 60 * i, "metrics": {"t": 20.0, f"req-{i}": 1.0}}
        messages.append(Record(orjson.dumps(doc), b"gw", "r", 0, i))
    out = scorer.process(messages, now=T0)
    assert out.readings_ok == MAX_SERIES + 10
    reasons = [d["reason"] for d in out.deadletters]
    assert reasons == ["rejected_point"] * 11
    assert all(
        d["detail"].endswith(f"as one series too many (an entity keeps at most {MAX_SERIES})"
                             " (too_many_series)")
        for d in out.deadletters
    )  # fmt: skip
    assert out.statuses.get("too_many_series") == 11
