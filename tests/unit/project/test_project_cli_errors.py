"""What the ``tsguard`` command says when its settings are wrong or a service is down:
one clear line and an exit code, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli import tsguard as _tsguard


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "env", "service"),
    [
        (["db", "migrate"], "TSGUARD_PG_DSN", "PostgreSQL"),
        (["db", "retention"], "TSGUARD_PG_DSN", "PostgreSQL"),
        (["topics", "create"], "TSGUARD_KAFKA_BOOTSTRAP_SERVERS", "Kafka"),
        (["dashboards", "push"], "TSGUARD_GRAFANA_URL", "an HTTP service at http://127.0.0.1"),
    ],
)
def test_a_service_that_is_down_is_one_line_not_a_traceback(
    args: list[str], env: str, service: str
) -> None:
    port = _closed_port()
    value = {
        "TSGUARD_PG_DSN": f"postgresql://tsguard:x@127.0.0.1:{port}/tsguard",
        "TSGUARD_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "TSGUARD_GRAFANA_URL": f"http://127.0.0.1:{port}",
    }[env]
    done = _tsguard(*args, **{env: value})
    assert done.returncode == 1, done.stderr
    assert f"tsguard: cannot reach {service}" in done.stderr
    assert "Traceback" not in done.stderr


def test_invalid_settings_name_the_variable() -> None:
    done = _tsguard("db", "retention", TSGUARD_RETENTION_DAYS="0")
    assert done.returncode == 2
    assert "TSGUARD_RETENTION_DAYS" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("dsn", ["postgresql://tsguard:50%off@127.0.0.1:1/tsguard", "not a dsn"])
def test_a_dsn_libpq_cannot_read_is_one_line_without_the_password(dsn: str) -> None:
    """A password with % in the URL gave a 50-line traceback ending in libpq's message,
    which quoted it."""
    done = _tsguard("db", "migrate", TSGUARD_PG_DSN=dsn)
    assert done.returncode == 2, done.stderr
    assert "TSGUARD_PG_DSN" in done.stderr and "TSGUARD_PG_PASSWORD" in done.stderr
    assert "Traceback" not in done.stderr and "50%off" not in done.stderr


def test_the_password_apart_from_the_dsn_is_used_where_the_dsn_has_none() -> None:
    from psycopg.conninfo import conninfo_to_dict

    from stream_app.settings import load_settings

    bare = "postgresql://tsguard@db:5432/tsguard"
    settings = load_settings(pg_dsn=bare, pg_password="a/b%c@d")
    assert conninfo_to_dict(settings.pg_conninfo())["password"] == "a/b%c@d"
    # the DSN's own password wins: a shell's TSGUARD_PG_PASSWORD meant for compose
    # does not change what a complete DSN says
    full = "postgresql://tsguard:mine@db:5432/tsguard"
    settings = load_settings(pg_dsn=full, pg_password="other")
    assert conninfo_to_dict(settings.pg_conninfo())["password"] == "mine"
    assert "password" not in conninfo_to_dict(load_settings(pg_dsn=bare).pg_conninfo())


def test_an_api_without_token_keys_says_which_settings_to_set() -> None:
    # a ValueError traceback before; on a free port, so that an API already serving on
    # the default one (a developer's) is not what it says
    done = _tsguard(
        "api",
        TSGUARD_OAUTH_DEV_MODE="false",
        TSGUARD_OAUTH_JWKS_URL="",
        TSGUARD_API_HOST="127.0.0.1",
        TSGUARD_API_PORT=str(_closed_port()),
    )
    assert done.returncode == 2, done.stderr
    assert "no token keys configured" in done.stderr and "TSGUARD_OAUTH_JWKS_URL" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "variable"),
    [
        (["api", "--port", "70000"], {}, "TSGUARD_API_PORT"),
        (["bridge", "mqtt"], {"TSGUARD_MQTT_PORT": "0"}, "TSGUARD_MQTT_PORT"),
        (["worker"], {"TSGUARD_WORKER_WEB_PORT": "-1"}, "TSGUARD_WORKER_WEB_PORT"),
    ],
)
def test_a_port_out_of_range_is_a_setting_error(
    args: list[str], env: dict[str, str], variable: str
) -> None:
    # failed only when something bound or dialled it (the worker's after joining Kafka)
    done = _tsguard(*args, **env)
    assert done.returncode == 2, done.stderr
    assert f"{variable}: Input should be" in done.stderr


@pytest.mark.parametrize("seconds", ["-1", "nan", "inf"])
def test_a_demo_length_that_is_no_length_is_refused_before_the_stack(seconds: str) -> None:
    # -1 and NaN started the stack and ran until Ctrl-C, as 0 does
    done = _tsguard("demo", "--seconds", seconds)
    assert done.returncode == 2, done.stderr
    assert "--seconds must be 0 or more" in " ".join(done.stderr.replace("│", " ").split())


@pytest.mark.parametrize(
    ("command", "port_variable", "says"),
    [
        (["api", "--dev"], "TSGUARD_API_PORT", "cannot serve the API on 127.0.0.1:{port}"),
        (["worker"], "TSGUARD_WORKER_WEB_PORT", "cannot serve /metrics on 127.0.0.1:{port}"),
    ],
)
def test_a_server_whose_port_is_taken_says_so_first(
    command: list[str], port_variable: str, says: str
) -> None:
    """uvicorn found the port taken after the API's start-up (among Kafka retries), Faust
    after the worker joined its group, in a traceback: now one line, exit 2, at once."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _tsguard(
            *command,
            **{
                port_variable: str(port),
                "TSGUARD_API_HOST": "127.0.0.1",
                "TSGUARD_WORKER_WEB_HOST": "127.0.0.1",
                "TSGUARD_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}",
            },
        )
    said = " ".join(done.stderr.replace("│", " ").split())
    assert done.returncode == 2, done.stderr
    assert says.format(port=port) + ": Address already in use" in said
    assert "Traceback" not in done.stderr and "Kafka" not in said


