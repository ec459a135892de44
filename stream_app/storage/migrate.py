"""Versioned migrations that work on plain PostgreSQL and detect TimescaleDB.

Files in ``migrations/`` are named ``NNN_name.sql`` (run everywhere),
``NNN_name.pg.sql`` (plain PostgreSQL only) or ``NNN_name.tsdb.sql``
(TimescaleDB only). Each version is applied once, recorded in
``schema_migrations`` of the current schema, under an advisory lock so two
workers starting together do not race. Statements are
run one by one in autocommit mode (split by
:mod:`stream_app.storage.sqlsplit`), because TimescaleDB's continuous
aggregates refuse to be created inside a transaction block.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from stream_app.storage.sqlsplit import split_statements

_FILE_RE = re.compile(r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+?)(?:\.(?P<flavor>pg|tsdb))?\.sql$")
_LOCK_KEY = 0x7453_4755  # "tsGU"
log = logging.getLogger(__name__)


class Flavor(enum.Enum):
    POSTGRES = "pg"
    TIMESCALEDB = "tsdb"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    flavor: Flavor | None
    text: str

    def statements(self) -> tuple[str, ...]:
        return tuple(split_statements(self.text))


def available_migrations(flavor: Flavor) -> list[Migration]:
    """The migrations that apply to ``flavor``, in version order."""
    found: list[Migration] = []
    folder = resources.files("stream_app.storage") / "migrations"
    for entry in folder.iterdir():
        match = _FILE_RE.match(entry.name)
        if match is None:
            continue
        file_flavor = Flavor(match["flavor"]) if match["flavor"] else None
        if file_flavor is not None and file_flavor is not flavor:
            continue
        found.append(
            Migration(int(match["version"]), match["name"], file_flavor, entry.read_text("utf-8"))
        )
    found.sort(key=lambda m: (m.version, m.flavor is not None))
    return found


APACHE_ONLY = (
    "TimescaleDB is the Apache-2.0-only build (timescaledb.license = 'apache'): compression, "
    "retention and continuous-aggregate policies are Community-licensed features, so they are "
    "skipped and the plain PostgreSQL schema is used (rollup views and a delete job). Set "
    "timescaledb.license = 'timescale' on the server and migrate a fresh database to use them."
)


def timescaledb_license(conn: psycopg.Connection[tuple[object, ...]]) -> str | None:
    """The server's ``timescaledb.license`` setting (``None`` when it does not exist)."""
    row = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()
    return str(row[0]) if row and row[0] else None


def has_community_features(license_name: str | None) -> bool:
    """Compression, retention and continuous aggregates need the Community licence.

    >>> has_community_features("timescale"), has_community_features("apache")
    (True, False)
    >>> has_community_features(None)  # older builds without the setting
    True
    """
    return license_name is None or license_name.lower() != "apache"


FLAVOR_KEPT = (
    "this schema was migrated as %s and the server now reads as %s: migrated as it was"
    " built (migrate a fresh database to use the other)"
)


def detect_flavor(conn: psycopg.Connection[tuple[object, ...]]) -> Flavor:
    """TimescaleDB when the extension is installed or can be and its licence has the
    Community features; plain PostgreSQL otherwise (with a warning for Apache-only builds)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if row is None or row[0] == 0:
        return Flavor.POSTGRES
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.errors.InsufficientPrivilege:
        installed = conn.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()
        if not (installed and installed[0]):
            return Flavor.POSTGRES
    if not has_community_features(timescaledb_license(conn)):
        log.warning(APACHE_ONLY)
        return Flavor.POSTGRES
    return Flavor.TIMESCALEDB


def migrate(conninfo: str, *, readonly_password: str | None = None) -> list[str]:
    """Apply every pending migration; return the names applied (empty when up to date)."""
    applied: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            flavor = detect_flavor(conn)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, flavor text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            recorded = conn.execute(
                "SELECT flavor FROM schema_migrations ORDER BY version DESC LIMIT 1"
            ).fetchone()
            if recorded is not None and recorded[0] != flavor.value:
                # a schema built on plain PostgreSQL (or an Apache-only TimescaleDB) whose
                # server has the Community features now: the TimescaleDB-only versions
                # (007, 008) ran on its plain views and failed ("observations_5m is not a
                # materialized view"), and with them every worker's start
                log.warning(FLAVOR_KEPT, recorded[0], flavor.value)
                flavor = Flavor(recorded[0])
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            pending = [m for m in available_migrations(flavor) if m.version not in done]
            for version in sorted({m.version for m in pending}):
                for migration in (m for m in pending if m.version == version):
                    for statement in migration.statements():
                        conn.execute(statement)
                    applied.append(f"{migration.version:03d}_{migration.name}")
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, flavor) VALUES (%s, %s, %s)",
                    (version, applied[-1], flavor.value),
                )
            if readonly_password is not None:
                ensure_readonly_role(conn, "tsguard_ro", readonly_password)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


def ensure_readonly_role(
    conn: psycopg.Connection[tuple[object, ...]], role: str, password: str
) -> None:
    """A login role that can only read, for Grafana's datasource. Its password follows
    ``password`` (the setting Grafana's datasource reads too), also when it exists."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    verb = "CREATE ROLE {} LOGIN PASSWORD {}" if exists is None else "ALTER ROLE {} PASSWORD {}"
    try:
        conn.execute(sql.SQL(verb).format(sql.Identifier(role), sql.Literal(password)))
    except psycopg.errors.InsufficientPrivilege:
        # A tsguard role without CREATEROLE (managed PostgreSQL, often): said, so that
        # the operator creates the role or sets its password
        log.warning(
            "cannot %s the read-only role %s (the migrating role needs CREATEROLE):"
            " create it, or set its password to TSGUARD_PG_READONLY_PASSWORD, yourself",
            "create" if exists is None else "set the password of",
            role,
        )
        if exists is None:
            return
    try:
        schema = conn.execute("SELECT current_schema()").fetchone()
        if schema is None or schema[0] is None:
            return
        ident = sql.Identifier(str(schema[0]))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident, sql.Identifier(role)))
        conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                ident, sql.Identifier(role)
            )
        )
        conn.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                ident, sql.Identifier(role)
            )
        )
    except psycopg.errors.InsufficientPrivilege:
        log.warning("cannot grant the read-only role %s reading of this schema", role)
