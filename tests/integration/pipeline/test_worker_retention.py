"""A running worker applies retention on plain PostgreSQL on its own schedule."""

from __future__ import annotations

import pytest

from tests.integration.pipeline.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration

_INSERT = (
    "INSERT INTO observations (entity, metric, ts, value, is_anomaly, status)"
    " VALUES ('old/1', 'm', now() - interval '40 days', 1, false, 'ok'),"
    " ('new/1', 'm', now() - interval '1 day', 1, false, 'ok') RETURNING entity"
)


def test_worker_deletes_rows_older_than_the_retention(pipeline: Pipeline) -> None:
    worker = pipeline.start_worker("w1", env={"TSGUARD_RETENTION_INTERVAL_S": "1"})
    worker.wait_ready()  # migrations are applied before the worker serves /metrics
    pipeline.sql(_INSERT)
    wait_for(
        lambda: pipeline.count("SELECT count(*) FROM observations WHERE entity = 'old/1'") == 0,
        timeout=30,
        what="the 40-day-old row deleted",
    )
    assert pipeline.sql("SELECT entity FROM observations") == [("new/1",)]
    assert worker.alive()
