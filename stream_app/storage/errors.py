"""Which database errors mean "not now": wait and try again, never crash or drop.

psycopg's ``OperationalError`` covers a server that is down, starting, shutting
down, out of connections or disk, and the pool's own timeouts. A server that is
up but takes no writes answers with ``ReadOnlySqlTransaction``, an
``InternalError``: a standby not yet promoted during a failover, a demoted
primary that a pooled session still points at, or a database set
``default_transaction_read_only`` for maintenance. It passes like an outage, so
the sink, the worker's start-up migration and the API treat it as one, and a
session that met it is closed (:func:`closed_if_read_only`): it would stay on
that server, or keep that setting, for as long as it lives.

>>> import psycopg
>>> isinstance(psycopg.errors.ReadOnlySqlTransaction(), UNAVAILABLE)
True
>>> isinstance(psycopg.errors.UndefinedTable(), UNAVAILABLE)
False
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg

UNAVAILABLE: tuple[type[psycopg.Error], ...] = (
    psycopg.OperationalError,
    psycopg.errors.ReadOnlySqlTransaction,
)

# A table, column or function of the schema missing: the database was never migrated, or
# by an older release than the one reading it. Not an outage to wait out, nor the
# client's fault: said as such (the API answered 500 with a traceback).
NOT_MIGRATED: tuple[type[psycopg.Error], ...] = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.UndefinedFunction,
)
NOT_MIGRATED_HINT = "schema not migrated: run `tsguard db migrate` (a worker does at its start)"


@asynccontextmanager
async def closed_if_read_only(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    """Close ``conn`` when a write in the block was refused as read-only, so its pool
    connects again (to wherever the primary is now) instead of handing it out again."""
    try:
        yield
    except psycopg.errors.ReadOnlySqlTransaction:
        await conn.close()
        raise
