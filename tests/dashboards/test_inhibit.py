"""compose's Alertmanager (``connectors/deploy/alertmanager.yml``) on the real binary: one
incident, one page.

Grafana's "Critical anomaly episode open" asks what the forwarder's ``TsguardAnomaly``
already pages for, and its "Consumer lag growing" what Prometheus's
``TsguardConsumerLagGrowing`` does: every critical episode and every backlog paged twice,
under two alert names; its "Series stopped sending" asks what the forwarder pages for a
silence episode. The inhibit rules hold Grafana's copy back while the other fires.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from connectors.alerting.alerts import ALERTNAME
from stream_app.resources import data_file
from tests.dashboards.queries import alert_rules, prometheus_rules
from tests.integration.pipeline.harness import free_port

BINARY = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """compose's Alertmanager configuration, served by a private instance."""
    if not Path(BINARY).exists():
        pytest.fail("prometheus-alertmanager is missing: `tsguard stack up` installs it")
    home = tmp_path_factory.mktemp("alertmanager")
    port = free_port()
    log = (home / "log").open("w")
    proc = subprocess.Popen(
        [
            BINARY,
            f"--config.file={data_file('deploy', 'alertmanager.yml')}",
            f"--storage.path={home}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (home / "log").read_text()
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _alert(name: str, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, **labels},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


def _inhibited(url: str, expected: int) -> dict[tuple[str, str], bool]:
    """(alert name, entity or "") of every alert held: inhibited or not."""
    for _ in range(100):
        alerts = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
        if len(alerts) == expected:
            break
        time.sleep(0.05)
    return {
        (a["labels"]["alertname"], a["labels"].get("entity", "")): bool(a["status"]["inhibitedBy"])
        for a in alerts
    }


def test_the_inhibit_rules_name_alerts_that_exist() -> None:
    config = yaml.safe_load(data_file("deploy", "alertmanager.yml").read_text())
    grafana = {rule["title"] for rule in alert_rules()}
    paging = {rule["alert"] for rule in prometheus_rules() if "alert" in rule} | {ALERTNAME}
    for rule in config["inhibit_rules"]:
        (source,) = [m for m in rule["source_matchers"] if m.startswith("alertname=")]
        (target,) = rule["target_matchers"]
        assert source.split("=", 1)[1].strip('"') in paging, source
        assert target.split("=", 1)[1].strip('"') in grafana, target


def test_one_critical_episode_and_one_backlog_page_once(alertmanager: str) -> None:
    forwarder = {"severity": "critical", "detector": "robust_seasonal", "kind": "value"}
    grafana = {"severity": "critical", "source": "tsguard", "grafana_folder": "tsguard"}
    posted = [
        _alert(ALERTNAME, entity="plant-1/pump-1", metric="temperature", **forwarder),
        _alert(
            "Critical anomaly episode open",
            entity="plant-1/pump-1",
            metric="temperature",
            **grafana,
        ),
        # a series the forwarder does not page for (it is down): Grafana's pages
        _alert(
            "Critical anomaly episode open",
            entity="plant-2/pump-9",
            metric="temperature",
            **grafana,
        ),
        _alert("TsguardConsumerLagGrowing", severity="warning", source="tsguard"),
        _alert("Consumer lag growing", severity="warning", source="tsguard"),
    ]
    response = httpx.post(f"{alertmanager}/api/v2/alerts", json=posted, timeout=5)
    assert response.status_code == 200, response.text
    assert _inhibited(alertmanager, len(posted)) == {
        (ALERTNAME, "plant-1/pump-1"): False,
        ("Critical anomaly episode open", "plant-1/pump-1"): True,
        ("Critical anomaly episode open", "plant-2/pump-9"): False,
        ("TsguardConsumerLagGrowing", ""): False,
        ("Consumer lag growing", ""): True,
    }


def test_one_silent_series_pages_once(alertmanager: str) -> None:
    """Grafana's "Series stopped sending" asks what the forwarder's silence episode pages."""
    forwarder = {"severity": "high", "detector": "cleaner", "kind": "silence"}
    grafana = {"severity": "high", "source": "tsguard", "grafana_folder": "tsguard"}
    posted = [
        _alert(ALERTNAME, entity="site/probe-1", metric="level", **forwarder),
        _alert("Series stopped sending", entity="site/probe-1", metric="level", **grafana),
        # a value episode of another series inhibits nothing
        _alert(ALERTNAME, entity="site/probe-2", metric="level", **{**forwarder, "kind": "value"}),
        _alert("Series stopped sending", entity="site/probe-2", metric="level", **grafana),
    ]
    held = len(httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json())
    response = httpx.post(f"{alertmanager}/api/v2/alerts", json=posted, timeout=5)
    assert response.status_code == 200, response.text
    inhibited = _inhibited(alertmanager, held + len(posted))
    assert {k: v for k, v in inhibited.items() if k[1].startswith("site/")} == {
        (ALERTNAME, "site/probe-1"): False,
        ("Series stopped sending", "site/probe-1"): True,
        (ALERTNAME, "site/probe-2"): False,
        ("Series stopped sending", "site/probe-2"): False,
    }


def test_sources_silent_because_no_worker_runs_page_as_that(alertmanager: str) -> None:
    """With no worker, no source's clock moves and every source looks silent: the page is
    TsguardNoWorkers, not one per source."""
    grafana = {"severity": "high", "source": "tsguard", "grafana_folder": "tsguard"}
    posted = [
        _alert("TsguardNoWorkers", severity="critical", source="tsguard"),
        _alert("Source stopped sending", reading_source="market", **grafana),
    ]
    held = len(httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json())
    response = httpx.post(f"{alertmanager}/api/v2/alerts", json=posted, timeout=5)
    assert response.status_code == 200, response.text
    inhibited = _inhibited(alertmanager, held + len(posted))
    assert inhibited[("Source stopped sending", "")] is True
    assert inhibited[("TsguardNoWorkers", "")] is False
