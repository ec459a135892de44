"""docker-compose.yml read as a deployment (no Docker engine here: the YAML is parsed).

Someone with only Docker must be able to start it, get a token, see data and
know every service is healthy: pinned images, health checks on every
long-running service, dependencies that wait for the right condition, and a
``demo`` profile whose token and simulator services work with the very
arguments and environment the file gives them.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from stream_app.cli import app
from stream_app.settings import Settings
from stream_app.wire import ReadingDecoder, Rejection

ROOT = Path(__file__).resolve().parents[3]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """``${VAR:-default}`` as compose expands it."""
    return _VAR.sub(lambda m: env.get(m[1], m[2] or ""), value)


def service_env(name: str, env: dict[str, str]) -> dict[str, str]:
    raw = SERVICES[name].get("environment") or {}
    return {k: interpolate(str(v), env) for k, v in raw.items() if k != "<<"}


def one_shot(name: str) -> bool:
    return SERVICES[name].get("restart") == "no"


def test_every_image_is_pinned() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image} is not pinned"
        if repo == "tsguard":
            assert tag == VERSION, f"{name}: tsguard image {tag} is not the package {VERSION}"


def test_the_tsguard_image_is_built_on_pinned_python_images() -> None:
    """compose pins every image it pulls, but the tsguard image it builds started from
    python:3.11 and python:3.11-slim: each build took whatever patch release and Debian
    release those tags meant that day, and the stages could differ (the wheel compiled
    against one Debian's libraries, installed on another's)."""
    text = (ROOT / "connectors" / "deploy" / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert len(bases) == 2, bases
    pins = [re.fullmatch(r"python:(3\.11\.\d+)(?:-slim)?-([a-z]+)", base) for base in bases]
    assert all(pins), f"not pinned to a Python patch release and a Debian release: {bases}"
    assert len({(pin[1], pin[2]) for pin in pins if pin}) == 1, bases


def test_every_long_running_service_has_a_health_check() -> None:
    missing = [
        name
        for name in SERVICES
        if not one_shot(name) and not SERVICES[name].get("healthcheck", {}).get("test")
    ]
    assert missing == []


def test_published_ports_listen_on_loopback_unless_told_otherwise() -> None:
    # nothing is reachable from other machines until told. The API and Grafana have
    # logins and open together; Prometheus and Alertmanager have none (whoever reaches
    # Alertmanager can silence every alert) and open only by a switch of their own:
    # before, the README's one switch for the API opened them too
    published = {
        name: [str(p) for p in service["ports"]]
        for name, service in SERVICES.items()
        if service.get("ports")
    }
    assert set(published) == {"api", "prometheus", "alertmanager", "grafana"}
    switch = {"api": "TSGUARD_PUBLISH_ADDRESS", "grafana": "TSGUARD_PUBLISH_ADDRESS"}
    for name, ports in published.items():
        closed = [interpolate(p, {}) for p in ports]
        assert all(p.startswith("127.0.0.1:") for p in closed), (name, closed)
        mine = switch.get(name, "TSGUARD_MONITORING_PUBLISH_ADDRESS")
        for variable in ("TSGUARD_PUBLISH_ADDRESS", "TSGUARD_MONITORING_PUBLISH_ADDRESS"):
            opened = [interpolate(p, {variable: "0.0.0.0"}) for p in ports]
            want = "0.0.0.0:" if variable == mine else "127.0.0.1:"
            assert all(p.startswith(want) for p in opened), (name, variable, opened)


def test_a_stopping_worker_gets_longer_than_its_drain_and_backstop() -> None:
    """The grace period was 30 s, the drain's bound (20 s) plus the backstop's 10 s: a
    Faust shutdown that hung was killed (exit 137) just before the backstop's exit 0."""
    from stream_app.settings import Settings

    grace = SERVICES["worker"]["stop_grace_period"]
    assert grace.endswith("s"), grace
    env = service_env("worker", {})
    drain = float(env.get("TSGUARD_WORKER_SHUTDOWN_TIMEOUT_S", 0)) or float(
        Settings.model_fields["worker_shutdown_timeout_s"].default
    )
    assert float(grace[:-1]) >= drain + 10 + 5


def test_the_database_password_reaches_the_services_apart_from_the_url() -> None:
    """A generated password holds / % @: inside the DSN's URL, "/" made its host
    "tsguard" and "%" a traceback, and no service started."""
    from psycopg.conninfo import conninfo_to_dict

    from stream_app.settings import load_settings

    password = "a/b%c@d:e#f g'h"
    env = service_env("worker", {"TSGUARD_PG_PASSWORD": password})
    dsn, given = env["TSGUARD_PG_DSN"], env["TSGUARD_PG_PASSWORD"]
    assert given == password and password not in dsn
    db = SERVICES["timescaledb"]["environment"]
    assert interpolate(db["POSTGRES_PASSWORD"], {"TSGUARD_PG_PASSWORD": password}) == password
    parts = conninfo_to_dict(load_settings(pg_dsn=dsn, pg_password=given).pg_conninfo())
    assert parts["password"] == password and parts["host"] == "timescaledb"
    assert parts["user"] == db["POSTGRES_USER"] and parts["dbname"] == db["POSTGRES_DB"]


