"""The demo stops what it started on SIGTERM and SIGHUP as on Ctrl-C, however it was launched."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

# The demo command with a stand-in for the pipeline: it says when it is running and,
# when cancelled, that its clean-up ran (the real one stops the worker and the API).
SCRIPT = """
import asyncio, sys
import stream_app.demo

async def run_demo(settings, seconds):
    try:
        print("running", flush=True)
        await asyncio.sleep(60)
    finally:
        print("cleaned up", flush=True)
    return 0

stream_app.demo.run_demo = run_demo
import typer
from stream_app.demo_cli import demo
try:
    demo(0.0)
except typer.Exit as stop:
    sys.exit(stop.exit_code)
"""


def _ignore_sigint() -> None:
    # as for a job started in the background by a shell without job control
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("sent", "launched_with_sigint_ignored"),
    [
        (signal.SIGTERM, False),
        (signal.SIGHUP, False),
        (signal.SIGTERM, True),
        (signal.SIGINT, True),
    ],
)
def test_a_stop_signal_runs_the_demos_clean_up(
    sent: signal.Signals, launched_with_sigint_ignored: bool
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if launched_with_sigint_ignored else None,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "running"
        proc.send_signal(sent)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert out.strip() == "cleaned up", err
    assert proc.returncode == 0, err
