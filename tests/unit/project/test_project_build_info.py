"""``tsguard --version`` and the benches say which build runs: compiled or pure."""

from __future__ import annotations

import ast
import importlib
import json
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_app import build_info
from stream_app.cli import app

ROOT = Path(__file__).resolve().parents[3]


def _setup_compiled() -> tuple[str, ...]:
    """setup.py's COMPILED files, read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text("utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets
        ):
            files = ast.literal_eval(node.value)
            return tuple(f.removesuffix(".py").replace("/", ".") for f in files)
    raise AssertionError("setup.py has no COMPILED list")


def test_the_modules_checked_are_the_modules_setup_compiles() -> None:
    assert _setup_compiled() == build_info.COMPILED


def _loaded_as(monkeypatch: pytest.MonkeyPatch, extension: set[str]) -> None:
    """Make the hot-path modules look loaded from a C extension (those in ``extension``)
    or from their sources."""
    real = importlib.import_module
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]

    def fake(name: str) -> types.ModuleType:
        if name not in build_info.COMPILED:
            return real(name)
        module = types.ModuleType(name)
        module.__file__ = f"/site/{name.replace('.', '/')}{suffix if name in extension else '.py'}"
        return module

    monkeypatch.setattr(build_info.importlib, "import_module", fake)


@pytest.mark.parametrize(
    ("extension", "expected"),
    [
        (set(build_info.COMPILED), "compiled"),
        (set(), "pure"),
        ({"stream_app.core.policy"}, "mixed"),
    ],
)
def test_the_build_is_read_from_where_the_hot_path_loaded(
    monkeypatch: pytest.MonkeyPatch, extension: set[str], expected: str
) -> None:
    _loaded_as(monkeypatch, extension)
    assert build_info.build() == expected


def test_version_names_the_release_and_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith(f"tsguard {build_info.version()}, ")
    running = build_info.build()
    assert ("compiled with mypyc" in line) == (running == "compiled"), line
    assert f"{sys.version_info.major}.{sys.version_info.minor}." in line
    _loaded_as(monkeypatch, {"stream_app.core.cleaning"})
    mixed = CliRunner().invoke(app, ["--version"]).stdout
    assert "mixed" in mixed and "reinstall the wheel" in mixed


def test_the_detector_bench_says_which_build_it_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["bench", "detectors", "--json", "--points", "300", "--repeats", "1"]
    _loaded_as(monkeypatch, set())
    pure = CliRunner().invoke(app, args)
    assert pure.exit_code == 0, pure.output
    assert json.loads(pure.stdout)["build"] == "pure"
    # a pure build's points/s are not the product's: the bench says so, apart from the JSON
    assert "make bench" in pure.stderr
    _loaded_as(monkeypatch, set(build_info.COMPILED))
    compiled = CliRunner().invoke(app, args)
    assert json.loads(compiled.stdout)["build"] == "compiled"
    assert "make bench" not in compiled.stderr
