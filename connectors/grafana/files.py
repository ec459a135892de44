"""Reading the provisioning files of ``dashboards/`` and expanding their variables.

Grafana expands ``${VAR}`` in provisioning files from its environment. The
names used there are tsguard settings (``TSGUARD_PG_READONLY_PASSWORD`` is
``Settings.pg_readonly_password``), so ``tsguard dashboards push`` can expand
the very same files from the one settings object instead of the environment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from stream_app.resources import data_dir
from stream_app.settings import Settings

_ENV_RE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
ENV_PREFIX = "TSGUARD_"


@dataclass(frozen=True, slots=True)
class Provisioning:
    """Where each kind of provisioning file lives under one ``dashboards/`` folder."""

    root: Path = field(default_factory=lambda: data_dir("dashboards"))

    @property
    def dashboard_dir(self) -> Path:
        return self.root / "json"

    @property
    def datasource_dir(self) -> Path:
        return self.root / "datasources"

    @property
    def provider_dir(self) -> Path:
        return self.root / "providers"

    @property
    def postgres_datasource_dir(self) -> Path:
        """``timescaledb-true.yaml`` and ``timescaledb-false.yaml``: one is mounted."""
        return self.root / "postgres-datasource"

    def postgres_datasource_file(self, timescaledb: bool) -> Path:
        return self.postgres_datasource_dir / f"timescaledb-{str(timescaledb).lower()}.yaml"

    @property
    def alerting_dir(self) -> Path:
        return self.root / "alerting"

    @property
    def prometheus_dir(self) -> Path:
        return self.root / "prometheus"

    def dashboard_files(self) -> list[Path]:
        return sorted(self.dashboard_dir.glob("*.json"))

    def dashboards(self) -> list[dict[str, Any]]:
        """Every dashboard JSON document, in file name order."""
        return [json.loads(p.read_text("utf-8")) for p in self.dashboard_files()]

    def datasources(
        self, settings: Settings | None = None, *, timescaledb: bool | None = None
    ) -> list[dict[str, Any]]:
        """The provisioned datasources; ``${TSGUARD_*}`` expanded when settings are given.

        The PostgreSQL datasource is the file for ``timescaledb`` (default: the
        ``grafana_timescaledb`` setting, else plain PostgreSQL).
        """
        if timescaledb is None:
            timescaledb = settings.grafana_timescaledb if settings is not None else False
        found: list[dict[str, Any]] = []
        paths = [self.postgres_datasource_file(timescaledb)]
        paths += sorted(self.datasource_dir.glob("*.yaml"))
        for path in paths:
            text = path.read_text("utf-8")
            if settings is not None:
                text = expand_env(text, settings)
            found.extend(yaml.safe_load(text).get("datasources", []))
        return found


def setting_values(settings: Settings) -> dict[str, str]:
    """``TSGUARD_<FIELD>`` to the setting's value as text (secrets revealed, None empty)."""
    values: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        values[ENV_PREFIX + name.upper()] = "" if value is None else str(value)
    return values


def env_references(text: str) -> set[str]:
    """The variable names a provisioning file refers to (``$VAR`` and ``${VAR}``)."""
    return {m[1] or m[2] for m in _ENV_RE.finditer(text) if (m[1] or m[2]).startswith(ENV_PREFIX)}


def expand_env(text: str, settings: Settings) -> str:
    """Replace ``${TSGUARD_*}`` the way Grafana would, from settings instead of the environment."""
    values = setting_values(settings)

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if not name.startswith(ENV_PREFIX):
            return match[0]
        if name not in values:
            raise KeyError(f"{name} is not a tsguard setting")
        return values[name]

    return _ENV_RE.sub(replace, text)


def walk_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])
