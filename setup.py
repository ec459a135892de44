"""Build step that ships the top-level data folders inside the ``stream_app`` package.

``schemas/`` and ``dashboards/`` stay the source of truth at the top of the
repository; a wheel (and the sdist built from it) gets a plain copy of them
under ``stream_app/_data/`` so :mod:`stream_app.resources` finds them with
``importlib.resources`` once installed. Editable installs read the top-level
folders directly and need no copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("schemas", "dashboards")


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


setup(cmdclass={"build_py": BuildPyWithData})
