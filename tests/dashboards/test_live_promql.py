"""Every PromQL expression of the dashboards, Grafana alerts and Prometheus rules,
evaluated by the stack's real Prometheus while it scrapes a tsguard metrics target."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from stream_app.settings import Settings
from tests.dashboards.conftest import metrics_port
from tests.dashboards.queries import PromQuery, metric_selectors, prom_queries, prometheus_rules

pytestmark = pytest.mark.integration

QUERIES = prom_queries()
# Grafana's Prometheus variables; the window covers the whole test session.
GRAFANA_VARS = {"$__rate_interval": "2m", "$__interval": "15s", "$__range": "5m"}
_COMPARISON = re.compile(r"\s(==|!=|>=|<=|>|<)\s")


def _promql(query: PromQuery) -> str:
    expr = query.expr
    for name, value in GRAFANA_VARS.items():
        expr = expr.replace(name, value)
    if query.where.startswith("rule:Tsguard"):
        # An alert's comparison filters everything out while healthy; `bool`
        # keeps the series (0/1) so the quantity underneath is proven to exist.
        expr = _COMPARISON.sub(lambda m: f" {m[1]} bool ", expr)
    return expr


def _instant(url: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", body
    return list(body["data"]["result"])


def _poll(url: str, expr: str, timeout: float = 45.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        result = _instant(url, expr)
        finite = [r for r in result if r["value"][1] not in ("NaN", "+Inf", "-Inf")]
        if finite or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@pytest.fixture(scope="module")
def prometheus(live_metrics: str, settings: Settings) -> str:
    """Prometheus with the current rule files loaded, scraping the metrics target."""
    names = {r.get("record") or r.get("alert") for r in prometheus_rules()}

    def loaded() -> set[str]:
        groups = httpx.get(f"{live_metrics}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return {rule["name"] for group in groups for rule in group["rules"]}

    if loaded() != names:
        httpx.post(f"{live_metrics}/-/reload", timeout=10)
    instance = f"127.0.0.1:{metrics_port(settings)}"
    _poll(live_metrics, f'up{{job="tsguard-workers", instance="{instance}"}} == 1')
    assert loaded() == names
    return live_metrics


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_expression_returns_series(prometheus: str, query: PromQuery) -> None:
    expr = _promql(query)
    result = _poll(prometheus, expr)
    assert result, f"{query.where}: no series for {expr}"
    values = [r["value"][1] for r in result]
    assert any(v not in ("NaN", "+Inf", "-Inf") for v in values), (query.where, values)


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_every_selector_selects_series(prometheus: str, query: PromQuery) -> None:
    """An expression can answer without its metric (``... or vector(0)``, or one side of
    an ``or``): each of its selectors on its own selects series the real processes export."""
    for selector in dict.fromkeys(metric_selectors(_promql(query))):
        assert _poll(prometheus, f"count({selector})"), f"{query.where}: {selector} selects nothing"


def test_rules_evaluate_without_errors(prometheus: str) -> None:
    def healthy() -> list[dict[str, Any]]:
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if all(r["health"] == "ok" for r in rules) else []

    deadline = time.monotonic() + 30
    while not (rules := healthy()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert rules, "a rule reports evaluation errors"
    recorded = [r["name"] for r in rules if r["type"] == "recording"]
    for name in recorded:
        assert _poll(prometheus, name), f"recording rule {name} produced no series"
