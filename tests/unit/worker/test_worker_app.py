"""The Faust-facing worker object, in process (no broker is contacted)."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

import stream_app.worker.app as worker_app
from stream_app import cli
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


def test_a_state_store_the_worker_cannot_write_is_refused_at_start() -> None:
    # Faust's RocksDB store asserts on a current stream event in every write; the
    # worker's checkpoints write outside one and would fail forever.
    with pytest.raises(ValidationError, match="memory://"):
        load_settings(worker_store="rocksdb://")


def test_a_batch_that_fails_after_scoring_logs_its_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    worker = worker_app.Worker(
        load_settings(topic_readings="it.readings.app"),
        build_metrics(CollectorRegistry()),
        {},
        sink=ListSink(),
    )
    exits: list[int] = []
    monkeypatch.setattr(worker_app.os, "_exit", exits.append)
    monkeypatch.setattr(logging, "shutdown", lambda: None)
    try:
        raise AssertionError  # a bare assertion says nothing without its traceback
    except AssertionError as exc:
        worker._fatal(exc)
    assert exits == [STALL_EXIT_CODE]
    [record] = [r for r in caplog.records if "batch failed" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is AssertionError


def test_invalid_settings_end_the_command_with_one_line_each_and_no_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TSGUARD_WORKER_STORE", "rocksdb://")
    monkeypatch.setenv("TSGUARD_WORKER_BATCH_SIZE", "0")
    monkeypatch.setenv("TSGUARD_PG_POOL_MAX", "s3cret-not-a-number")
    monkeypatch.setattr("sys.argv", ["tsguard", "worker"])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert "TSGUARD_WORKER_STORE: Input should be 'memory://'" in err
    assert "TSGUARD_WORKER_BATCH_SIZE: Input should be greater than or equal to 1" in err
    assert "TSGUARD_PG_POOL_MAX:" in err and "s3cret" not in err
