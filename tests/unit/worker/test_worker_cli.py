"""The worker's command-line options that guard data."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from stream_app.cli import app


@pytest.mark.parametrize("days", ["0", "-5"])
def test_db_retention_keeps_at_least_a_day(days: str) -> None:
    # --days 0 would have deleted every observation up to now; refused before any
    # connection (none is configured here: the refusal cannot be a connection error)
    env = {"TSGUARD_PG_DSN": "postgresql://nobody@127.0.0.1:1/none"}
    result = CliRunner().invoke(app, ["db", "retention", "--days", days], env=env)
    assert result.exit_code == 2
    assert "--days" in result.output and "1" in result.output
    assert "deleted" not in result.output


def test_a_web_port_in_use_is_said_before_kafka_is_touched() -> None:
    """Faust found a taken /metrics port only once it had started, and ended in a
    traceback; the worker now says so first, with nothing to reach (Kafka at port 1)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "TSGUARD_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "TSGUARD_WORKER_WEB_HOST": "127.0.0.1",
        }
        result = CliRunner().invoke(app, ["worker", "--web-port", str(port)], env=env)
    said = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2, result.output
    assert f"cannot serve /metrics on 127.0.0.1:{port}: Address already in use" in said
    assert "Kafka" not in said and "Traceback" not in said
