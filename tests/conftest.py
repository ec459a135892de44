"""Hypothesis profiles for the property tests.

``ci`` (the default under ``CI=true``) draws the same examples on every run, so a
landing never fails on a draw nobody can reproduce; ``dev`` (the default elsewhere)
draws fresh ones each run, which is how latent bugs surface (``_log_zero`` was found
that way), keeps a failing example in ``.hypothesis/`` to replay it first on the next
run, and prints the blob that reproduces it (``@reproduce_failure``).
``HYPOTHESIS_PROFILE`` names another profile.

Under pytest-xdist (``make test`` runs ``-n 2 --dist loadgroup``) the tests of the
local stack, the folders in ``STACK_FOLDERS``, are one group: one process runs them one
after another in their order, as a single pytest would (they share the stack's ports,
the worker's metrics port among them, and drills time a worker on it), while the other
process runs the unit tests and doctests beside them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

TESTS = Path(__file__).parent
STACK_FOLDERS = tuple(TESTS / name for name in ("integration", "api", "connectors", "dashboards"))

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
)


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the groups' marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put every test of the local stack in one xdist group (a no-op without xdist)."""
    for item in items:
        if any(item.path.is_relative_to(folder) for folder in STACK_FOLDERS):
            item.add_marker(pytest.mark.xdist_group("stack"))
