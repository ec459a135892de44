"""The README's ``TSGUARD_*`` variables and the settings object name the same things.

Twenty settings were never named in the README (the local stack's ports, the pools, the
log level, the Grafana push, the worker's data folder, ...), and a few more only as
suffixes (``_ANOMALIES``, ``KAFKA_SSL_CAFILE/CERTFILE/KEYFILE``) that a reader cannot
search for; nothing kept the two together.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from stream_app.settings import NOT_SETTINGS, Settings

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")

# named in the README, read elsewhere than the settings object: where each is read
READ_BY = {
    "TSGUARD_PUBLISH_ADDRESS": "docker-compose.yml",  # compose's published address
    "TSGUARD_MONITORING_PUBLISH_ADDRESS": "docker-compose.yml",
    "TSGUARD_API_TLS_DIR": "docker-compose.yml",  # the folder mounted at the API's /tls
    "TSGUARD_PURE_PYTHON": "setup.py",  # the wheel's build
}
# the README's example of a name that is no setting (and is said to be)
TYPO = "TSGUARD_WORKER_BATCHSIZE"


def _settings() -> set[str]:
    return {f"TSGUARD_{name.upper()}" for name in Settings.model_fields}


def _named() -> set[str]:
    """Every ``TSGUARD_*`` name in the README; ``TSGUARD_API_*`` (a family) ends in ``_``."""
    return set(re.findall(r"TSGUARD_[A-Z0-9_]*[A-Z0-9]_?(?=\*)|TSGUARD_[A-Z0-9_]*[A-Z0-9]", README))


def test_every_setting_is_named_in_full_in_the_readme() -> None:
    missing = sorted(_settings() - _named())
    assert not missing, f"settings the README does not name: {missing}"


def test_every_variable_the_readme_names_is_read() -> None:
    settings = _settings()
    for name in sorted(_named()):
        if name.endswith("_"):  # a family: TSGUARD_API_*, TSGUARD_OAUTH_*
            assert any(s.startswith(name) for s in settings), name
        elif name == TYPO:
            assert name not in settings | NOT_SETTINGS
        elif name not in settings:
            assert name in READ_BY, f"{name} is in the README but read nowhere"
            assert name in (ROOT / READ_BY[name]).read_text(encoding="utf-8"), name
    assert set(READ_BY) == NOT_SETTINGS  # the names `tsguard` does not call a typo


def test_a_tsguard_variable_that_is_no_setting_is_said_not_ignored_silently() -> None:
    """``TSGUARD_WORKER_BATCHSIZE=500`` left the batch size at 2000 without a word."""
    env = {**os.environ, TYPO: "500", "TSGUARD_PUBLISH_ADDRESS": "0.0.0.0"}
    done = subprocess.run(
        [sys.executable, "-m", "stream_app.cli", "--version"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "tsguard: TSGUARD_WORKER_BATCHSIZE is not a setting (did you mean"
        " TSGUARD_WORKER_BATCH_SIZE?); it is ignored"
    ]


def test_the_readme_settings_table_gives_the_defaults_the_code_has() -> None:
    """A table row `` | `TSGUARD_X`, `TSGUARD_Y` | `1`, `2` | ... `` : each default as written."""
    fields = Settings.model_fields
    checked = 0
    for line in README.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) != 3 or not cells[0].startswith("`TSGUARD_"):
            continue
        names = re.findall(r"`(TSGUARD_[A-Z0-9_]+)`", cells[0])
        defaults = re.findall(r"`([^`]*)`", cells[1])
        if "*" in cells[0] or len(names) != len(defaults):
            continue  # a family, or defaults said in words
        for name, written in zip(names, defaults, strict=True):
            field = fields[name.removeprefix("TSGUARD_").lower()]
            default = field.get_default(call_default_factory=True)
            if default is None:
                continue  # unset: what it means is said in words
            if isinstance(default, Path):
                default = str(default).replace(str(Path.home()), "~", 1)
            if hasattr(default, "get_secret_value"):
                default = default.get_secret_value()
            if isinstance(default, float) and default.is_integer():
                default = int(default)
            assert written == str(default), (name, written, default)
            checked += 1
    assert checked >= 30, checked
