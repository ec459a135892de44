"""Retention on plain PostgreSQL: old rows deleted on a schedule, one worker at a time.

TimescaleDB drops old chunks by its own retention policy (migration 002); there
``tsguard_apply_retention`` only prunes resolved episodes. On plain PostgreSQL
nothing else deletes anything, so every worker calls :func:`apply_retention`
every ``TSGUARD_RETENTION_INTERVAL_S`` (and ``tsguard db retention`` runs it
once, for a cron job). A session advisory lock, named after the schema that
holds the tables, lets one caller delete while the others skip that round.
"""

from __future__ import annotations

from typing import Any

import psycopg

_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtext(current_schema() || '.tsguard_retention'))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtext(current_schema() || '.tsguard_retention'))"
_APPLY = "SELECT tsguard_apply_retention(make_interval(days => %s))"


async def apply_retention(conn: psycopg.AsyncConnection[Any], days: int) -> int | None:
    """Delete what is older than ``days``; rows removed, or None when another caller holds it.

    ``conn`` must be in autocommit mode (the lock belongs to the session). ``days``
    under 1 is a ``ValueError``: 0 would delete every observation up to now.
    """
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"retention must keep at least 1 day, not {days!r}")
    cur = await conn.execute(_TRY_LOCK)
    row = await cur.fetchone()
    if not row or not row[0]:
        return None
    try:
        cur = await conn.execute(_APPLY, (days,))
        removed = await cur.fetchone()
        return int(removed[0]) if removed else 0
    finally:
        await conn.execute(_UNLOCK)
