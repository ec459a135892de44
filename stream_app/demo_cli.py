"""``tsguard demo`` (the code is in :mod:`stream_app.demo`, imported on use)."""

from __future__ import annotations

import asyncio
import math
import signal
from types import FrameType

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("demo")
def demo(
    seconds: float = typer.Option(
        0.0, help="Stop after this many seconds and print a summary; 0 runs until Ctrl-C."
    ),
) -> None:
    """Run the whole pipeline on simulated IoT and market data on the local stack."""
    if not 0.0 <= seconds < math.inf:  # -1 and NaN ran until Ctrl-C, as 0 does
        raise typer.BadParameter(f"--seconds must be 0 or more, and finite, not {seconds}")
    from stream_app.demo import run_demo
    from stream_app.settings import load_settings

    # A terminal closed (SIGHUP) or a supervisor's stop (SIGTERM) ends the demo as Ctrl-C
    # does, so it stops the worker and the API it started (their own sessions: they get
    # no signal of the terminal's) instead of leaving them running. SIGINT is Ctrl-C's
    # even where the demo was started with it ignored (`nohup make demo &`), which left
    # asyncio's own handler, which cancels the demo cleanly, uninstalled.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _as_ctrl_c)
    try:
        code = asyncio.run(run_demo(load_settings(), seconds))
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGINT)
