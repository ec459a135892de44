"""``tsguard worker``, ``tsguard topics create`` and ``tsguard db migrate``."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(no_args_is_help=True)
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics of tsguard.")
db_app = typer.Typer(no_args_is_help=True, help="The PostgreSQL / TimescaleDB schema.")
log = logging.getLogger(__name__)


def load_rules(path: Path | None) -> dict[str, Any]:
    """The detector configuration file (YAML or JSON) as a mapping; {} when unset."""
    if path is None:
        return {}
    text = path.read_text("utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: the detector configuration must be a mapping")
    return data


@app.command("worker")
def worker(
    web_port: int | None = typer.Option(None, help="Port of /metrics (default from settings)."),
    worker_id: str | None = typer.Option(None, help="Name of this worker (its data dir)."),
    migrate_db: bool = typer.Option(True, help="Apply database migrations first."),
    group: str | None = typer.Option(None, help="Consumer group (default from settings)."),
) -> None:
    """Run a streaming worker (joins the consumer group; Ctrl-C to stop)."""
    import faust

    from stream_app.listen import require_listen
    from stream_app.metrics import build_metrics
    from stream_app.settings import load_settings
    from stream_app.worker.app import Worker
    from stream_app.worker.faust_compat import ensure_committed_offsets
    from stream_app.worker.topics import ensure_topics, labels_partition_problem

    overrides: dict[str, Any] = {}
    if web_port is not None:
        overrides["worker_web_port"] = web_port
    if worker_id is not None:
        overrides["worker_id"] = worker_id
    if group is not None:
        overrides["consumer_group"] = group
    settings = load_settings(**overrides)
    logging.basicConfig(level=settings.log_level)
    # before Kafka and the database: Faust would find it only once started, and end in a
    # traceback after joining the group
    require_listen(
        settings.worker_web_host,
        settings.worker_web_port,
        "/metrics",
        "--web-port / TSGUARD_WORKER_WEB_PORT / TSGUARD_WORKER_WEB_HOST",
    )
    asyncio.run(ensure_topics(settings))
    problem = asyncio.run(labels_partition_problem(settings))
    if problem is not None:
        typer.echo(f"tsguard: {problem}", err=True)
        raise typer.Exit(2)
    asyncio.run(ensure_committed_offsets(settings))
    if migrate_db:
        _migrate_when_reachable(settings)
    worker = Worker(settings, build_metrics(), load_rules(settings.detector_config))
    tune_gc()
    faust.Worker(worker.app, loglevel=settings.log_level.lower()).execute_from_commandline()


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a process that allocates per point.

    Every scored point allocates rows and events that die young (reference
    counting frees them), yet each 700 allocations started a collection, and
    the full ones walked every live model object: 1.1 s of collections in a
    100k-reading run, and pauses of up to about 100 ms. Objects alive at start
    (modules, Faust) are frozen out of collections and the thresholds raised:
    0.07 s in the same run, 16.4k instead of 13.1k readings/s
    (benchmarks/RESULTS.md). Cyclic garbage is still collected, less often.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


MIGRATE_FIRST_RETRY_S = 0.5  # then doubling, up to MIGRATE_MAX_RETRY_S
MIGRATE_MAX_RETRY_S = 10.0


def _migrate_when_reachable(
    settings: Any, wait: float = math.inf, say: Callable[[str], None] | None = None
) -> list[str]:
    """Apply migrations, waiting (with backoff) for up to ``wait`` seconds for a
    database that is down, starting or read-only (a standby mid-failover); ``say``
    hears why each try failed (default: a warning in the log)."""
    import time

    from stream_app.storage import migrate
    from stream_app.storage.errors import UNAVAILABLE

    deadline = time.monotonic() + wait
    delay = MIGRATE_FIRST_RETRY_S
    while True:
        try:
            return migrate(
                settings.pg_conninfo(),
                readonly_password=settings.pg_readonly_password.get_secret_value(),
            )
        except UNAVAILABLE as exc:
            if time.monotonic() + delay > deadline:
                raise
            text = str(exc).strip()
            reason = text.splitlines()[0] if text else type(exc).__name__
            if say is None:
                log.warning("database not reachable or read-only (%s); retrying", reason)
            else:
                say(reason)
            time.sleep(delay)
            delay = min(delay * 2, MIGRATE_MAX_RETRY_S)


@topics_app.command("create")
def create_topics() -> None:
    """Create tsguard's topics with the configured partitions (idempotent)."""
    from stream_app.settings import load_settings
    from stream_app.worker.topics import ensure_topics

    created = asyncio.run(ensure_topics(load_settings()))
    typer.echo(f"created: {', '.join(created)}" if created else "all topics exist")


@db_app.command("migrate")
def db_migrate(
    wait: float = typer.Option(
        0.0,
        min=0.0,
        help="Keep trying to reach PostgreSQL for this many seconds (a database that is"
        " still starting: a container's first start).",
    ),
) -> None:
    """Apply pending migrations (plain PostgreSQL or TimescaleDB, detected)."""
    from stream_app.settings import load_settings

    def say(reason: str) -> None:
        typer.echo(f"PostgreSQL not reachable yet ({reason}); trying again", err=True)

    applied = _migrate_when_reachable(load_settings(), wait, say)
    typer.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@db_app.command("retention")
def db_retention(
    days: int | None = typer.Option(
        None, min=1, help="Keep this many days (default from settings; at least 1)."
    ),
) -> None:
    """Delete observations and resolved episodes older than the retention (plain PostgreSQL).

    Workers do this every TSGUARD_RETENTION_INTERVAL_S; this runs it once (cron).
    TimescaleDB drops old observations by its own policy; there only resolved
    episodes are pruned.
    """
    import psycopg

    from stream_app.settings import load_settings
    from stream_app.storage.retention import apply_retention

    settings = load_settings()
    keep = days if days is not None else settings.retention_days

    async def run() -> int | None:
        async with await psycopg.AsyncConnection.connect(
            settings.pg_conninfo(), autocommit=True
        ) as conn:
            return await apply_retention(conn, keep)

    removed = asyncio.run(run())
    if removed is None:
        typer.echo("another process is applying retention now; nothing done")
    else:
        typer.echo(f"deleted {removed} observations older than {keep} days")
