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
