"""Build steps: the data folders shipped in the package, and the hot path compiled.

``schemas/`` and ``dashboards/`` stay the source of truth at the top of the
repository; a wheel (and the sdist built from it) gets a plain copy of them
under ``stream_app/_data/`` so :mod:`stream_app.resources` finds them with
``importlib.resources`` once installed. Editable installs read the top-level
folders directly and need no copy.

A wheel also compiles the scoring hot path (``COMPILED``) with mypyc, pinned
in ``[build-system] requires``: the same sources, as C extensions, about half
the CPU per point. The ``.py`` files ship beside them. It stays pure Python
(and says so on stderr) when ``TSGUARD_PURE_PYTHON`` is set to anything but
``0``, on an interpreter other than CPython, or when no C compiler works;
editable installs and sdists are always pure Python.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("schemas", "dashboards")
COMPILED = (
    "stream_app/core/calibration.py",
    "stream_app/core/cleaning.py",
    "stream_app/core/detectors/robust_seasonal.py",
    "stream_app/core/policy.py",
    "stream_app/core/processor.py",
)
# The project's type-checking settings; river and numpy are not followed (the compiled
# modules do not use them, and analysing them took mypyc minutes).
MYPYC_CONFIG = """\
[mypy]
python_version = 3.11
strict = True
ignore_missing_imports = True
warn_unused_ignores = False
[mypy-river.*,numpy.*]
follow_imports = skip
"""
# Commands that build extensions; metadata, sdist and editable builds stay pure Python.
_BUILDS_EXTENSIONS = {"bdist_wheel", "build", "build_ext", "install"}


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "stream_app" / "_data"
        for name in SHIPPED:
            source = ROOT / name
            if not source.is_dir():
                raise FileNotFoundError(f"{source} is missing: it must ship in the wheel")
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))


def _pure(why: str) -> list[Any]:
    print(f"tsguard: building pure Python ({why})", file=sys.stderr)
    return []


def _compiler_works() -> bool:
    """Whether a C compiler builds against this interpreter's headers."""
    from distutils.ccompiler import new_compiler  # setuptools' copy once it is imported
    from distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "probe.c"
        source.write_text("#include <Python.h>\nint tsguard_probe(void) { return 0; }\n")
        try:
            compiler.compile(
                [str(source)], output_dir=tmp, include_dirs=[sysconfig.get_path("include")]
            )
        except Exception:  # no compiler, or no Python headers
            return False
    return True


def _extensions() -> list[Any]:
    if not _BUILDS_EXTENSIONS.intersection(sys.argv[1:]):
        return []
    if os.environ.get("TSGUARD_PURE_PYTHON", "0") not in ("", "0"):
        return _pure("TSGUARD_PURE_PYTHON is set")
    if platform.python_implementation() != "CPython":
        return _pure(f"mypyc needs CPython, not {platform.python_implementation()}")
    if not _compiler_works():
        return _pure("no working C compiler")
    from mypyc.build import mypycify

    config = Path("build") / "tsguard-mypyc.ini"  # beside the C that mypyc writes there
    config.parent.mkdir(exist_ok=True)
    config.write_text(MYPYC_CONFIG)
    return list(mypycify(["--config-file", str(config), *COMPILED], group_name="tsguard"))


setup(cmdclass={"build_py": BuildPyWithData}, ext_modules=_extensions())
