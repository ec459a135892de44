"""The simulators' command line: values that cannot make a feed are refused, not run."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from stream_app.cli import app


@pytest.mark.parametrize(
    ("feed", "args", "says"),
    [
        # tracebacks before: ZeroDivisionError, ValueError
        ("iot", ["--devices", "0"], "--devices"),
        ("iot", ["--interval", "nan"], "--interval must be a finite number above 0"),
        ("iot", ["--interval", "0"], "--interval must be a finite number above 0"),
        ("iot", ["--duration", "-5m"], "not a duration"),
        ("iot", ["--kinds", "bogus"], "unknown anomaly kinds"),
        ("iot", ["--start", "garbage"], "Invalid isoformat"),
        ("market", ["--close", "xx"], "Invalid value"),
        # run before, meaning nothing: a probability of 2, a rate of 0, -1 readings
        ("iot", ["--anomaly-rate", "2"], "--anomaly-rate must be within 0 and 1"),
        ("iot", ["--anomaly-rate", "nan"], "--anomaly-rate must be within 0 and 1"),
        ("market", ["--rate", "0"], "--rate must be a finite number above 0"),
        ("market", ["--speedup", "-1"], "--speedup must be a finite number above 0"),
        ("market", ["--instruments", "0"], "--instruments"),
        ("iot", ["--count", "-1"], "--count"),
    ],
)
def test_a_feed_that_cannot_be_is_refused(feed: str, args: list[str], says: str) -> None:
    result = CliRunner().invoke(app, ["simulate", feed, "--dry-run", "--count", "5", *args])
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.replace("│", " ").split())
    assert result.stdout.count('"entity"') == 0  # no reading was printed


@pytest.mark.parametrize("feed", ["iot", "market"])
def test_a_dry_run_prints_the_readings_it_counts(feed: str) -> None:
    result = CliRunner().invoke(
        app, ["simulate", feed, "--dry-run", "--count", "7", "--start", "2026-03-02T10:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count('"entity"') == 7
