"""TimescaleDB's rollups, as the migrations leave them (no TimescaleDB runs here: read)."""

from __future__ import annotations

import re

from stream_app.storage.migrate import Flavor, available_migrations

_CREATE = re.compile(r"CREATE MATERIALIZED VIEW (?:IF NOT EXISTS )?(\w+)\s+WITH \(([^)]*)\)", re.I)
_ALTER = re.compile(r"ALTER MATERIALIZED VIEW (?:IF EXISTS )?(\w+)\s+SET \(([^)]*)\)", re.I)
_MATERIALIZED_ONLY = re.compile(r"timescaledb\.materialized_only\s*=\s*(\w+)", re.I)


def _materialized_only() -> dict[str, str | None]:
    """Each continuous aggregate's ``timescaledb.materialized_only`` after every migration
    (None: never set, TimescaleDB's default)."""
    found: dict[str, str | None] = {}
    for migration in available_migrations(Flavor.TIMESCALEDB):
        for statement in migration.statements():
            text = "\n".join(
                line for line in statement.splitlines() if not line.lstrip().startswith("--")
            )
            for name, options in _CREATE.findall(text):
                if "timescaledb.continuous" in options:
                    match = _MATERIALIZED_ONLY.search(options)
                    found[name] = match[1].lower() if match else None
            for name, options in _ALTER.findall(text):
                match = _MATERIALIZED_ONLY.search(options)
                if name in found and match:
                    found[name] = match[1].lower()
    return found


def test_the_rollups_include_the_points_not_materialized_yet() -> None:
    """From TimescaleDB 2.13 (compose runs 2.17) a continuous aggregate reads only what its
    policy has materialized unless told otherwise, and the policies stop 5 minutes (5-minute
    rollup) and an hour (hourly) short of now and run that often: every panel reading a
    rollup (7 days and up) ended 5-10 minutes, or 1-2 hours, before now, and the
    points/s and anomalous-point counts of that stretch were missing."""
    found = _materialized_only()
    assert set(found) == {"observations_5m", "observations_1h"}
    assert found == dict.fromkeys(found, "false")


_RETENTION = re.compile(r"add_retention_policy\('(\w+)',\s*INTERVAL '(\d+) days?'", re.I)
_REFRESH = re.compile(
    r"add_continuous_aggregate_policy\('(\w+)',\s*start_offset => INTERVAL '(\d+) days?'", re.I
)


def test_the_rollups_are_kept_a_bounded_time() -> None:
    """The retention policy drops the raw points' chunks after 30 days, but a continuous
    aggregate is a hypertable of its own that no policy pruned: both rollups grew for
    as long as tsguard ran (100,000 series add 29 million 5-minute rows a day), though
    the README says storage stays bounded. Each keeps longer than the raw points and
    than its refresh window reaches back (TimescaleDB refuses a shorter one)."""
    text = "\n".join(m.text for m in available_migrations(Flavor.TIMESCALEDB))
    kept = {name: int(days) for name, days in _RETENTION.findall(text)}
    refreshed = {name: int(days) for name, days in _REFRESH.findall(text)}
    assert set(refreshed) == set(_materialized_only())
    for name, reach in refreshed.items():
        assert name in kept, f"{name} is kept for ever"
        assert kept[name] > max(reach, kept["observations"]), name
