"""``tsguard dashboards``: where the provisioning files are, and pushing them to a Grafana."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Grafana dashboards, datasources and alert rules.", no_args_is_help=True)


@app.command("push")
def push_command(
    url: str = typer.Option(
        None, "--url", help="Grafana base URL \\[default: TSGUARD_GRAFANA_URL]"
    ),
    token: str = typer.Option(
        None, "--token", help="Service-account token \\[default: TSGUARD_GRAFANA_TOKEN]"
    ),
    datasources: bool = typer.Option(
        False, "--datasources", help="Also create/update the datasources (from settings)."
    ),
    directory: Path = typer.Option(None, "--dir", help="The dashboards/ provisioning folder."),
) -> None:
    """Upload the dashboards (and optionally the datasources) through Grafana's HTTP API."""
    from connectors.grafana.files import Provisioning
    from connectors.grafana.push import connect, push
    from stream_app.settings import load_settings

    settings = load_settings()
    files = Provisioning(directory) if directory else Provisioning()
    secret = settings.grafana_token.get_secret_value() if settings.grafana_token else None
    api = connect(url or settings.grafana_url, token or secret)
    try:
        report = push(
            api,
            files.dashboards(),
            files.datasources(settings) if datasources else (),
        )
    finally:
        api.client.close()
    for line in report.lines():
        typer.echo(line)


@app.command("where")
def where_command() -> None:
    """Print the provisioning folders and how to view the dashboards with docker compose."""
    from connectors.grafana.files import Provisioning

    files = Provisioning()
    typer.echo(f"Grafana provisioning: {files.root}")
    typer.echo(f"  datasources -> /etc/grafana/provisioning/datasources ({files.datasource_dir})")
    typer.echo(
        "  postgres    -> /etc/grafana/provisioning/datasources/postgres.yaml"
        f" ({files.postgres_datasource_dir}/timescaledb-<TSGUARD_GRAFANA_TIMESCALEDB>.yaml)"
    )
    typer.echo(f"  providers   -> /etc/grafana/provisioning/dashboards ({files.provider_dir})")
    typer.echo(f"  alerting    -> /etc/grafana/provisioning/alerting ({files.alerting_dir})")
    typer.echo(f"  dashboards  -> /var/lib/grafana/dashboards/tsguard ({files.dashboard_dir})")
    typer.echo(f"  prometheus rules: {files.prometheus_dir}/*.yml")
    typer.echo("View: `docker compose up`, then open http://localhost:3000 (folder tsguard).")
