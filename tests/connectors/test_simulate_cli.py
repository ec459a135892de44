"""The connectors' command line: values that cannot make a feed (or a forwarder) are
refused, not run."""

from __future__ import annotations

from pathlib import Path

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
        # ran before, every reading dead-lettered by the worker (schema: metric name)
        ("iot", ["--sensors", "cpu load,temperature"], "sensor(s) 'cpu load' cannot be metric"),
        ("iot", ["--sensors", "=HYPERLINK(1)"], "sensor(s) '=HYPERLINK(1)' cannot be metric"),
        # ran before as one metric; the ground truth held faults of the column not sent
        ("iot", ["--sensors", "power,power"], "sensor(s) power named more than once"),
        ("iot", ["--start", "garbage"], "Invalid isoformat"),
        ("market", ["--close", "xx"], "not a time of day: 'xx'"),
        # run before as a session from 25:00 (a day later) or 09:99
        ("market", ["--open", "25:00"], "not a time of day: '25:00'"),
        ("market", ["--open", "09:99"], "not a time of day: '09:99'"),
        ("market", ["--open", "-1:00"], "not a time of day: '-1:00'"),
        # run before, meaning nothing: a probability of 2, a rate of 0, -1 readings
        ("iot", ["--anomaly-rate", "2"], "--anomaly-rate must be within 0 and 1"),
        ("iot", ["--anomaly-rate", "nan"], "--anomaly-rate must be within 0 and 1"),
        ("market", ["--rate", "0"], "--rate must be a finite number above 0"),
        ("market", ["--speedup", "-1"], "--speedup must be a finite number above 0"),
        ("market", ["--instruments", "0"], "--instruments"),
        ("iot", ["--count", "-1"], "--count"),
        # tracebacks before (float('nan') got through the start's parse)
        ("iot", ["--start", "nan"], "not a finite instant: 'nan'"),
        ("market", ["--start", "-inf"], "not a finite instant: '-inf'"),
        ("iot", ["--start", "1e309"], "not a finite instant: '1e309'"),
        # searched for ever, at full CPU, for a tick in a session shorter than one interval
        (
            "market",
            ["--open", "09:30", "--close", "09:31", "--interval", "1000"],
            "a session of 60 s holds no tick every 1000 s",
        ),
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


@pytest.mark.parametrize(
    ("args", "says"),
    [
        # NaN never re-posted firing alerts: Alertmanager resolved them on its timeout
        (["forward", "alertmanager", "--resend-every", "nan"], "--resend-every must be"),
        (["forward", "alertmanager", "--resend-every", "0"], "--resend-every must be"),
        (["forward", "alertmanager", "--max-events", "0"], "--max-events"),
        (["bridge", "mqtt", "--max-messages", "0"], "--max-messages"),
        # ran before: a QoS 2 session lost messages and stalled for good after a reconnect
        (["bridge", "mqtt", "--qos", "2"], "--qos"),
        (["simulate", "iot", "--dry-run", "--metrics-port", "70000"], "--metrics-port"),
    ],
)
def test_forwarder_and_bridge_options_are_checked_before_any_connection(
    args: list[str], says: str
) -> None:
    # no service is configured or reachable here: a refusal cannot be a connection error
    env = {"TSGUARD_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "TSGUARD_MQTT_PORT": "1"}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.replace("│", " ").split())


def test_ground_truth_into_a_folder_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["simulate", "market", "--dry-run", "--count", "3", "--ground-truth", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert "is a directory" in " ".join(result.output.replace("│", " ").split())
    assert result.stdout.count('"entity"') == 0


@pytest.mark.parametrize("start", ["1772445600000", "1772445600000000", "1772445600000000000"])
def test_a_start_in_epoch_milli_micro_or_nanoseconds_is_read_as_the_files_read_it(
    start: str,
) -> None:
    """Before, the start was taken as seconds whatever its size: 1.7e12 s is the year 56,000."""
    result = CliRunner().invoke(
        app, ["simulate", "iot", "--dry-run", "--count", "1", "--start", start]
    )
    assert result.exit_code == 0, result.output
    assert '"ts":1772445600.0' in result.stdout
