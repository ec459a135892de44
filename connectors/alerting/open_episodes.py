"""The episodes the database has open, read by a forwarder that starts.

Alertmanager holds alerts in memory only, and the forwarder's consumer group
has long committed the ``opened`` events of episodes still open: after both
restarted together (a host's reboot) nothing would fire for them again until
they resolve. The workers write an episode before they publish its events, so
an episode the database has open has its ``resolved`` still to come on the
topic, and the forwarder resolves it when it does.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

from connectors.alerting.alerts import AlertBook, iso

_OPEN = """
SELECT id, entity, metric, kind, started_at, last_ts, severity, detector, explanation, value,
    expected
FROM anomalies WHERE status = 'open' ORDER BY started_at
"""
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 30_000
# How long a forwarder keeps trying to read them (a database slower to come up than
# Alertmanager after a reboot) before it goes on without them, and its longest wait.
RESTORE_FOR_S = 600.0
MAX_BACKOFF_S = 30.0


def as_event(row: dict[str, Any]) -> dict[str, Any]:
    """An ``updated`` event of the open episode in ``row`` (an ``anomalies`` row), with
    the fields an alert is made of."""
    return {
        "event": "updated",
        "episode_id": row["id"],
        "entity": row["entity"],
        "metric": row["metric"],
        "kind": row["kind"],
        "started_at": iso(row["started_at"].timestamp()),
        # the time of the episode's latest event stored: its events read after the
        # database, older than this, do not take the alert back to an older severity
        "ts": iso(row["last_ts"].timestamp()) if row.get("last_ts") is not None else None,
        "severity": row["severity"],
        "detector": row["detector"],
        "explanation": row["explanation"],
        "value": row["value"],
        "expected": row["expected"],
    }


async def read_open_episodes(conninfo: str) -> list[dict[str, Any]]:
    """One ``updated`` event for each episode the database has open, oldest first."""
    async with await psycopg.AsyncConnection.connect(
        conninfo, connect_timeout=CONNECT_TIMEOUT_S, row_factory=dict_row
    ) as conn:
        # a table locked by a long migration is a database not there yet, not a hang
        await conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        rows = await (await conn.execute(_OPEN)).fetchall()
    return [as_event(row) for row in rows]


async def restore_open_episodes(
    book: AlertBook,
    conninfo: str,
    *,
    clock: Callable[[], float],
    report: Callable[[str], None] | None = None,
    backoff_s: float = 0.5,
    give_up_after_s: float = RESTORE_FOR_S,
) -> int | None:
    """Read the open episodes into ``book`` (see :meth:`AlertBook.restore`), waiting for
    the database for up to ``give_up_after_s``; how many fire again, or None when they
    could not be read."""
    loop = asyncio.get_running_loop()
    until = loop.time() + give_up_after_s
    delay = backoff_s
    while True:
        try:
            events = await read_open_episodes(conninfo)
        except psycopg.errors.UndefinedTable:
            _say(report, "no anomalies table in the database: no open episode to fire again")
            return None
        except psycopg.Error as exc:
            problem = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            if loop.time() + delay > until:
                _say(report, f"open episodes not read from the database ({problem}); going on")
                return None
            _say(
                report,
                f"database unavailable for open episodes ({problem}); retry in {delay:.1f} s",
            )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, MAX_BACKOFF_S)
            continue
        except Exception as exc:  # a row no alert can be made of: said now, not at the stop
            _say(report, f"open episodes not fired again: {exc!r}")
            return None
        taken = book.restore(events, clock())
        _say(report, f"{taken} open episodes from the database fire again")
        return taken


def _say(report: Callable[[str], None] | None, message: str) -> None:
    if report is not None:
        report(message)
