"""``tsguard api`` and ``tsguard token issue``.

Imported by the root CLI at start-up, so only Typer is imported here; FastAPI,
uvicorn and the crypto libraries load inside the commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from stream_app.settings import Settings

app = typer.Typer(no_args_is_help=True)
token_app = typer.Typer(no_args_is_help=True, help="Development access tokens.")

ROLE_NAMES = ("viewer", "operator", "ingest", "admin")


@app.command("api")
def api(
    host: str | None = typer.Option(None, help="Bind address (default from settings)."),
    port: int | None = typer.Option(None, help="Port (default from settings)."),
    dev: bool | None = typer.Option(
        None, "--dev/--no-dev", help="Trust the local dev keys and serve their JWKS."
    ),
    metrics_port: int | None = typer.Option(
        None,
        min=1,
        max=65535,
        help="Also serve /metrics over plain HTTP on this port (for Prometheus, whether"
        " or not the API serves HTTPS).",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1",
        help="Address --metrics-port listens on: loopback unless told (0.0.0.0 in a"
        " container, where the compose file decides what is published).",
    ),
) -> None:
    """Serve the REST API (HTTPS when TSGUARD_API_TLS_CERTFILE/KEYFILE are set)."""
    import uvicorn
    from prometheus_client import CollectorRegistry, start_http_server

    from stream_app.api.app import create_app
    from stream_app.api.server import server_config
    from stream_app.listen import require_listen
    from stream_app.logs import hold_repeats
    from stream_app.settings import load_settings

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["api_host"] = host
    if port is not None:
        overrides["api_port"] = port
    if dev is not None:
        overrides["oauth_dev_mode"] = dev
    settings = load_settings(**overrides)
    require_listen(
        settings.api_host,
        settings.api_port,
        "the API",
        "--port / --host / TSGUARD_API_PORT / TSGUARD_API_HOST",
    )
    tls = settings.api_tls_certfile is not None and settings.api_tls_keyfile is not None
    if settings.oauth_dev_mode:
        typer.echo(dev_curl_hint(settings, https=tls))
    registry = CollectorRegistry()
    try:
        served = create_app(settings, registry=registry)
    except ValueError as exc:  # no token keys configured: a setting, not a traceback
        typer.echo(f"tsguard: {exc}", err=True)
        raise typer.Exit(2) from None
    if metrics_port is not None:
        # The same registry as the API's own /metrics, over plain HTTP whatever the API's
        # TLS: a scrape job has one scheme, and compose's Prometheus scraped the API port
        # over http, so an API serving HTTPS was down to it (TsguardApiDown) while it served.
        try:
            start_http_server(metrics_port, addr=metrics_host, registry=registry)
        except OSError as exc:  # the port taken, an address this host does not have
            reason = exc.strerror or str(exc) or type(exc).__name__
            where = f"{metrics_host}:{metrics_port}"
            typer.echo(f"tsguard: cannot serve /metrics on {where}: {reason}", err=True)
            raise typer.Exit(2) from None
    config = server_config(settings, served)
    hold_repeats()  # the readings producer's reconnects through a Kafka outage
    uvicorn.Server(config).run()


def dev_curl_hint(settings: Settings, *, https: bool = False, ttl_s: float = 8 * 3600) -> str:
    """A ready-to-paste ``curl`` with a fresh dev viewer token (for ``make demo``)."""
    from stream_app.api.devkeys import dev_key_path, load_or_create

    keys = load_or_create(dev_key_path(settings))
    token = keys.mint(
        issuer=settings.oauth_issuer,
        audience=settings.oauth_audience,
        roles=["viewer"],
        sub="demo",
        ttl_s=ttl_s,
        role_claim=settings.oauth_role_claim,
    )
    scheme = "https" if https else "http"
    base = f"{scheme}://{settings.api_host}:{settings.api_port}"
    return f"curl -sS -H 'Authorization: Bearer {token}' '{base}/v1/anomalies?limit=5'"


@token_app.command("issue")
def issue(
    role: list[str] = typer.Option(
        ..., "--role", help=f"One of {', '.join(ROLE_NAMES)}; repeatable."
    ),
    ttl: float = typer.Option(
        3600.0,
        "--ttl",
        help="Lifetime in seconds (at most TSGUARD_OAUTH_MAX_TOKEN_LIFETIME_S, 24 h).",
    ),
    sub: str = typer.Option("dev-user", "--sub", help="Subject (recorded as who acked/labelled)."),
    alg: str = typer.Option("RS256", "--alg", help="RS256 or ES256."),
) -> None:
    """Print a token signed by the local dev key (TSGUARD_OAUTH_DEV_MODE APIs trust it)."""
    from stream_app.api.auth import MAX_SUBJECT_CHARS
    from stream_app.api.devkeys import ALGORITHMS, dev_key_path, load_or_create
    from stream_app.settings import load_settings

    bad = [r for r in role if r not in ROLE_NAMES]
    if bad:
        raise typer.BadParameter(f"unknown role(s) {bad}; use {', '.join(ROLE_NAMES)}")
    if alg not in ALGORITHMS:
        raise typer.BadParameter(f"--alg must be one of {', '.join(ALGORITHMS)}")
    settings = load_settings()
    longest = settings.oauth_max_token_lifetime_s  # what the API accepts
    if not 0.0 < ttl <= longest:  # (NaN too)
        raise typer.BadParameter(
            f"--ttl must be more than 0 and at most {longest} s"
            " (TSGUARD_OAUTH_MAX_TOKEN_LIFETIME_S)"
        )
    if not sub.strip():
        raise typer.BadParameter("--sub must not be empty (the API refuses a token without one)")
    if len(sub) > MAX_SUBJECT_CHARS:
        raise typer.BadParameter(f"--sub must be at most {MAX_SUBJECT_CHARS} characters")
    keys = load_or_create(dev_key_path(settings))
    typer.echo(
        keys.mint(
            issuer=settings.oauth_issuer,
            audience=settings.oauth_audience,
            roles=role,
            sub=sub,
            ttl_s=ttl,
            alg=alg,
            role_claim=settings.oauth_role_claim,
        )
    )
