"""``tsguard bench pipeline --json`` runs end to end at tiny sizes (no timing assertions)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from stream_app.settings import Settings

TSGUARD = str(Path(sys.executable).with_name("tsguard"))
KEYS = (
    "readings_per_s",
    "bare_consumer_per_s",
    "ratio",
    "decode_store_per_s",
    "ratio_decode_store",
    "p50_ms",
    "p99_ms",
    "offered_per_s",
)


@pytest.mark.integration
def test_bench_pipeline_prints_positive_numbers(
    settings: Settings, kafka_bootstrap: str, pg_conninfo: str
) -> None:
    done = subprocess.run(
        [
            TSGUARD,
            "bench",
            "pipeline",
            "--json",
            "--readings",
            "2000",
            "--entities",
            "40",
            "--offered-rate",
            "400",
            "--seconds",
            "2",
        ],
        capture_output=True,
        timeout=240,
        check=False,
        env={**os.environ, "TSGUARD_WORKER_BATCH_SIZE": "200"},
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    result = orjson.loads(done.stdout)
    for key in KEYS:
        assert isinstance(result[key], int | float) and result[key] > 0, (key, result)
    assert result["p99_ms"] >= result["p50_ms"]
    assert result["readings"] == 2000
    assert result["latency_readings"] > 0


def test_bench_pipeline_refuses_a_backlog_too_small_to_time() -> None:
    done = subprocess.run(
        [TSGUARD, "bench", "pipeline", "--json", "--readings", "2000"],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "TSGUARD_WORKER_BATCH_SIZE": "1000"},
    )
    assert done.returncode == 2
    text = " ".join(done.stderr.decode().replace("│", " ").split())  # rich wraps the box
    assert "needs at least 4 x TSGUARD_WORKER_BATCH_SIZE (1000) readings" in text
