"""A worker checks the topics it reads against the real Kafka of the stack."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import TYPE_CHECKING

import pytest

from stream_app.settings import Settings
from stream_app.worker.topics import labels_partition_problem
from tests.cli import tsguard

if TYPE_CHECKING:
    from conftest import FreshTopic

pytestmark = pytest.mark.integration


async def test_a_worker_refuses_a_labels_topic_partitioned_otherwise_than_its_readings(
    settings: Settings, fresh_topic: FreshTopic
) -> None:
    """A labels' topic of one partition (the broker's auto-creation when the API published
    a label before any worker made the topics) took every label to the one worker
    assigned it: with two workers, 5 of 8 labels were dead-lettered "no model of ...
    here" by a worker that did not hold their entities. The worker exits 2 saying so."""
    names = {
        "readings": await fresh_topic("readings", partitions=4),
        "feedback": await fresh_topic("feedback", partitions=1),
    }
    for kind in ("anomalies", "deadletter", "groundtruth", "control"):
        names[kind] = await fresh_topic(kind)  # the worker creates none of its own
    env = {f"TSGUARD_TOPIC_{kind.upper()}": name for kind, name in names.items()}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        env["TSGUARD_WORKER_WEB_PORT"] = str(probe.getsockname()[1])
    env["TSGUARD_CONSUMER_GROUP"] = f"it-topics-{uuid.uuid4().hex[:10]}"
    done = await asyncio.to_thread(tsguard, "worker", "--no-migrate-db", **env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        f"tsguard: topic {names['feedback']} has 1 partition(s) and {names['readings']} 4: "
        "a label must come through the partition of its entity's readings; re-create "
        f"{names['feedback']} with 4 partitions (tsguard topics create makes it so when it "
        "is missing)"
    ]
    same = await fresh_topic("feedback", partitions=4)
    fitting = settings.model_copy(
        update={"topic_readings": names["readings"], "topic_feedback": same}
    )
    assert await labels_partition_problem(fitting) is None
