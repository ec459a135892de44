"""The wire format has one home: only the worker itself uses its re-export."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_connectors_api_and_offline_read_the_wire_package() -> None:
    offenders = []
    for folder in ("connectors", "stream_app/api", "stream_app/offline"):
        for path in (ROOT / folder).rglob("*.py"):
            if "stream_app.worker.decode" in _imports(path):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_wire_package_imports_no_io_framework() -> None:
    banned = ("faust", "aiokafka", "psycopg", "fastapi", "httpx", "prometheus_client")
    for path in (ROOT / "stream_app" / "wire").glob("*.py"):
        heavy = [m for m in _imports(path) if m.split(".")[0] in banned]
        assert heavy == [], (path.name, heavy)
