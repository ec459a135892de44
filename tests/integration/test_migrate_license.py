"""``tsguard db migrate`` reads ``timescaledb.license`` and skips Community features on Apache.

TimescaleDB cannot run here, but ``timescaledb.license`` is read with
``current_setting``, which a session can set as a placeholder on the real
PostgreSQL: the reading side is exercised for real, the decision is pure.
"""

from __future__ import annotations

import psycopg
import pytest

from stream_app.storage.migrate import (
    APACHE_ONLY,
    Flavor,
    detect_flavor,
    has_community_features,
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