def test_an_api_whose_metrics_port_is_taken_says_so_first() -> None:
    """``tsguard api --metrics-port``: the API's /metrics over plain HTTP (compose's
    Prometheus scrapes it there); a port taken is one line and exit 2, before serving."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _tsguard(
            "api",
            "--dev",
            "--metrics-port",
            str(port),
            TSGUARD_API_HOST="127.0.0.1",
            TSGUARD_API_PORT=str(_closed_port()),
            TSGUARD_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{_closed_port()}",
        )
    said = " ".join(done.stderr.replace("│", " ").split())
    assert done.returncode == 2, done.stderr
    assert f"cannot serve /metrics on 127.0.0.1:{port}: Address already in use" in said
    assert "Traceback" not in done.stderr


def test_a_reader_that_goes_away_ends_a_piped_replay_quietly(tmp_path: Path) -> None:
    """``tsguard replay big.csv -o - | head -1``: before, ``error: [Errno 32] Broken
    pipe`` and exit 2; now as any command whose reader goes away (Click: exit 1, quiet)."""
    rows = "".join(f"{1_700_000_000 + 60 * i},{i % 13}\n" for i in range(60_000))
    (tmp_path / "big.csv").write_text("timestamp,value\n" + rows, encoding="utf-8")
    with subprocess.Popen(
        [sys.executable, "-m", "stream_app.cli", "replay", str(tmp_path / "big.csv"), "-o", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # as head does after its line
        stderr = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert first.startswith(b"timestamp,value,anomaly_score")
    assert code == 1, stderr
    assert "error" not in stderr and "Traceback" not in stderr


def test_a_connector_stops_on_sigterm_as_on_ctrl_c() -> None:
    """``docker stop`` sends SIGTERM: it killed the connectors on the spot (the MQTT bridge
    lost what it had acknowledged and not yet produced); now they stop as on Ctrl-C."""
    import signal

    with subprocess.Popen(
        [sys.executable, "-m", "stream_app.cli", "simulate", "iot", "--dry-run", "--rate", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b'{"entity"')  # running
        proc.send_signal(signal.SIGTERM)
        proc.stdout.read()
        stderr = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert code == 0, stderr
    assert "stopped" in stderr and "Traceback" not in stderr


def test_migrate_waits_for_a_database_that_is_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container's first start: PostgreSQL can refuse connections for a moment after
    its health check passed, and a one-shot migrate that gave up at once left every
    service after it waiting for good (the deployment review)."""
    import psycopg
    from typer.testing import CliRunner

    import stream_app.storage
    import stream_app.worker.cli as worker_cli
    from stream_app.cli import app

    tries: list[str] = []

    def starting(conninfo: str, *, readonly_password: str | None = None) -> list[str]:
        tries.append(conninfo)
        if len(tries) < 3:
            raise psycopg.OperationalError("connection refused\nIs the server running?")
        return ["001_initial"]

    monkeypatch.setattr(stream_app.storage, "migrate", starting)
    monkeypatch.setattr(worker_cli, "MIGRATE_FIRST_RETRY_S", 0.01)
    done = CliRunner().invoke(app, ["db", "migrate", "--wait", "30"])
    assert done.exit_code == 0, done.output
    assert len(tries) == 3 and "applied: 001_initial" in done.stdout
    assert done.stderr.count("PostgreSQL not reachable yet (connection refused)") == 2
    tries.clear()
    done = CliRunner().invoke(app, ["db", "migrate"])  # no wait: the first refusal ends it
    assert done.exit_code != 0 and len(tries) == 1


