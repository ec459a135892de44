"""``tsguard demo`` (the code is in :mod:`stream_app.demo`, imported on use)."""

from __future__ import annotations

import asyncio

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("demo")
def demo(
    seconds: float = typer.Option(
        0.0, help="Stop after this many seconds and print a summary; 0 runs until Ctrl-C."
    ),
) -> None:
    """Run the whole pipeline on simulated IoT and market data on the local stack."""
    from stream_app.demo import run_demo
    from stream_app.settings import load_settings

    try:
        code = asyncio.run(run_demo(load_settings(), seconds))
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)
