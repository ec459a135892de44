"""What a restarted worker reads again, against the real Kafka and PostgreSQL of the stack.

A worker starts reading each partition at its group's committed offset. After a
SIGTERM that committed everything, nothing is read twice; after a kill -9, what was
stored since the last checkpoint and commit is read again: readings the saved state
had already learned are skipped as replayed, the rest are scored again.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from stream_app.worker.faust_compat import start_offsets
from tests.integration.pipeline.harness import Pipeline, wait_for
from tests.integration.pipeline.streams import labelled_stream
from tests.integration.pipeline.test_restart_drills import _sample, _scored

pytestmark = pytest.mark.integration


def _label(pipe: Pipeline, entities: list[str], label: str) -> None:
    """An operator's label of each entity's temperature series, as the API sends it
    (key = entity: the readings' partition)."""
    docs = ({"entity": e, "metric": "temperature", "label": label} for e in entities)
    pipe.produce(
        ((d["entity"].encode(), orjson.dumps(d)) for d in docs), pipe.settings.topic_feedback
    )


def _committed_labels(pipe: Pipeline) -> int:
    settings = pipe.settings
    keys = [(settings.topic_feedback, p) for p in range(settings.topic_partitions)]
    return sum(asyncio.run(start_offsets(settings, keys)).values())


def test_labels_waiting_at_a_restart_are_applied_once(pipeline: Pipeline) -> None:
    """Faust resumes the stream partitions before it seeks them to their committed
    offsets (see ``BatchingConsumer.perform_seek``): labels fetched meanwhile were
    applied, and applied again after the seek put their partitions back. A label is
    not idempotent: a false positive applied twice quadruples the series' margin
    instead of doubling it. The 1 ms fetch wait makes the fetch come within the seek;
    the labels of each round that come last follow any second read in every partition."""
    readings, _ = labelled_stream(entities=40, metrics=("temperature",), points=20, seed=43)
    entities = sorted({r["entity"] for r in readings})
    env = {"TSGUARD_WORKER_FETCH_MAX_WAIT_MS": "1"}
    true_positive = 'tsguard_feedback_total{label="true_positive"}'
    false_positive = 'tsguard_feedback_total{label="false_positive"}'
    worker = pipeline.start_worker("w0", env=env)
    pipeline.produce_readings(readings)
    wait_for(lambda: _scored(pipeline) >= len(readings), timeout=90, what="the readings stored")
    # labels taken and committed: the group's feedback offsets are past 0 (a committed 0
    # is no seek), and a restart seeks the feedback partitions back to them
    _label(pipeline, entities, "true_positive")
    wait_for(lambda: _sample(worker, true_positive) == 40, timeout=60, what="the labels applied")
    assert worker.terminate(timeout=40) == 0, worker.log_tail()
    labelled = 40
    assert _committed_labels(pipeline) == labelled
    applied = []
    for n in range(1, 4):
        _label(pipeline, entities, "false_positive")  # waiting when the worker starts
        worker = pipeline.start_worker(f"w{n}", env=env)
        wait_for(
            lambda w=worker: (_sample(w, false_positive) or 0) >= 40,  # type: ignore[misc]
            timeout=60,
            what=f"round {n}'s labels applied",
        )
        _label(pipeline, entities, "true_positive")  # after them, in every partition
        wait_for(
            lambda w=worker: (_sample(w, true_positive) or 0) >= 40,  # type: ignore[misc]
            timeout=60,
            what=f"round {n}'s last labels applied",
        )
        applied.append(_sample(worker, false_positive))
        assert worker.terminate(timeout=40) == 0, worker.log_tail()
        labelled += 80
        assert _committed_labels(pipeline) == labelled  # the stop committed every label
    assert applied == [40.0] * 3, f"labels applied per worker (40 sent each time): {applied}"
    letters = pipeline.consume(pipeline.settings.topic_deadletter, min_count=1, timeout=3)
    assert letters == [], letters[:3]
