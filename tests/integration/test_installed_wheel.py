"""What ships is what is tested: the wheel, installed outside the checkout.

The wheel is built from this repository, installed (not editable) into a
fresh virtual environment in a temporary folder, and every command runs from
another temporary folder with no ``PYTHONPATH``, so nothing can be found in
the source tree. Against the real local stack it migrates a fresh schema,
serves the API in dev mode and ingests a reading, replays a small CSV and
prints where the dashboards are. The scoring hot path must be the mypyc build
(see ``setup.py``), unless ``TSGUARD_PURE_PYTHON`` asked for a pure wheel.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson
import psycopg
import pytest

from stream_app.build_info import COMPILED  # what setup.py compiles, as module names
from stream_app.offline import families
from stream_app.settings import Settings
from tests.integration.conftest import FreshSchema, FreshTopic
from tests.unit.project.test_project_packaging import SHIPPED_PACKAGES

ROOT = Path(__file__).resolve().parents[2]
_NOT_SOURCE = (
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
)
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


@dataclass(frozen=True)
class Installed:
    venv: Path
    workdir: Path
    wheel: Path

    @property
    def tsguard(self) -> str:
        return str(self.venv / "bin" / "tsguard")

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment: no PYTHONPATH, no TSGUARD_* of the developer, no .env."""
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        keep["PATH"] = f"{self.venv / 'bin'}:{keep.get('PATH', '/usr/bin:/bin')}"
        return {**keep, **extra}

    def run(self, *args: str, env: dict[str, str], timeout: float = 180) -> str:
        done = subprocess.run(
            [self.tsguard, *args],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"tsguard {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout


def _pip(*args: str, python: str = sys.executable, timeout: float = 600) -> None:
    subprocess.run(
        [python, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel, install it with the runtime constraints into a fresh venv."""
    # Built from a clean copy: a stale build/ folder in the checkout would
    # otherwise put modules deleted since into the wheel.
    source = tmp_path_factory.mktemp("source") / "tsguard"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    dist = tmp_path_factory.mktemp("dist")
    _pip("wheel", "--no-deps", "-w", str(dist), str(source))
    (wheel,) = dist.glob("tsguard-*.whl")
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # The image's pins: the run-time set only, no test tools.
    _pip("install", "-c", str(ROOT / "constraints-runtime.txt"), str(wheel), python=python)
    workdir = tmp_path_factory.mktemp("elsewhere")
    found = subprocess.run(
        [python, "-c", "import stream_app, connectors; print(stream_app.__file__)"],
        cwd=workdir,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(found).is_relative_to(venv), found
    assert not Path(found).is_relative_to(ROOT), found
    return Installed(venv, workdir, wheel)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def api_process(
    installed: Installed, fresh_schema: FreshSchema, api_topic: str, settings: Settings
) -> Iterator[tuple[str, dict[str, str]]]:
    port = _free_port()
    env = installed.env(
        TSGUARD_PG_DSN=fresh_schema.conninfo,
        # The broker the fresh topic was made on (a stack on other ports than the defaults).
        TSGUARD_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        TSGUARD_API_PORT=str(port),
        TSGUARD_OAUTH_DEV_KEY_FILE=str(installed.workdir / "dev-keys.json"),
        TSGUARD_TOPIC_READINGS=api_topic,
        TSGUARD_TOPIC_CONTROL=f"{api_topic}.control",
        TSGUARD_TOPIC_FEEDBACK=f"{api_topic}.feedback",
    )
    installed.run("db", "migrate", env=env)
    with (installed.workdir / "api.log").open("wb") as log:
        process = subprocess.Popen(
            [installed.tsguard, "api", "--dev"],
            cwd=installed.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{port}", env
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


@pytest.fixture
async def api_topic(fresh_topic: FreshTopic) -> str:
    return await fresh_topic("wheel")


def _poll_openapi(base: str, within_s: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + within_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base}/openapi.json", timeout=5)
            if response.status_code == 200:
                document: dict[str, object] = response.json()
                return document
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)  # polling interval of a deadline loop, not a wait for an event
    raise AssertionError(f"the installed API did not serve /openapi.json: {last}")


def test_installed_wheel_migrates_and_serves_the_api(
    installed: Installed, api_process: tuple[str, dict[str, str]], fresh_schema: FreshSchema
) -> None:
    base, env = api_process
    with psycopg.connect(fresh_schema.conninfo) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (fresh_schema.name,),
            )
        }
    assert {"observations", "anomalies", "schema_migrations"} <= tables

    document = _poll_openapi(base)
    components = document.get("components")
    assert isinstance(components, dict) and "Reading" in components["schemas"]

    token = installed.run("token", "issue", "--role", "ingest", env=env).strip()
    reading = {"entity": "wheel/pump-1", "ts": "2026-11-26T10:00:00Z", "metrics": {"t": 1.5}}
    deadline = time.monotonic() + 60
    while True:  # the API connects to Kafka in the background: 503 until it has
        response = httpx.post(
            f"{base}/v1/readings",
            json=[reading, {"entity": "wheel/bad\n", "ts": "x", "metrics": {}}],
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        if response.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)


def _write_series(path: Path, values: list[float], step: float = 300.0) -> None:
    start = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("timestamp", "value"))
        for i, value in enumerate(values):
            at = start + timedelta(seconds=step * i)
            writer.writerow((at.strftime("%Y-%m-%dT%H:%M:%SZ"), repr(value)))


def test_installed_wheel_replays_a_csv_and_finds_the_dashboards(installed: Installed) -> None:
    source = installed.workdir / "series.csv"
    _write_series(source, [10.0 + (minute % 7) for minute in range(60)], step=60.0)
    target = installed.workdir / "scored.csv"
    installed.run("replay", str(source), "-o", str(target), env=installed.env())
    with target.open(newline="") as handle:
        scored = list(csv.DictReader(handle))
    assert len(scored) == 60
    assert all(row["anomaly_score"] != "" for row in scored[-10:]), scored[-1]

    where = installed.run("dashboards", "where", env=installed.env())
    dashboards = installed.venv / "lib"
    assert str(dashboards) in where
    listed = [line.split("(")[-1].rstrip(")") for line in where.splitlines() if "->" in line]
    folders = [Path(item) for item in listed if not item.endswith(".yaml")]
    assert folders and all(folder.is_dir() for folder in folders)
    assert any((folder / "overview.json").is_file() for folder in folders)
    (pattern,) = [Path(item) for item in listed if item.endswith(".yaml")]
    for flag in ("true", "false"):
        assert (pattern.parent / f"timescaledb-{flag}.yaml").is_file()


@pytest.mark.parametrize(
    ("name", "points"),
    # past a count's far tail (3.5 days, 1,008 points), and past the weekly profile (day 7.25)
    [("counts", 1400), ("business_hours", 2600), ("random_spikes", 2600)],
)
def test_installed_wheel_scores_as_the_source_tree_does(
    installed: Installed, name: str, points: int
) -> None:
    """The compiled hot path must score exactly as the sources: mypyc fixes a local's type
    at its first assignment, so a bool later bound to a float's name runs under CPython and
    raises in the wheel."""
    base = getattr(families, name)
    values = base(np.random.default_rng(5), 300.0 * np.arange(points, dtype=np.float64))
    source = installed.workdir / f"{name}.csv"
    _write_series(source, values.tolist())
    shipped = installed.workdir / f"{name}.wheel.csv"
    installed.run("replay", str(source), "-o", str(shipped), env=installed.env())
    checkout = installed.workdir / f"{name}.source.csv"
    replay = ["replay", str(source), "-o", str(checkout)]
    subprocess.run(
        [sys.executable, "-c", "from stream_app.cli import main; main()", *replay],
        cwd=ROOT,
        env=installed.env(),
        capture_output=True,
        check=True,
        timeout=300,
    )
    wheel_rows = shipped.read_text().splitlines()
    assert len(wheel_rows) == points + 1
    assert wheel_rows == checkout.read_text().splitlines()


def test_installed_wheel_runs_the_compiled_hot_path(installed: Installed) -> None:
    """A wheel built where a C compiler works loads its mypyc extensions, not the sources."""
    if os.environ.get("TSGUARD_PURE_PYTHON", "0") not in ("", "0"):
        pytest.skip("TSGUARD_PURE_PYTHON is set: the wheel is pure Python on purpose")
    code = "import importlib, sys\nfor name in sys.argv[1:]: print(importlib.import_module(name).__file__)"
    done = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", code, *COMPILED],
        cwd=installed.workdir,
        env=installed.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    files = done.stdout.split()
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    assert len(files) == len(COMPILED), done.stdout
    loaded = {name: file for name, file in zip(COMPILED, files, strict=True)}
    pure = {name: file for name, file in loaded.items() if not file.endswith(suffix)}
    assert not pure, f"pure Python where the wheel should be compiled: {pure}"
    assert all(Path(file).is_relative_to(installed.venv) for file in files), loaded
    # and it says so, for whoever reads a bench's figures
    version = installed.run("--version", env=installed.env())
    assert "scoring hot path compiled with mypyc" in version, version


def test_installed_wheel_installs_only_our_packages(installed: Installed) -> None:
    """site-packages is shared: a generic top-level name (``benchmarks``) would shadow,
    or be shadowed by, another project's package of that name."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        top = {name.partition("/")[0] for name in wheel.namelist()}
    dist_info = {name for name in top if name.endswith(".dist-info")}
    libraries = {name for name in top if name.startswith("tsguard__mypyc.")}
    assert len(dist_info) == 1 and len(libraries) <= 1, top
    assert top - dist_info - libraries == SHIPPED_PACKAGES


def test_installed_wheel_runs_the_detector_bench(installed: Installed) -> None:
    """``tsguard bench`` runs from the wheel alone (its harnesses are in stream_app.bench)."""
    out = installed.run(
        "bench", "detectors", "--json", "--points", "200", "--repeats", "1", env=installed.env()
    )
    result = orjson.loads(out)
    assert result["tsguard_points_per_s"] > 0 and result["river_hst_points_per_s"] > 0


def test_installed_wheel_runs_the_pipeline_bench(installed: Installed, settings: Settings) -> None:
    """``tsguard bench pipeline``: one installed worker end to end on the local stack, in
    a topic and a schema of its own, with a load small enough for a test."""
    # the bench makes sure of the stack its settings describe: the developer's own
    # (TSGUARD_STACK_*), or it started one on the default ports beside a private stack
    stack = {k: v for k, v in os.environ.items() if k.startswith("TSGUARD_STACK_")}
    env = installed.env(
        **stack,
        TSGUARD_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        TSGUARD_PG_DSN=settings.pg_conninfo(),  # the password and TLS folded in
        TSGUARD_WORKER_BATCH_SIZE="500",
    )
    args = ["--json", "--readings", "2000", "--seconds", "2", "--offered-rate", "200"]
    out = installed.run("bench", "pipeline", *args, "--entities", "20", env=env, timeout=300)
    result = orjson.loads(out)
    assert result["readings"] == 2000 and result["readings_per_s"] > 0
    assert result["latency_readings"] > 0
