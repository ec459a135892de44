"""How the settings object reads the values it is given: empty optional paths, the API's
TLS pair."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from stream_app.settings import Settings

OPTIONAL_PATHS = sorted(
    name for name, field in Settings.model_fields.items() if field.annotation == Path | None
)


def test_the_optional_paths_are_found() -> None:
    assert {"api_tls_certfile", "api_tls_keyfile", "detector_config"} <= set(OPTIONAL_PATHS)


@pytest.mark.parametrize("name", OPTIONAL_PATHS)
def test_an_empty_optional_path_is_unset(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """compose passes a variable the user may leave unset as ``${NAME:-}``: empty. It was
    read as Path("."), the current folder (the API took "." for its certificate)."""
    monkeypatch.setenv(f"TSGUARD_{name.upper()}", "")
    assert getattr(Settings(_env_file=None), name) is None


@pytest.mark.parametrize("given", ["api_tls_certfile", "api_tls_keyfile"])
def test_half_of_the_apis_tls_is_refused(given: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One of the two served plain HTTP without a word."""
    for name in ("api_tls_certfile", "api_tls_keyfile"):
        monkeypatch.delenv(f"TSGUARD_{name.upper()}", raising=False)
    monkeypatch.setenv(f"TSGUARD_{given.upper()}", "/tls/api.pem")
    with pytest.raises(
        ValidationError, match="TSGUARD_API_TLS_CERTFILE and TSGUARD_API_TLS_KEYFILE go together"
    ):
        Settings(_env_file=None)
    both = Settings(_env_file=None, api_tls_certfile="/tls/a.crt", api_tls_keyfile="/tls/a.key")
    assert (both.api_tls_certfile, both.api_tls_keyfile) == (Path("/tls/a.crt"), Path("/tls/a.key"))


FLAGS = sorted(name for name, field in Settings.model_fields.items() if field.annotation is bool)


def test_the_flags_are_found() -> None:
    assert {"grafana_timescaledb", "mqtt_tls", "oauth_dev_mode"} <= set(FLAGS)


@pytest.mark.parametrize("name", FLAGS)
@pytest.mark.parametrize(("written", "read"), [("true", True), ("false", False)])
def test_a_flag_is_true_or_false(
    name: str, written: str, read: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"TSGUARD_{name.upper()}", written)
    assert getattr(Settings(_env_file=None), name) is read


@pytest.mark.parametrize("name", FLAGS)
@pytest.mark.parametrize("written", ["yes", "no", "1", "0", "on", "True", "FALSE", " true", ""])
def test_a_flag_written_otherwise_is_refused(
    name: str, written: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pydantic read yes/no, 1/0, on/off, y/n, t/f in any case as booleans, and compose
    picks Grafana's datasource file by the very text of TSGUARD_GRAFANA_TIMESCALEDB
    (timescaledb-true.yaml or -false.yaml): with ``yes``, ``tsguard dashboards push``
    pushed a TimescaleDB datasource and compose mounted a file that does not exist.
    Every flag is written the one way, exactly ``true`` or ``false``."""
    monkeypatch.setenv(f"TSGUARD_{name.upper()}", written)
    with pytest.raises(ValidationError, match="exactly true or false") as raised:
        Settings(_env_file=None)
    assert [error["loc"] for error in raised.value.errors()] == [(name,)]