def test_every_long_running_service_comes_back_after_a_crash_or_a_reboot() -> None:
    # without a policy, Kafka or the database that crashed (or a host that rebooted)
    # stays down while the workers restart against nothing
    for name, service in SERVICES.items():
        if not one_shot(name):
            assert service.get("restart") in ("unless-stopped", "always"), name


def test_every_service_rotates_its_log() -> None:
    # Docker's json-file log grows without bound unless told: a chatty service fills
    # the disk
    for name, service in SERVICES.items():
        logging = service.get("logging") or {}
        options = logging.get("options") or {}
        assert logging.get("driver") == "json-file", name
        assert options.get("max-size") and int(options.get("max-file", 0)) >= 1, name


def test_prometheus_cannot_be_shut_down_or_reloaded_over_http() -> None:
    assert not any("enable-lifecycle" in str(a) for a in SERVICES["prometheus"]["command"])


def test_dependencies_wait_for_what_the_service_can_report() -> None:
    for name, service in SERVICES.items():
        for dependency, how in (service.get("depends_on") or {}).items():
            condition = how["condition"]
            if condition == "service_completed_successfully":
                assert one_shot(dependency), (name, dependency)
            elif condition == "service_healthy":
                assert SERVICES[dependency].get("healthcheck"), (name, dependency)
            else:
                pytest.fail(f"{name} waits for {dependency} to be merely started")


@pytest.mark.parametrize("name", ["api", "worker", "forwarder", "simulator"])
def test_tsguard_health_checks_poll_the_port_the_service_serves(name: str) -> None:
    service = SERVICES[name]
    check = " ".join(service["healthcheck"]["test"])
    (port,) = re.findall(r"127\.0\.0\.1:(\d+)/", check)
    env = service_env(name, {})
    served = {
        env.get("TSGUARD_API_PORT"),
        env.get("TSGUARD_WORKER_WEB_PORT"),
        *re.findall(r"--metrics-port (\d+)", " ".join(service.get("command", []))),
    }
    assert port in served, (name, port, served)


def _listens_on(name: str, port: str) -> str | None:
    """The address a tsguard service listens on at ``port`` inside its container (the
    defaults are loopback: reachable from the container alone), or None if it serves
    nothing there."""
    service = SERVICES[name]
    env = service_env(name, {})
    if env.get("TSGUARD_API_PORT") == port:
        return env.get("TSGUARD_API_HOST", "127.0.0.1")
    if env.get("TSGUARD_WORKER_WEB_PORT") == port:
        return env.get("TSGUARD_WORKER_WEB_HOST", "127.0.0.1")
    args = [str(a) for a in service.get("command", [])]
    options = dict(itertools.pairwise(args))
    if options.get("--metrics-port") == port:
        return options.get("--metrics-host", "127.0.0.1")
    return None


def test_prometheus_can_reach_every_target_it_scrapes() -> None:
    """Each target in the compose Prometheus config is a service that listens on its
    container's network, not on the container's loopback, where only its own health
    check would see it."""
    config = yaml.safe_load((ROOT / "connectors/deploy/prometheus.yml").read_text())
    targets: list[tuple[str, str]] = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets += [tuple(t.split(":")) for t in static["targets"]]
        for dns in job.get("dns_sd_configs", []):
            targets += [(n, str(dns["port"])) for n in dns["names"]]
    tsguard = [(n, p) for n, p in targets if SERVICES[n].get("image", "").startswith("tsguard")]
    assert {n for n, _ in tsguard} >= {"api", "worker", "forwarder", "simulator"}
    for name, port in tsguard:
        assert _listens_on(name, port) == "0.0.0.0", (name, port)


def test_the_demo_profile_has_a_token_route_and_a_data_route() -> None:
    demo = {n for n, s in SERVICES.items() if "demo" in s.get("profiles", [])}
    assert demo == {"token", "simulator"}
    api_volumes = set(SERVICES["api"]["volumes"])
    assert set(SERVICES["token"]["volumes"]) <= api_volumes  # the same dev key


def test_dev_mode_is_one_variable_and_off_by_default() -> None:
    assert service_env("api", {})["TSGUARD_OAUTH_DEV_MODE"] == "false"
    on = service_env("api", {"TSGUARD_OAUTH_DEV_MODE": "true"})
    assert on["TSGUARD_OAUTH_DEV_MODE"] == "true"
    assert on["TSGUARD_OAUTH_JWKS_URL"] == ""  # a default JWKS would take precedence


def _settings_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], keys: Path) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value.replace("/keys/dev-keys.json", str(keys)))


