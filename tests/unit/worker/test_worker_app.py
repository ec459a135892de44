"""The Faust-facing worker object, in process (no broker is contacted)."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

import stream_app.worker.app as worker_app
from stream_app.metrics import build_metrics
from stream_app.settings import load_settings
from stream_app.worker.faust_compat import STALL_EXIT_CODE
from tests.unit.worker.test_worker_core import ListSink


async def test_a_worker_whose_scoring_loop_dies_exits_to_be_restarted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Faust would log the crashed agent and keep serving /metrics, consuming nothing."""
    worker = worker_app.Worker(
        load_settings(topic_readings="it.readings.app"),
        build_metrics(CollectorRegistry()),
        {},
        sink=ListSink(),
    )

    async def dies() -> None:
        raise RuntimeError("an unexpected failure in the batch loop")

    exits: list[int] = []
    monkeypatch.setattr(worker.core, "run", dies)
    monkeypatch.setattr(worker_app.os, "_exit", exits.append)
    monkeypatch.setattr(logging, "shutdown", lambda: None)
    await worker._score_readings(None)
    assert exits == [STALL_EXIT_CODE]
