"""A private pipeline (topics, consumer group, schema) per test, with real workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream_app.settings import Settings
from tests.integration.pipeline.harness import Pipeline, make_pipeline


@pytest.fixture
def pipeline(
    settings: Settings, kafka_bootstrap: str, fresh_schema: Any, tmp_path: Path
) -> Iterator[Pipeline]:
    pipe = make_pipeline(settings, fresh_schema.conninfo, tmp_path)
    pipe.env["TSGUARD_WORKER_SESSION_TIMEOUT_S"] = "6"
    try:
        yield pipe
    finally:
        for worker in pipe.workers:
            if worker.alive():
                print(f"--- {worker.name} log tail ---\n{worker.log_tail(60)}")
        pipe.close()
