"""Encryption in transit, for real: the API over HTTPS (``tsguard api`` in a subprocess,
verified against a test CA), tokens checked against a JWKS fetched over that HTTPS,
and a private PostgreSQL 15 with ``ssl=on`` reached with ``sslmode=verify-full``."""

from __future__ import annotations

import itertools
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml
from pydantic import SecretStr

from stream_app.api.app import create_app
from stream_app.api.auth import RemoteJwks, TokenVerifier
from tests.api.conftest import AUDIENCE, ISSUER, Tokens, api_settings, auth
from tests.api.tlsutil import Pki, free_port, make_pki

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ROOT = Path(__file__).resolve().parents[2]
TSGUARD = str(Path(sys.executable).with_name("tsguard"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def metrics_port() -> int:
    """Where the HTTPS API of ``https_api`` also serves /metrics over plain HTTP."""
    return free_port()


@pytest.fixture(scope="module")
def https_api(
    pki: Pki,
    dev_key_file: Path,
    private_schema: str,
    metrics_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """``tsguard api`` serving HTTPS on a free port; yields its base URL.

    It reads a private migrated schema; Kafka points nowhere so that this process
    creates no topic on the shared broker (it keeps retrying in the background)."""
    port = free_port()
    env = {
        **os.environ,
        "TSGUARD_API_PORT": str(port),
        "TSGUARD_API_TLS_CERTFILE": str(pki.server_cert),
        "TSGUARD_API_TLS_KEYFILE": str(pki.server_key),
        "TSGUARD_OAUTH_DEV_MODE": "true",
        "TSGUARD_OAUTH_DEV_KEY_FILE": str(dev_key_file),
        "TSGUARD_OAUTH_ISSUER": ISSUER,
        "TSGUARD_OAUTH_AUDIENCE": AUDIENCE,
        "TSGUARD_OAUTH_ROLE_CLAIM": "realm_access.roles",
        "TSGUARD_LOG_LEVEL": "WARNING",
        "TSGUARD_PG_DSN": private_schema,
        "TSGUARD_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    }
    log = tmp_path_factory.mktemp("api-log") / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [TSGUARD, "api", "--metrics-port", str(metrics_port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"https://localhost:{port}"
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(f"{base}/healthz", verify=context, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"API did not come up:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.mark.integration
def test_api_serves_https_verified_by_the_ca(https_api: str, pki: Pki) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    response = httpx.get(f"{https_api}/healthz", verify=context)
    assert response.status_code == 200
    assert response.extensions["http_version"] == b"HTTP/1.1"
    for host in ("localhost", "127.0.0.1"):
        url = https_api.replace("localhost", host)
        assert httpx.get(f"{url}/healthz", verify=context).status_code == 200
    with pytest.raises(httpx.ConnectError):  # the system trust store does not know our CA
        httpx.get(f"{https_api}/healthz")
    with pytest.raises(httpx.TransportError):  # no plaintext on the TLS port
        httpx.get(https_api.replace("https", "http") + "/healthz")


def test_an_https_api_is_scraped_and_health_checked_as_compose_does(
    https_api: str, pki: Pki, metrics_port: int
) -> None:
    """compose's Prometheus scraped the API's port over plain HTTP, and its health check
    asked it over plain HTTP: an API given a certificate was down to Prometheus
    (TsguardApiDown paged while it served) and unhealthy to compose. The job now scrapes
    the port the api command serves /metrics on over plain HTTP, and the check follows
    the API's TLS settings; both run here against a real API serving HTTPS."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    prometheus = yaml.safe_load((ROOT / "connectors/deploy/prometheus.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "tsguard-api"]
    ((target,),) = [static["targets"] for static in job["static_configs"]]
    name, port = target.split(":")
    api = compose["services"][name]
    options = dict(itertools.pairwise(str(a) for a in api["command"]))
    assert options.get("--metrics-port") == port, (target, api["command"])
    scheme = job.get("scheme", "http")
    path = job.get("metrics_path", "/metrics")
    scraped = httpx.get(f"{scheme}://127.0.0.1:{metrics_port}{path}", timeout=5)
    assert scraped.status_code == 200 and "tsguard_api_requests_total" in scraped.text
    kind, check = api["healthcheck"]["test"]
    assert kind == "CMD-SHELL" and "127.0.0.1:8080/" in check
    api_port = https_api.rsplit(":", 1)[1]
    command = check.replace("127.0.0.1:8080/", f"127.0.0.1:{api_port}/").replace(
        "python ", f"{sys.executable} ", 1
    )
    env = {
        **os.environ,
        "TSGUARD_API_TLS_CERTFILE": str(pki.server_cert),
        "TSGUARD_API_TLS_KEYFILE": str(pki.server_key),
    }
    ran = subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=30)
    assert ran.returncode == 0, ran.stderr.decode()[-1000:]


@pytest.mark.integration
async def test_tokens_verified_against_a_jwks_fetched_over_https(
    https_api: str, pki: Pki, tokens: Tokens
) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    client = httpx.AsyncClient(verify=context)
    keys = RemoteJwks(f"{https_api}/dev/.well-known/jwks.json", client=client)
    verifier = TokenVerifier(
        keys, issuer=ISSUER, audience=AUDIENCE, role_claim="realm_access.roles",
        role_map={}, leeway_s=5, max_lifetime_s=86400,
    )  # fmt: skip
    try:
        for alg in ("RS256", "ES256"):
            principal = await verifier.verify(tokens.role("operator", alg=alg, sub="tls"))
            assert principal.sub == "tls" and {r.value for r in principal.roles} == {"operator"}
        assert keys.fetches == 1  # cached
        # The HTTPS API itself accepts the same tokens.
        async with httpx.AsyncClient(verify=context) as api:
            r = await api.get(f"{https_api}/v1/series", headers=auth(tokens.role("viewer")))
            assert r.status_code == 200, r.text
            r = await api.get(f"{https_api}/v1/series", headers=auth(tokens.bad("forged")))
            assert r.status_code == 401
    finally:
        await client.aclose()


# --- PostgreSQL with ssl=on ---------------------------------------------------------


@pytest.fixture(scope="module")
def tls_postgres(pki: Pki) -> Iterator[int]:
    """A private PostgreSQL 15 (not the shared stack's) with ssl=on; yields its port."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 binaries not found in {PG_BIN}")
    root = Path(tempfile.mkdtemp(prefix="tsguard-pg-tls-", dir="/tmp"))
    root.chmod(0o755)
    data = root / "data"
    for src in (pki.server_cert, pki.server_key):
        shutil.copy(src, root / src.name)
    shutil.chown(root, "postgres", "postgres")
    for path in (root / pki.server_cert.name, root / pki.server_key.name):
        shutil.chown(path, "postgres", "postgres")
    (root / pki.server_key.name).chmod(0o600)
    port = free_port()

    def as_postgres(*argv: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c ssl=on"
        f" -c ssl_cert_file={root / pki.server_cert.name}"
        f" -c ssl_key_file={root / pki.server_key.name}"
    )
    pg_ctl = str(PG_BIN / "pg_ctl")
    as_postgres(pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        yield port
    finally:
        as_postgres(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_verify_full(tls_postgres: int, pki: Pki, tmp_path: Path) -> None:
    conninfo = (
        f"host=localhost port={tls_postgres} user=postgres dbname=postgres"
        f" sslmode=verify-full sslrootcert={pki.ca_cert}"
    )
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert row.fetchone() == (True, "TLSv1.3")
    other = make_pki(tmp_path / "other")  # a CA that did not sign the server's certificate
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(conninfo.replace(str(pki.ca_cert), str(other.ca_cert)))


@pytest.mark.integration
async def test_api_pool_uses_settings_tls(tls_postgres: int, pki: Pki, dev_key_file: Path) -> None:
    """sslmode/sslrootcert flow from Settings into the API's pool (readyz and a query)."""
    from stream_app.storage.migrate import migrate

    # /readyz asks for a migrated schema: migrated over TLS too
    migrate(
        f"postgresql://postgres@localhost:{tls_postgres}/postgres?sslmode=verify-full&sslrootcert={pki.ca_cert}"
    )
    settings = api_settings(
        dev_key_file,
        pg_dsn=SecretStr(f"postgresql://postgres@localhost:{tls_postgres}/postgres"),
        pg_sslmode="verify-full",
        pg_sslrootcert=pki.ca_cert,
        kafka_bootstrap_servers="127.0.0.1:1",  # only PostgreSQL matters here
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pool = app.state.api.pool
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert await cur.fetchone() == (True,)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            deadline = time.monotonic() + 30
            while True:
                ready = (await client.get("/readyz")).json()
                if ready["checks"]["postgres"] == "ok" or time.monotonic() > deadline:
                    break
            assert ready["checks"]["postgres"] == "ok"
