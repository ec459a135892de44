"""The ``tsguard`` command line.

Each area of the code base owns a small Typer app in its own ``cli`` module;
this root only wires them together. Heavy imports (Faust, River, psycopg)
happen inside the commands, never at import time, so ``tsguard --help`` is
instant.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from pydantic import ValidationError

app = typer.Typer(
    name="tsguard",
    help="Streaming anomaly detection for time series on Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from stream_app.build_info import describe

        typer.echo(describe())
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the version and whether the scoring hot path is compiled, and exit.",
    ),
) -> None:
    """Streaming anomaly detection for time series on Kafka."""


# (module, attribute, name as a group or None to merge its commands at the top level)
_SUBAPPS: list[tuple[str, str, str | None]] = [
    ("connectors.stack.cli", "app", "stack"),
    ("stream_app.demo_cli", "app", None),
    ("stream_app.worker.cli", "app", None),
    ("stream_app.worker.cli", "topics_app", "topics"),
    ("stream_app.worker.cli", "db_app", "db"),
    ("stream_app.offline.cli", "app", None),
    ("stream_app.offline.cli", "bench_app", "bench"),
    ("connectors.grafana.cli", "app", "dashboards"),
    ("stream_app.api.cli", "app", None),
    ("stream_app.api.cli", "token_app", "token"),
    ("connectors.cli", "simulate_app", "simulate"),
    ("connectors.cli", "app", None),
    ("connectors.cli", "bridge_app", "bridge"),
    ("connectors.cli", "forward_app", "forward"),
]


def _register() -> None:
    for module_name, attr, group in _SUBAPPS:
        module = importlib.import_module(module_name)
        sub = getattr(module, attr)
        if group is None:
            for command in sub.registered_commands:
                app.registered_commands.append(command)
        else:
            app.add_typer(sub, name=group)


_register()


def main() -> None:
    """Console-script entry point."""
    from pydantic import ValidationError

    from stream_app.offline.terminal import OutputError, named_stdout
    from stream_app.settings import unknown_variables

    for line in unknown_variables():
        typer.echo(line, err=True)
    sys.stdout = named_stdout(sys.stdout)
    try:
        try:
            app()
        finally:
            sys.stdout.flush()  # what stays buffered failed at exit, as "Exception ignored"
    except OutputError as exc:
        # standard output that cannot be written (> /dev/full, a full disk): one line
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        typer.echo(settings_errors(exc), err=True)
        raise SystemExit(2) from None
    except Exception as exc:
        service = unreachable_service(exc)
        if service is None:
            raise
        # a service that is down is an answer, not a traceback
        detail = " ".join(str(exc).split()) or type(exc).__name__
        local = service in ("Kafka", "PostgreSQL")  # what `tsguard stack up` runs
        with contextlib.suppress(AttributeError, RuntimeError):  # an HTTP error's URL
            service = f"{service} at {exc.request.url}"  # type: ignore[attr-defined]
        typer.echo(f"tsguard: cannot reach {service}: {detail}", err=True)
        if local:
            typer.echo("  (is it running? `tsguard stack up` starts a local one)", err=True)
        raise SystemExit(1) from None


# the errors that say a service could not be reached, by class (their modules are heavy
# to import at start-up: matched by name along the class's bases)
_UNREACHABLE = {
    "aiokafka.errors.KafkaConnectionError": "Kafka",
    "psycopg.OperationalError": "PostgreSQL",
    "httpx.ConnectError": "an HTTP service",
    "httpx.ConnectTimeout": "an HTTP service",
}


def unreachable_service(exc: BaseException) -> str | None:
    """The service ``exc`` says could not be reached, or None.

    >>> unreachable_service(ValueError("x")) is None
    True
    """
    for cls in type(exc).__mro__:
        service = _UNREACHABLE.get(f"{cls.__module__}.{cls.__qualname__}")
        if service is not None:
            return service
    return None


def settings_errors(exc: ValidationError) -> str:
    """One line per invalid ``TSGUARD_*`` variable; values are not echoed (some are secrets)."""
    lines = ["tsguard: invalid settings:"]
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"]).upper()
        lines.append(f"  TSGUARD_{name}: {error['msg']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