def test_migrate_that_waited_in_vain_says_so_in_one_line() -> None:
    done = _tsguard(
        "db",
        "migrate",
        "--wait",
        "3",
        TSGUARD_PG_DSN=f"postgresql://tsguard:x@127.0.0.1:{_closed_port()}/tsguard",
    )
    assert done.returncode == 1, done.stderr
    assert "PostgreSQL not reachable yet" in done.stderr
    assert "tsguard: cannot reach PostgreSQL" in done.stderr and "Traceback" not in done.stderr


def _series_csv(path: Path, points: int = 300) -> Path:
    rows = "".join(f"{1_700_000_000 + 60 * i},{i % 13},{int(i == 250)}\n" for i in range(points))
    path.write_text("timestamp,value,label\n" + rows, encoding="utf-8")
    return path


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    "args",
    [
        ["bench", "detectors", "--json", "--points", "100", "--repeats", "1"],
        ["bench", "detectors", "--points", "100", "--repeats", "1"],
        ["evaluate", "{csv}", "--json"],
        ["evaluate", "{csv}"],
        ["replay", "{csv}", "-o", "-"],
        ["simulate", "iot", "--dry-run", "--count", "5", "--start", "2024-01-01T00:00:00Z"],
        ["simulate", "market", "--dry-run", "--count", "5", "--start", "2024-01-02T15:00:00Z"],
    ],
    ids=[
        "bench-json",
        "bench-table",
        "evaluate-json",
        "evaluate-tables",
        "replay",
        "iot",
        "market",
    ],
)
def test_a_standard_output_that_cannot_be_written_is_one_line(
    args: list[str], tmp_path: Path
) -> None:
    """``> /dev/full``: bench and the simulators ended with a traceback (exit 1), evaluate
    and ``replay -o -`` said "[Errno 28] No space left on device" without naming what."""
    csv = str(_series_csv(tmp_path / "s.csv"))
    with Path("/dev/full").open("w") as full:
        last = _refused([a.format(csv=csv) for a in args], full)
    assert last == "error: cannot write standard output: No space left on device"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        ["stack", "--help"],
        ["replay", "--help"],
        ["stack", "status"],
        ["token", "issue", "--role", "viewer"],
    ],
    ids=["version", "help", "group-help", "command-help", "stack-status", "token-issue"],
)
def test_the_commands_without_an_output_of_their_own_say_a_full_standard_output_too(
    args: list[str], tmp_path: Path
) -> None:
    """These printed through Click and Rich alone: ``> /dev/full`` ended them with a
    traceback (``OSError: [Errno 28]``) and exit 1."""
    env = {"TSGUARD_STACK_DIR": str(tmp_path / "stack")}  # token issue makes its dev key there
    with Path("/dev/full").open("w") as full:
        last = _refused(args, full, env)
    assert last == "error: cannot write standard output: No space left on device"


def _refused(args: list[str], stdout: Any, env: dict[str, str] | None = None) -> str:
    """The last line ``tsguard args`` writes to stderr, having exited 2 with no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "stream_app.cli", *args],
        env={**os.environ, **(env or {})},
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_ground_truth_file_that_cannot_be_written_is_named() -> None:
    args = ["--dry-run", "--count", "2000", "--anomaly-rate", "0.5", "--ground-truth", "/dev/full"]
    last = _refused(["simulate", "iot", *args], subprocess.DEVNULL)
    assert last == "error: cannot write /dev/full: No space left on device"
