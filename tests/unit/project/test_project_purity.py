"""Only the settings module reads the environment (STYLE habit 6)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ALLOWED = {ROOT / "stream_app" / "settings.py"}


def _reads_environment(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "getenv", "environb")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            lines.append(node.lineno)
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(a.name in ("environ", "getenv") for a in node.names)
        ):
            lines.append(node.lineno)
    return lines


def test_nothing_but_settings_reads_the_environment() -> None:
    offenders = []
    for package in ("stream_app", "connectors"):
        for path in (ROOT / package).rglob("*.py"):
            if path in ALLOWED:
                continue
            lines = _reads_environment(ast.parse(path.read_text(), str(path)))
            offenders += [f"{path.relative_to(ROOT)}:{n}" for n in lines]
    assert offenders == []
