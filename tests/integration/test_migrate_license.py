"""``tsguard db migrate`` reads ``timescaledb.license`` and skips Community features on Apache.

TimescaleDB cannot run here, but ``timescaledb.license`` is read with
``current_setting``, which a session can set as a placeholder on the real
PostgreSQL: the reading side is exercised for real, the decision is pure.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from stream_app.settings import Settings
from stream_app.storage.migrate import (
    APACHE_ONLY,
    Flavor,
    detect_flavor,
    ensure_readonly_role,
    has_community_features,
    migrate,
    timescaledb_license,
)
from tests.integration.conftest import FreshSchema

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("setting", ["apache", "timescale", None])
def test_the_licence_is_read_from_the_server(
    fresh_schema: FreshSchema, setting: str | None
) -> None:
    with psycopg.connect(fresh_schema.conninfo, autocommit=True) as conn:
        if setting is not None:
            conn.execute("SELECT set_config('timescaledb.license', %s, false)", (setting,))
        assert timescaledb_license(conn) == setting
        assert has_community_features(timescaledb_license(conn)) is (setting != "apache")


def test_plain_postgresql_stays_plain(fresh_schema: FreshSchema) -> None:
    with psycopg.connect(fresh_schema.conninfo, autocommit=True) as conn:
        conn.execute("SELECT set_config('timescaledb.license', 'timescale', false)")
        assert detect_flavor(conn) is Flavor.POSTGRES  # no extension available here


def test_the_apache_message_names_what_is_skipped() -> None:
    for feature in ("compression", "retention", "continuous-aggregate"):
        assert feature in APACHE_ONLY


def test_the_read_only_role_takes_a_changed_password(
    fresh_schema: FreshSchema, pg_conninfo: str
) -> None:
    """It was created with the first password and kept it: a changed
    TSGUARD_PG_READONLY_PASSWORD left Grafana's datasource unable to log in."""
    default = Settings().pg_readonly_password.get_secret_value()

    def logs_in(password: str) -> bool:
        try:
            psycopg.connect(
                make_conninfo(pg_conninfo, user="tsguard_ro", password=password), connect_timeout=5
            ).close()
        except psycopg.OperationalError:
            return False
        return True

    try:
        migrate(fresh_schema.conninfo, readonly_password="first-pw")
        migrate(fresh_schema.conninfo, readonly_password="second-pw")
        assert logs_in("second-pw") and not logs_in("first-pw")
    finally:
        migrate(fresh_schema.conninfo, readonly_password=default)  # the role is the cluster's
    assert logs_in(default)


def test_a_role_that_may_not_make_roles_is_told_so(
    fresh_schema: FreshSchema, pg_conninfo: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Without CREATEROLE (managed PostgreSQL) the role was skipped without a word."""
    weak = f"it_weak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'weak'").format(sql.Identifier(weak)))
    try:
        as_weak = make_conninfo(fresh_schema.conninfo, user=weak, password="weak")
        with psycopg.connect(as_weak, autocommit=True) as conn:
            ensure_readonly_role(conn, "tsguard_ro_never_made", "pw")
            ensure_readonly_role(conn, "tsguard_ro", "pw")
        said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("cannot create the read-only role tsguard_ro_never_made" in m for m in said)
        assert any("cannot set the password of the read-only role tsguard_ro" in m for m in said)
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(weak)))


def test_a_schema_built_plain_stays_plain_when_the_server_gains_timescaledb(
    fresh_schema: FreshSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Apache-only server set to the Community licence (as APACHE_ONLY says to) read as
    TimescaleDB at the next migrate, which ran the TimescaleDB-only 007 on the plain
    views and failed: 'observations_5m is not a materialized view', every worker's start."""
    import sys

    migrations = sys.modules[migrate.__module__]  # (the package's `migrate` is the function)
    assert migrate(fresh_schema.conninfo)  # built on plain PostgreSQL
    monkeypatch.setattr(migrations, "detect_flavor", lambda conn: Flavor.TIMESCALEDB)
    assert migrate(fresh_schema.conninfo) == []
