"""Every query the provisioning files make Grafana or Prometheus run, as test cases."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from connectors.grafana.files import Provisioning, walk_panels

PG_UID = "tsguard-pg"
PROM_UID = "tsguard-prom"
FILES = Provisioning()


@dataclass(frozen=True)
class SqlQuery:
    """One SQL text and where it comes from; ``columns`` the panel relies on."""

    where: str
    sql: str
    fmt: str  # time_series | table | variable | annotation | alert

    @property
    def id(self) -> str:
        return self.where


@dataclass(frozen=True)
class PromQuery:
    where: str
    expr: str

    @property
    def id(self) -> str:
        return self.where


# What is not a selector in our PromQL: grouping and matching label lists, range and
# offset durations (after a digit), function and aggregation calls (before a "("),
# and the binary operators and modifiers that are words.
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGES = re.compile(r"\[[^\]]*\]")
_SELECTOR = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(?![\w:])\s*(\{[^}]*\})?(?!\s*\()")
_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_selectors(expr: str) -> list[str]:
    """The series selectors of a PromQL expression, each ``name`` or ``name{matchers}``.

    >>> metric_selectors(
    ...     'sum by (le) (rate(a_bucket{job="w"}[5m])) / clamp_min(sum(b offset 15m), 1e-9)'
    ...     " > 0.05 or vector(0) unless on() c:rate5m >= 0"
    ... )
    ['a_bucket{job="w"}', 'b', 'c:rate5m']
    """
    text = _RANGES.sub("", _LABEL_LISTS.sub("", expr))
    return [
        name + (matchers or "")
        for name, matchers in _SELECTOR.findall(text)
        if name.lower() not in _WORDS
    ]


def _uid(ref: Any) -> str | None:
    if isinstance(ref, dict):
        return ref.get("uid")
    return ref if isinstance(ref, str) else None


def sql_queries() -> list[SqlQuery]:
    """Panel targets, template variables and annotations of every dashboard, and SQL alerts."""
    found: list[SqlQuery] = []
    for dash in FILES.dashboards():
        for panel in walk_panels(dash):
            for target in panel.get("targets", []):
                if _uid(target.get("datasource") or panel.get("datasource")) == PG_UID:
                    where = f"{dash['uid']}/{panel['title']}/{target['refId']}"
                    found.append(SqlQuery(where, target["rawSql"], target.get("format", "table")))
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") == "query" and _uid(var.get("datasource")) == PG_UID:
                query = var["query"] if isinstance(var["query"], str) else var["query"]["rawSql"]
                found.append(SqlQuery(f"{dash['uid']}/var:{var['name']}", query, "variable"))
        for ann in dash.get("annotations", {}).get("list", []):
            if _uid(ann.get("datasource")) == PG_UID:
                sql = ann["target"]["rawSql"]
                found.append(SqlQuery(f"{dash['uid']}/annotation:{ann['name']}", sql, "annotation"))
    for rule, query in alert_queries():
        if query["datasourceUid"] == PG_UID:
            found.append(
                SqlQuery(f"alert:{rule['uid']}/{query['refId']}", query["model"]["rawSql"], "alert")
            )
    return found


def prom_queries() -> list[PromQuery]:
    """PromQL of every dashboard target, Grafana alert query and Prometheus rule."""
    found: list[PromQuery] = []
    for dash in FILES.dashboards():
        for panel in walk_panels(dash):
            for target in panel.get("targets", []):
                if _uid(target.get("datasource") or panel.get("datasource")) == PROM_UID:
                    where = f"{dash['uid']}/{panel['title']}/{target['refId']}"
                    found.append(PromQuery(where, target["expr"]))
    for rule, query in alert_queries():
        if query["datasourceUid"] == PROM_UID:
            found.append(PromQuery(f"alert:{rule['uid']}/{query['refId']}", query["model"]["expr"]))
    for rule in prometheus_rules():
        name = rule.get("record") or rule.get("alert")
        found.append(PromQuery(f"rule:{name}", rule["expr"]))
    return found


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in sorted(FILES.alerting_dir.glob("*.yaml")):
        for group in yaml.safe_load(path.read_text()).get("groups", []):
            rules.extend(group["rules"])
    return rules


def alert_queries() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(rule, query) for rule in alert_rules() for query in rule["data"]]


def prometheus_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in sorted(FILES.prometheus_dir.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules
