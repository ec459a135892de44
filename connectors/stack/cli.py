"""``tsguard stack up | down | status``: the local stack on loopback."""

from __future__ import annotations

import logging
import time
from typing import Annotated

import typer

from connectors.stack.lifecycle import SERVICE_NAMES
from connectors.stack.process import StackError

app = typer.Typer(
    help="Local Kafka, PostgreSQL, Prometheus, Alertmanager and Mosquitto on loopback.",
    no_args_is_help=True,
)

Only = Annotated[
    str | None,
    typer.Option(
        "--only",
        help=f"Comma-separated subset of: {','.join(SERVICE_NAMES)}.",
        show_default=False,
    ),
]


def _names(only: str | None) -> list[str] | None:
    return None if only is None else [name for name in only.split(",") if name.strip()]


def _quiet_client_logs() -> None:
    # Health probes poll services that are still starting: aiokafka would log
    # every refused connection as an error.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def _fail(exc: StackError) -> None:
    typer.echo(str(exc), err=True)
    raise typer.Exit(1)


@app.command()
def up(only: Only = None) -> None:
    """Start what is not running and wait until every service is healthy."""
    from connectors.stack.lifecycle import ensure_up
    from stream_app.settings import load_settings

    _quiet_client_logs()
    settings = load_settings()
    began = time.monotonic()
    try:
        statuses = ensure_up(settings, _names(only), report=typer.echo)
    except StackError as exc:
        _fail(exc)
        return
    for item in statuses:
        if not item.started:
            typer.echo(f"{item.name}: already running (pid {item.pid}, port {item.port})")
    logs = settings.stack_dir.expanduser().resolve() / "logs"
    typer.echo(f"stack up in {time.monotonic() - began:.1f} s; logs in {logs}")


@app.command()
def down(only: Only = None) -> None:
    """Stop the services that `stack up` started (nothing else)."""
    from connectors.stack.lifecycle import stop
    from stream_app.settings import load_settings

    try:
        stopped = stop(load_settings(), _names(only), report=typer.echo)
    except StackError as exc:
        _fail(exc)
        return
    if not stopped:
        typer.echo("nothing of ours was running")


@app.command()
def status(only: Only = None) -> None:
    """Each service's pid, port and health, and the log folder. Exit 1 unless all healthy."""
    from connectors.stack.lifecycle import status as stack_status
    from stream_app.settings import load_settings

    _quiet_client_logs()
    settings = load_settings()
    try:
        statuses = stack_status(settings, _names(only))
    except StackError as exc:
        _fail(exc)
        return
    typer.echo(f"{'service':<13}{'pid':>8}  {'port':>6}  health")
    for item in statuses:
        pid = str(item.pid) if item.pid is not None else "-"
        health = "healthy" if item.healthy else ("running, not healthy" if item.pid else "down")
        typer.echo(f"{item.name:<13}{pid:>8}  {item.port:>6}  {health}")
    typer.echo(f"logs: {settings.stack_dir.expanduser().resolve() / 'logs'}")
    if not all(item.healthy for item in statuses):
        raise typer.Exit(1)
