"""Which tsguard runs: its version, and whether its scoring hot path is compiled.

A wheel compiles :data:`COMPILED` with mypyc (see ``setup.py``); an editable
install, an sdist or a wheel built with ``TSGUARD_PURE_PYTHON=1`` runs the same
modules as Python, several times slower per point. Speed figures mean little
without saying which one ran, so ``tsguard --version`` and the benches say it.

>>> build() in ("compiled", "pure", "mixed")
True
>>> describe().startswith("tsguard ")
True
"""

from __future__ import annotations

import importlib
import importlib.machinery
import platform
from importlib import metadata
from typing import Literal

# What setup.py compiles (its COMPILED list of files, as module names); a unit test
# holds the two lists together.
COMPILED = (
    "stream_app.core.calibration",
    "stream_app.core.cleaning",
    "stream_app.core.detectors.robust_seasonal",
    "stream_app.core.policy",
    "stream_app.core.processor",
)
Build = Literal["compiled", "pure", "mixed"]


def is_extension(path: str | None) -> bool:
    """Whether a module's file is a C extension rather than Python source or bytecode.

    >>> is_extension("/x/robust_seasonal.cpython-311-x86_64-linux-gnu.so"), is_extension("/x/policy.py")
    (True, False)
    >>> is_extension(None)
    False
    """
    return path is not None and path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def build() -> Build:
    """``compiled`` when every hot-path module loaded as a C extension, ``pure`` when
    none did, ``mixed`` otherwise (a broken install: some sources shadowing others)."""
    compiled = [is_extension(importlib.import_module(name).__file__) for name in COMPILED]
    if all(compiled):
        return "compiled"
    return "mixed" if any(compiled) else "pure"


def version() -> str:
    """The installed distribution's version; ``unknown`` when run from sources that
    were never installed."""
    try:
        return metadata.version("tsguard")
    except metadata.PackageNotFoundError:
        return "unknown"


def describe() -> str:
    """One line: version, build, interpreter."""
    kind = build()
    what = {
        "compiled": "scoring hot path compiled with mypyc",
        "pure": "pure Python (the wheel compiles the scoring hot path: several times faster)",
        "mixed": "mixed: some hot-path modules compiled, some not (reinstall the wheel)",
    }[kind]
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"tsguard {version()}, {what}, {python}"
