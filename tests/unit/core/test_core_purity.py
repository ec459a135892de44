"""The core stays pure: no I/O libraries, no clock, no environment."""

from __future__ import annotations

import ast
from pathlib import Path

import stream_app.core

FORBIDDEN = {
    "faust",
    "aiokafka",
    "psycopg",
    "psycopg_pool",
    "httpx",
    "prometheus_client",
    "fastapi",
    "os",
    "time",
    "socket",
    "requests",
    "subprocess",
}
CORE = Path(stream_app.core.__file__).parent


def test_core_imports_nothing_impure() -> None:
    modules = sorted(CORE.rglob("*.py"))
    assert len(modules) > 5
    problems = []
    for path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            problems += [f"{path.name}: import {n}" for n in names if n.split(".")[0] in FORBIDDEN]
            if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today"):
                problems.append(f"{path.name}:{node.lineno}: .{node.attr}()")
            if isinstance(node, ast.Name) and node.id == "environ":
                problems.append(f"{path.name}:{node.lineno}: environ")
    assert problems == []
