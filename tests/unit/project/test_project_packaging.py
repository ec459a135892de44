"""The data files reach an installation: the helper, the build step, the image.

The wheel itself is built and installed in
``tests/integration/test_installed_wheel.py``; these checks are the fast part.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stream_app.resources import data_dir, data_file

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("kind", "probe"),
    [
        ("schemas", "reading.schema.json"),
        ("dashboards", "postgres-datasource/timescaledb-false.yaml"),
        ("deploy", "prometheus.yml"),
        ("migrations", "001_tables.sql"),
    ],
)
def test_every_kind_of_data_is_found(kind: str, probe: str) -> None:
    assert (data_dir(kind) / probe).is_file()  # type: ignore[arg-type]


def test_a_missing_file_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="not among tsguard's schemas"):
        data_file("schemas", "nope.json")


def test_the_build_step_ships_the_top_level_folders() -> None:
    text = (ROOT / "setup.py").read_text("utf-8")
    shipped = re.search(r"SHIPPED = \(([^)]*)\)", text)
    assert shipped is not None
    assert {"schemas", "dashboards"} <= set(re.findall(r'"(\w+)"', shipped[1]))


def test_the_image_copies_what_the_build_needs() -> None:
    dockerfile = (ROOT / "connectors" / "deploy" / "Dockerfile").read_text("utf-8")
    copied = {
        part.rstrip("/")
        for line in dockerfile.splitlines()
        if line.startswith("COPY ")
        for part in line.split()[1:-1]
    }
    needed = {"pyproject.toml", "setup.py", "MANIFEST.in", "stream_app", "connectors"}
    assert needed | {"schemas", "dashboards"} <= copied
