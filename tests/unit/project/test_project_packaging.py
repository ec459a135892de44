"""The data files reach an installation: the helper, the build step, the image.

The wheel itself is built and installed in
``tests/integration/test_installed_wheel.py``; these checks are the fast part.
"""

from __future__ import annotations

import ast
import re
import tomllib
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


# What the wheel installs at the top of site-packages, beside every other project's
# packages: our own names only (``tsguard__mypyc`` is the compiled hot path's library).
SHIPPED_PACKAGES = {"stream_app", "connectors"}


def test_the_wheel_ships_only_our_packages() -> None:
    found = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
    included = found["packages"]["find"]["include"]
    assert {pattern.removesuffix("*").removesuffix(".") for pattern in included} == (
        SHIPPED_PACKAGES
    )


def test_shipped_code_imports_nothing_left_out_of_the_wheel() -> None:
    """A folder of the checkout that the wheel leaves out (benchmarks, tests) cannot be
    imported by what it ships: that works in the checkout and fails once installed."""
    left_out = {
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").is_file() and path.name not in SHIPPED_PACKAGES
    }
    assert "benchmarks" in left_out
    wrong = []
    for package in sorted(SHIPPED_PACKAGES):
        for module in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(module.read_text("utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                wrong += [
                    f"{module.relative_to(ROOT)}:{node.lineno} {name}"
                    for name in names
                    if name.partition(".")[0] in left_out
                ]
    assert not wrong, wrong


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text("utf-8").splitlines():
        if line and not line.startswith(("#", "-")):
            package, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", package).lower()] = version
    return pins


def test_the_image_installs_no_test_tools() -> None:
    runtime = _pins("constraints-runtime.txt")
    for tool in ("pytest", "ruff", "mypy", "hypothesis", "schemathesis", "pglast", "pyarrow"):
        assert tool not in runtime, tool
    dockerfile = (ROOT / "connectors" / "deploy" / "Dockerfile").read_text("utf-8")
    assert "-c constraints-runtime.txt" in dockerfile and "constraints.txt" not in dockerfile
    development = (ROOT / "constraints.txt").read_text("utf-8")
    assert "-c constraints-runtime.txt" in development.splitlines()
    assert not set(runtime) & set(_pins("constraints.txt")), "pinned twice"


def test_runtime_dependencies_are_pinned_and_free_of_gpl() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    assert project["license"] == "Apache-2.0" and (ROOT / "LICENSE").is_file()
    assert "Apache License" in (ROOT / "LICENSE").read_text("utf-8")[:200]
    runtime = _pins("constraints-runtime.txt")
    for requirement in project["dependencies"]:
        name = re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in runtime, requirement
    names = " ".join(project["dependencies"])
    for excluded in ("pglast", "pyarrow", "grafana-client"):
        assert excluded not in names
    assert project["optional-dependencies"]["parquet"] == ["pyarrow>=15"]


def test_the_image_build_context_leaves_out_local_state() -> None:
    # Without it the context carries the virtualenvs, .git and a local .env to the
    # Docker daemon, and stale in-place builds into the copied package.
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".venv-*", ".env", "build", "**/__pycache__", "**/*.so"} <= ignored
