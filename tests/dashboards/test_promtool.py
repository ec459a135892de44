"""`promtool check config`, `check rules` and `test rules` on the provisioning files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from connectors.stack.prometheus import Prometheus
from stream_app.settings import Settings
from tests.dashboards.queries import FILES

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def _promtool(*args: str) -> str:
    if not Path(PROMTOOL).exists():
        pytest.fail("promtool is missing: `tsguard stack up` installs Debian's prometheus")
    done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_check_rules() -> None:
    files = sorted(str(p) for p in FILES.prometheus_dir.glob("*.yml"))
    assert files
    assert "SUCCESS" in _promtool("check", "rules", *files)


def test_rule_unit_tests() -> None:
    tests = sorted(str(p) for p in (FILES.prometheus_dir / "tests").glob("*.yml"))
    assert tests
    assert "SUCCESS" in _promtool("test", "rules", *tests)


def test_check_the_stacks_generated_config(tmp_path: Path) -> None:
    """The config `tsguard stack up` writes, which loads dashboards/prometheus/*.yml."""
    service = Prometheus(Settings(stack_dir=tmp_path))
    service._write_config()
    text = service.config_file.read_text()
    assert str(FILES.prometheus_dir / "*.yml") in text
    out = _promtool("check", "config", str(service.config_file))
    assert "tsguard.rules.yml" in out
