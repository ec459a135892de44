"""The dashboards' rollup panels on plain PostgreSQL: through the views, and from the points.

A filter on a rollup view's ``bucket`` cannot reach the index on ``observations.ts``,
so each read of a view aggregates the whole table. On plain PostgreSQL the dashboards
therefore read the raw points at every interval (``tsguard_rollups_stored()`` is false
there, migration 005). This loads ``--entities`` x 3 metrics every 10 minutes over 14
days into a fresh schema of the stack's database, then times each panel that has rollup
branches over 24 h, 7 d and 30 d (median of three), once as TimescaleDB's schema reads
it (the function true: the views, what every dashboard did before) and once as plain
PostgreSQL now reads it; the schema is dropped after::

    python -m benchmarks.dashboard_rollups [--entities 500] [--json]

Needs the local stack (``tsguard stack up``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from connectors.grafana import expand
from connectors.grafana.files import Provisioning, walk_panels
from stream_app.settings import load_settings
from stream_app.storage import migrate

_LOAD = """
INSERT INTO observations (entity, metric, ts, value, expected, lower, upper, score, is_anomaly,
                          status, detector)
SELECT 'site-' || lpad((e / 50)::text, 2, '0') || '/dev-' || lpad(e::text, 4, '0'), m,
       date_trunc('minute', now()) - k * interval '10 min', random() * 10, 5, 1, 9, random(),
       random() < 0.01, 'ok', 'robust_seasonal'
FROM generate_series(0, %s) e, unnest(ARRAY['temperature', 'vibration', 'pressure']) m,
     generate_series(0, 2015) k
"""
_STORED = (
    "CREATE OR REPLACE FUNCTION tsguard_rollups_stored() RETURNS boolean"
    " LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT {}'"
)


def set_rollups_stored(conn: psycopg.Connection[Any], stored: bool) -> None:
    """Make the schema on ``conn``'s search path say its rollups are stored (as
    TimescaleDB's migration 005 does: the dashboards read them) or not (plain
    PostgreSQL's: they read the points). The live dashboard tests use it too."""
    conn.execute(_STORED.format("true" if stored else "false"))  # type: ignore[arg-type, unused-ignore]


RANGES = (("24h", timedelta(days=1), 60_000), ("7d", timedelta(days=7), 600_000),
          ("30d", timedelta(days=30), 3_600_000))  # fmt: skip


def rollup_panels() -> list[tuple[str, str]]:
    """(dashboard/panel, SQL) of every panel target with rollup branches."""
    out = []
    for dash in Provisioning().dashboards():
        for panel in walk_panels(dash):
            for target in panel.get("targets", []):
                text = target.get("rawSql", "")
                if "observations_1h" in text:
                    out.append((f"{dash['uid']}/{panel['title']}", text))
    return out


def run(entities: int) -> list[dict[str, Any]]:
    base = load_settings().pg_conninfo()
    schema = f"bench_rollups_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    conninfo = make_conninfo(base, options=f"-c search_path={schema}")
    rows: list[dict[str, Any]] = []
    try:
        migrate(conninfo)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(_LOAD, (entities - 1,))
            conn.execute("ANALYZE observations")
            points = conn.execute("SELECT count(*) FROM observations").fetchone()
            now = datetime.now(UTC).replace(microsecond=0)
            for stored in (True, False):
                set_rollups_stored(conn, stored)
                for where, panel_sql in rollup_panels():
                    for name, span, interval_ms in RANGES:
                        text = expand(
                            panel_sql, time_from=now - span, time_to=now,
                            interval_ms=interval_ms,
                            variables={"entity": "site-03/dev-0150", "metric": "temperature"},
                        )  # fmt: skip
                        times = []
                        for _ in range(3):
                            started = time.perf_counter()
                            conn.execute(text).fetchall()  # type: ignore[arg-type, unused-ignore]
                            times.append(time.perf_counter() - started)
                        rows.append({"source": "views" if stored else "points",
                                     "panel": where, "range": name,
                                     "ms": round(statistics.median(times) * 1000, 1),
                                     "points": points[0] if points else 0})  # fmt: skip
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = run(args.entities)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(f"{r['source']:6s} {r['panel'][:52]:52s} {r['range']:4s} {r['ms']:9.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