def test_a_token_from_the_token_service_is_accepted_by_the_api(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from stream_app.api.auth import build_verifier
    from stream_app.settings import load_settings

    switch = {"TSGUARD_OAUTH_DEV_MODE": "true"}
    keys = tmp_path / "dev-keys.json"
    monkeypatch.chdir(tmp_path)
    _settings_env(monkeypatch, service_env("token", switch), keys)
    token_service = SERVICES["token"]
    args = [*token_service["entrypoint"][1:], *token_service["command"]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    token = result.output.strip()

    _settings_env(monkeypatch, service_env("api", switch), keys)
    principal = asyncio.run(build_verifier(load_settings()).verify(token))
    assert "viewer" in principal.roles


def test_the_simulator_command_produces_valid_readings() -> None:
    from typer.main import get_command

    command = [*SERVICES["simulator"]["command"]]
    simulate = get_command(app).commands["simulate"].commands["iot"]  # type: ignore[attr-defined]
    options = {opt for param in simulate.params for opt in param.opts}
    assert {arg for arg in command if arg.startswith("--")} <= options
    at = command.index("--metrics-port")
    del command[at : at + 2]  # no server in a unit test
    speed = command.index("--speedup")
    del command[speed : speed + 2]
    result = CliRunner().invoke(app, [*command, "--count", "40", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) >= 40
    decoder = ReadingDecoder()
    verdicts = [decoder.decode(line.encode(), now=4e9) for line in lines]
    assert not [v for v in verdicts if isinstance(v, Rejection)]


TLS = {
    "TSGUARD_API_TLS_DIR": "/etc/tsguard/tls",
    "TSGUARD_API_TLS_CERTFILE": "/tls/api.crt",
    "TSGUARD_API_TLS_KEYFILE": "/tls/api.key",
}


@pytest.mark.parametrize("given", [TLS, {}], ids=["https", "http"])
def test_the_api_gets_its_tls_settings_and_files(
    given: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """compose passed neither TLS variable to the API, nor any folder to find the files
    in: whatever the user set, the API served plain HTTP (and the health check, which
    follows the same variables, asked it over HTTP)."""
    env = service_env("api", given)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    mounts = [interpolate(str(v), given).split(":") for v in SERVICES["api"]["volumes"]]
    if not given:
        assert (settings.api_tls_certfile, settings.api_tls_keyfile) == (None, None)
        assert ["api-tls", "/tls", "ro"] in mounts and "api-tls" in COMPOSE["volumes"]
        return
    assert str(settings.api_tls_certfile) == given["TSGUARD_API_TLS_CERTFILE"]
    assert str(settings.api_tls_keyfile) == given["TSGUARD_API_TLS_KEYFILE"]
    (folder,) = [m for m in mounts if m[0] == given["TSGUARD_API_TLS_DIR"]]
    assert folder[1:] == ["/tls", "ro"]
    for path in (settings.api_tls_certfile, settings.api_tls_keyfile):
        assert path is not None and path.parent == Path(folder[1])


@pytest.mark.parametrize("flag", ["true", "false"])
def test_grafana_mounts_a_datasource_for_each_timescaledb_flag(flag: str) -> None:
    mounts = [
        interpolate(v, {"TSGUARD_GRAFANA_TIMESCALEDB": flag}).split(":")[0]
        for v in SERVICES["grafana"]["volumes"]
    ]
    chosen = [m for m in mounts if "postgres-datasource" in m]
    assert chosen == [f"./dashboards/postgres-datasource/timescaledb-{flag}.yaml"]
    assert (ROOT / chosen[0]).is_file()


def test_no_mapping_names_a_key_twice() -> None:
    """PyYAML keeps the last of two equal keys, and two ``<<`` merge keys silently; Compose
    >= 2.17 refuses both ("mapping key "<<" already defined"), so `up` failed on the api's
    environment before anything started."""
    loader = yaml.SafeLoader((ROOT / "docker-compose.yml").read_text())
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    twice = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, yaml.MappingNode):
            keys = [k.value for k, _ in item.value]
            twice += [
                (k, k_node.start_mark.line + 1)
                for k, (k_node, _) in zip(keys, item.value, strict=True)
                if keys.count(k) > 1
            ]
            stack += [v for _, v in item.value]
        elif isinstance(item, yaml.SequenceNode):
            stack += item.value
    assert twice == []


def test_nothing_is_mounted_inside_a_read_only_mount() -> None:
    """Grafana's postgres datasource file was mounted inside the read-only mount of the
    datasources folder, which has no such file: Docker cannot create the mount point in
    a read-only folder, and the container would not start."""
    for name, service in SERVICES.items():
        volumes = [interpolate(str(v), {}) for v in service.get("volumes", [])]
        mounts = [v.split(":") for v in volumes if ":" in v]
        read_only = [m[1] for m in mounts if m[-1] == "ro"]
        for target in (m[1] for m in mounts):
            inside = [
                t for t in read_only if t != target and target.startswith(t.rstrip("/") + "/")
            ]
            assert not inside, f"{name}: {target} is mounted inside the read-only {inside}"


def test_kafka_keeps_its_data_on_its_volume() -> None:
    """The apache/kafka image writes to /tmp/kraft-combined-logs unless KAFKA_LOG_DIRS says
    otherwise: the kafka-data volume held nothing, and recreating the container lost every
    topic, committed offset and the state changelog."""
    kafka = SERVICES["kafka"]
    mounted = {str(v).split(":")[1] for v in kafka["volumes"] if str(v).startswith("kafka-data:")}
    assert kafka["environment"]["KAFKA_LOG_DIRS"] in mounted
