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
