"""The files tsguard ships besides code: one place that finds them.

``schemas``, ``dashboards``, ``deploy`` (Dockerfile, Prometheus and
Alertmanager configs) and ``migrations``. In an installed wheel they are
package data reached through :mod:`importlib.resources` (the build copies the
top-level ``schemas/`` and ``dashboards/`` folders into ``stream_app/_data``);
in a source checkout (editable install) the top-level folders themselves are
used, so there is one copy in git.

>>> (data_dir("schemas") / "reading.schema.json").is_file()
True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

DataKind = Literal["schemas", "dashboards", "deploy", "migrations"]

# Kinds that live in a Python package already (package data), first found wins.
_IN_PACKAGE: dict[str, tuple[tuple[str, str], ...]] = {
    "deploy": (("connectors", "deploy"),),
    "migrations": (("stream_app.storage", "migrations"),),
}


def _in_package(kind: str) -> Path | None:
    for package, folder in _IN_PACKAGE[kind]:
        try:
            found = _as_path(resources.files(package) / folder)
        except ModuleNotFoundError:
            continue
        if found is not None:
            return found
    return None


def _as_path(traversable: object) -> Path | None:
    # Wheels are installed unzipped, so the resources are real files on disk.
    return traversable if isinstance(traversable, Path) and traversable.is_dir() else None


def data_dir(kind: DataKind) -> Path:
    """The folder holding ``kind``; FileNotFoundError if this install lacks it."""
    if kind in _IN_PACKAGE:
        found = _in_package(kind)
    else:
        found = _as_path(resources.files("stream_app") / "_data" / kind)
        if found is None:
            checkout = Path(__file__).resolve().parent.parent / kind
            found = checkout if (checkout.parent / "pyproject.toml").is_file() else None
    if found is None:
        raise FileNotFoundError(f"tsguard's {kind!r} files are not in this installation")
    return found


def data_file(kind: DataKind, name: str) -> Path:
    """One file of ``kind`` (e.g. ``data_file("schemas", "reading.schema.json")``)."""
    path = data_dir(kind) / name
    if not path.is_file():
        raise FileNotFoundError(f"{name} is not among tsguard's {kind} files ({path.parent})")
    return path
