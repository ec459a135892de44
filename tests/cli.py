"""The ``tsguard`` command as a user runs it, for tests of its output and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys


def tsguard(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``tsguard ARGS`` through the console script's entry point (main), with ``env``
    added to this process's environment; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "stream_app.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
