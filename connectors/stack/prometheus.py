"""Prometheus (Debian's ``prometheus``), scraping the tsguard workers every second."""

from __future__ import annotations

import yaml

from connectors.stack import process
from connectors.stack.process import Report, StackError
from connectors.stack.service import HttpService
from stream_app.resources import data_dir
from stream_app.settings import Settings

BINARY = "/usr/bin/prometheus"
# where the stack's Prometheus looks, by default, for a local `tsguard forward alertmanager
# --metrics-port 19464` (compose's forwarder is forwarder:9464) and a local `tsguard bridge
# mqtt --metrics-port 19465` (compose runs no bridge); TSGUARD_STACK_FORWARDER_METRICS_PORT
# and TSGUARD_STACK_BRIDGE_METRICS_PORT move them, as the other stack ports move
FORWARDER_METRICS_PORT = Settings.model_fields["stack_forwarder_metrics_port"].default
BRIDGE_METRICS_PORT = Settings.model_fields["stack_bridge_metrics_port"].default


def worker_targets(first_port: int, count: int = 2) -> list[str]:
    """The worker web ports Prometheus scrapes: one per local worker.

    >>> worker_targets(16066)
    ['127.0.0.1:16066', '127.0.0.1:16067']
    """
    return [f"127.0.0.1:{first_port + i}" for i in range(count)]


class Prometheus(HttpService):
    name = "prometheus"
    config_name = "prometheus.yml"
    binary = BINARY
    debian_packages = ("prometheus",)

    @property
    def port(self) -> int:
        return self.settings.stack_prometheus_port

    def command(self) -> list[str]:
        return [
            BINARY,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.home / 'data'}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
        ]

    def prepare(self, report: Report) -> None:
        self._write_config()

    def reconfigure(self, report: Report) -> None:
        """Rewrite the configuration; a running server reloads it when it changed."""
        if self._write_config():
            if not process.http_ok(f"{self.url}/-/reload", timeout_s=10, method="POST"):
                raise StackError(
                    f"prometheus rejected its new configuration {self.config_file}; "
                    f"see {self.log_file}\n{process.log_tail(self.log_file)}"
                )
            report("prometheus: configuration reloaded")

    def config(self) -> dict[str, object]:
        """``prometheus.yml``: the workers, the API, the forwarder, an MQTT bridge,
        Prometheus itself, the stack's Alertmanager."""
        config: dict[str, object] = {
            "global": {
                "scrape_interval": "1s",  # fast, so tests see a scrape within seconds
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "alerting": {
                "alertmanagers": [
                    {
                        "static_configs": [
                            {"targets": [f"127.0.0.1:{self.settings.stack_alertmanager_port}"]}
                        ]
                    }
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "tsguard-workers",
                    "static_configs": [{"targets": worker_targets(self.settings.worker_web_port)}],
                },
                # the API and the forwarder, as compose scrapes them: the rules that page
                # when either is down are evaluated on the same jobs
                self._api_job(),
                {
                    "job_name": "tsguard-forwarder",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{self.settings.stack_forwarder_metrics_port}"]}
                    ],
                },
                # the MQTT bridge, when one runs here: its dead letters (device payloads
                # it could not make readings of) never reach the workers' counters
                {
                    "job_name": "tsguard-mqtt-bridge",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{self.settings.stack_bridge_metrics_port}"]}
                    ],
                },
                {
                    "job_name": "prometheus",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.port}"]}],
                },
            ],
        }
        # Alerting and recording rules shipped with the dashboards.
        rules_dir = data_dir("dashboards") / "prometheus"
        if rules_dir.is_dir():
            config["rule_files"] = [str(rules_dir / "*.yml")]
        return config

    def _api_job(self) -> dict[str, object]:
        """The API's scrape job: over https where its settings give it a certificate (the
        stack reads the same settings; over http, an API serving TLS was down to it and
        TsguardApiDown fired while it served). Its certificate names the API's public
        host, not 127.0.0.1: the scrape asks for the numbers, not who serves them."""
        job: dict[str, object] = {
            "job_name": "tsguard-api",
            "static_configs": [{"targets": [f"127.0.0.1:{self.settings.api_port}"]}],
        }
        if self.settings.api_tls_certfile is not None and self.settings.api_tls_keyfile is not None:
            job["scheme"] = "https"
            job["tls_config"] = {"insecure_skip_verify": True}
        return job

    def _write_config(self) -> bool:
        """Write ``prometheus.yml``; True when its content changed."""
        self.home.mkdir(parents=True, exist_ok=True)
        text = "# Generated by `tsguard stack up`: edits are overwritten.\n"
        text += yaml.safe_dump(self.config(), sort_keys=False)
        if self.config_file.exists() and self.config_file.read_text() == text:
            return False
        self.config_file.write_text(text)
        return True
