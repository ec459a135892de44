"""The bench's worker gets the bench's settings back from its environment."""

from __future__ import annotations

import os

import pytest

from stream_app.bench.pipeline import worker_env
from stream_app.settings import Settings


def test_the_worker_reads_back_the_settings_it_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flags were written with str(): "False", which a flag refuses (it must be exactly
    true or false), so the bench's worker exited on its settings."""
    given = Settings(
        _env_file=None,
        oauth_dev_mode=True,
        mqtt_tls=False,
        grafana_timescaledb=True,
        oauth_role_map={"realm-admin": "admin"},
        worker_batch_size=300,
    )
    env = worker_env(given)
    assert env["TSGUARD_OAUTH_DEV_MODE"] == "true" and env["TSGUARD_MQTT_TLS"] == "false"
    for name in [n for n in os.environ if n.startswith("TSGUARD_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None) == given
