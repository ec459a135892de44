"""docker-compose.yml and the settings object cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from stream_app.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env_names(service: dict[str, Any]) -> set[str]:
    env = service.get("environment") or {}
    names = set(env) if isinstance(env, dict) else {item.split("=", 1)[0] for item in env}
    return {n for n in names if n != "<<"}


def test_every_tsguard_variable_is_a_setting() -> None:
    fields = {f"TSGUARD_{name.upper()}" for name in Settings.model_fields}
    used: set[str] = set()
    for service in COMPOSE["services"].values():
        used |= {n for n in _env_names(service) if n.startswith("TSGUARD_")}
    used |= {n for n in COMPOSE["x-tsguard-env"] if n.startswith("TSGUARD_")}
    assert used, "compose sets no TSGUARD_ variable at all"
    assert used - fields == set()


def test_no_service_is_given_a_setting_of_the_local_stack() -> None:
    """``TSGUARD_STACK_*`` configure ``tsguard stack`` (the services it runs on loopback)
    and stand in for paths left unset. compose gave every tsguard service
    ``TSGUARD_STACK_DIR=/data/stack``, which none read: the workers' data dir and the dev
    key file are set, and the api, forwarder, migrate and topics have no /data volume."""
    given = set(COMPOSE["x-tsguard-env"])
    for service in COMPOSE["services"].values():
        given |= _env_names(service)
    assert sorted(n for n in given if n.startswith("TSGUARD_STACK_")) == []
    worker = COMPOSE["x-tsguard-env"]
    assert worker["TSGUARD_WORKER_DATA_DIR"], "the workers' data dir falls back to the stack's"


def test_every_mounted_repo_path_exists() -> None:
    mounts = []
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            # ${VAR:-default} in a path is mounted with its default unless set.
            source = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", volume).split(":", 1)[0]
            if source.startswith("./"):
                mounts.append((name, source))
    assert mounts
    for name, source in mounts:
        assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_build_context_files_exist() -> None:
    for service in COMPOSE["services"].values():
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()


def test_services_that_run_tsguard_use_known_commands() -> None:
    """Every tsguard service's command is a command of the CLI and each of its options one
    of that command's. It looked for the image ``tsguard:latest``, which compose does not
    use (its tsguard images carry the package version), so it checked nothing."""
    from typer.main import get_command

    from stream_app.cli import app

    checked = []
    for name, service in COMPOSE["services"].items():
        if not str(service.get("image", "")).startswith("tsguard:"):
            continue
        entrypoint = [str(a) for a in service.get("entrypoint", ["tsguard"])]
        assert entrypoint[0] == "tsguard", name
        args = [*entrypoint[1:], *(str(a) for a in service.get("command", []))]
        command: Any = get_command(app)
        while hasattr(command, "commands"):  # a group (typer's own click, not click's)
            assert args and args[0] in command.commands, f"{name}: unknown command in {args}"
            command = command.commands[args.pop(0)]
        options = {opt for param in command.params for opt in param.opts}
        unknown = [a for a in args if a.startswith("--") and a not in options]
        assert unknown == [], f"{name}: {command.name} has no option {unknown}"
        checked.append(name)
    assert {"migrate", "topics", "worker", "api", "forwarder", "token"} <= set(checked)


def test_interpolated_variables_have_defaults() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for match in re.finditer(r"\$\{([A-Z0-9_]+)(:-[^}]*)?\}", text):
        assert match.group(2) is not None, f"${{{match.group(1)}}} has no default"
