"""Hypothesis profiles for the property tests.

``ci`` (the default under ``CI=true``) draws the same examples on every run, so a
landing never fails on a draw nobody can reproduce; ``dev`` (the default elsewhere)
draws fresh ones each run, which is how latent bugs surface (``_log_zero`` was found
that way), keeps a failing example in ``.hypothesis/`` to replay it first on the next
run, and prints the blob that reproduces it (``@reproduce_failure``).
``HYPOTHESIS_PROFILE`` names another profile.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
)
