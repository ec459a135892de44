"""The provisioning files are consistent: parse, stable uids, known datasources, targets."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from connectors.grafana.files import env_references, setting_values, walk_panels
from connectors.grafana.macros import parse_interval
from connectors.metrics import ConnectorCollector
from connectors.stack.prometheus import Prometheus
from stream_app.api.middleware import ApiMetrics
from stream_app.metrics import build_metrics
from stream_app.resources import data_file
from stream_app.settings import Settings
from tests.dashboards.queries import (
    FILES,
    alert_queries,
    alert_rules,
    metric_selectors,
    prom_queries,
    prometheus_rules,
    sql_queries,
)

EXPECTED_UIDS = {"tsguard-overview", "tsguard-series", "tsguard-pipeline"}
DASHBOARDS = {d["uid"]: d for d in FILES.dashboards()}


def _datasources() -> dict[str, dict[str, Any]]:
    return {ds["uid"]: ds for ds in FILES.datasources()}


def _refs(node: Any) -> list[Any]:
    """Every ``datasource`` value anywhere inside a dashboard."""
    found: list[Any] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append(value)
            found.extend(_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_refs(item))
    return found


def test_dashboards_have_stable_unique_uids() -> None:
    files = FILES.dashboard_files()
    assert len(files) == len(DASHBOARDS) == 3
    assert set(DASHBOARDS) == EXPECTED_UIDS
    for dash in DASHBOARDS.values():
        assert "id" not in dash or dash["id"] is None
        assert dash["editable"] is False and dash["title"].startswith("tsguard / ")


@pytest.mark.parametrize("uid", sorted(EXPECTED_UIDS))
def test_only_provisioned_datasources_are_referenced(uid: str) -> None:
    provisioned = _datasources()
    refs = _refs(DASHBOARDS[uid])
    assert refs
    for ref in refs:
        assert isinstance(ref, dict), f"datasource by name is fragile: {ref!r}"
        assert ref["uid"] in provisioned, ref
        assert ref["type"] == provisioned[ref["uid"]]["type"], ref


@pytest.mark.parametrize("uid", sorted(EXPECTED_UIDS))
def test_every_panel_has_a_target_and_a_question(uid: str) -> None:
    panels = list(walk_panels(DASHBOARDS[uid]))
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert "?" in panel["description"], panel["title"]
        for target in panel["targets"]:
            assert (target.get("rawSql") or target.get("expr") or "").strip(), panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def _colour(panel: dict[str, Any], value: float) -> str:
    """The colour Grafana gives ``value`` by the panel's absolute thresholds."""
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    colour = str(steps[0]["color"])
    for step in steps[1:]:
        if value >= step["value"]:
            colour = str(step["color"])
    return colour


STAT_VALUES = {  # (dashboard, stat panel): (a healthy value, a value that needs a look)
    ("tsguard-overview", "Open episodes"): (0, 1),
    ("tsguard-pipeline", "Workers up"): (2, 0),
    ("tsguard-pipeline", "Model states dropped (24 h)"): (0, 1),
}


def test_stat_panels_colour_what_needs_a_look() -> None:
    """A stat panel without thresholds gets Grafana's default (green, red from 80): no
    worker answering showed a green 0, and 79 dropped model states were green too."""
    stats = {
        (uid, panel["title"]): panel
        for uid, dash in DASHBOARDS.items()
        for panel in walk_panels(dash)
        if panel["type"] == "stat"
    }
    assert set(stats) == set(STAT_VALUES)
    for key, (healthy, wrong) in STAT_VALUES.items():
        panel = stats[key]
        thresholds = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds")
        assert thresholds and thresholds["mode"] == "absolute", f"{key}: Grafana's defaults"
        assert _colour(panel, healthy) == "green" and _colour(panel, wrong) != "green", key


def test_data_links_point_at_existing_dashboards_and_variables() -> None:
    links = [
        link["url"]
        for panel in walk_panels(DASHBOARDS["tsguard-overview"])
        for override in panel.get("fieldConfig", {}).get("overrides", [])
        for prop in override["properties"]
        if prop["id"] == "links"
        for link in prop["value"]
    ]
    assert links
    for url in links:
        parsed = urlparse(url)
        target_uid = parsed.path.split("/")[2]
        assert target_uid in DASHBOARDS, url
        names = {v["name"] for v in DASHBOARDS[target_uid]["templating"]["list"]}
        wanted = {k.removeprefix("var-") for k in parse_qs(parsed.query) if k.startswith("var-")}
        assert wanted == names, url


def _branch_guards(sql: str) -> list[str]:
    """Each UNION ALL branch's guard: the terms of its WHERE on the interval and on where
    the rollups are stored, as a Python expression of ``ms`` and ``stored``."""
    guards = []
    for branch in sql.split("UNION ALL"):
        (where,) = [
            line.split("WHERE ", 1)[1]
            for line in branch.splitlines()
            if "WHERE $__interval" in line or "WHERE ($__interval" in line
        ]
        terms = [t for t in where.split(" AND ") if "$__interval_ms" in t or "rollups_stored" in t]
        guard = " and ".join(terms).replace("$__interval_ms", "ms")
        guard = guard.replace("NOT tsguard_rollups_stored()", "not stored")
        guards.append(guard.replace("tsguard_rollups_stored()", "stored").replace(" OR ", " or "))
    return guards


@pytest.mark.parametrize("stored", [True, False], ids=["timescaledb", "postgresql"])
def test_rollup_branches_cover_every_interval_exactly_once(stored: bool) -> None:
    """Each rollup query has raw, 5m and 1h branches guarded by disjoint interval tests,
    and reads the rollups only where they are stored (TimescaleDB): plain PostgreSQL's
    views aggregate the whole table at each read, so there the raw branch runs at every
    interval."""
    rollup = [q for q in sql_queries() if "observations_1h" in q.sql]
    assert len(rollup) >= 4
    for query in rollup:
        guards = _branch_guards(query.sql)
        assert len(guards) == 3 and all("ms" in g and "stored" in g for g in guards), guards
        for ms in (1, 299_999, 300_000, 3_599_999, 3_600_000, 86_400_000):
            hits = [i for i, g in enumerate(guards) if eval(g, {"ms": ms, "stored": stored})]
            expected = 0 if ms < 300_000 or not stored else (1 if ms < 3_600_000 else 2)
            assert hits == [expected], (query.where, ms, guards)


@pytest.mark.parametrize("timescaledb", [True, False])
def test_datasource_provisioning(timescaledb: bool) -> None:
    provisioned = {ds["uid"]: ds for ds in FILES.datasources(timescaledb=timescaledb)}
    assert set(provisioned) == {"tsguard-pg", "tsguard-prom"}
    pg = provisioned["tsguard-pg"]
    assert pg["type"] == "grafana-postgresql-datasource"
    assert pg["user"] == "tsguard_ro"
    # A YAML boolean: Grafana's backend refuses a string here.
    assert pg["jsonData"]["database"] and pg["jsonData"]["timescaledb"] is timescaledb
    assert pg["secureJsonData"]["password"] == "${TSGUARD_PG_READONLY_PASSWORD}"
    assert provisioned["tsguard-prom"]["type"] == "prometheus"
    assert all(ds["editable"] is False for ds in provisioned.values())


def test_provisioning_variables_are_tsguard_settings() -> None:
    """Grafana's ${VAR} names exist as settings, so compose passes one set of variables."""
    known = set(setting_values(Settings()))
    texts = [p.read_text() for p in FILES.datasource_dir.glob("*.yaml")]
    texts += [p.read_text() for p in FILES.postgres_datasource_dir.glob("*.yaml")]
    texts += [p.read_text() for p in FILES.alerting_dir.glob("*.yaml")]
    referenced = set().union(*(env_references(t) for t in texts))
    assert "TSGUARD_PG_READONLY_PASSWORD" in referenced
    assert referenced <= known, referenced - known
    expanded = FILES.datasources(Settings(pg_readonly_password=SecretStr("s3cret")))
    assert expanded[0]["secureJsonData"]["password"] == "s3cret"


def _tsguard_scrape_intervals(config: dict[str, Any]) -> list[timedelta]:
    default = config.get("global", {}).get("scrape_interval", "1m")
    jobs = [job for job in config["scrape_configs"] if job["job_name"].startswith("tsguard")]
    assert jobs
    return [parse_interval(job.get("scrape_interval", default)) for job in jobs]


def test_the_prometheus_datasource_knows_the_slowest_scrape(tmp_path: Path) -> None:
    """Grafana's ``$__rate_interval`` is at least four of the datasource's scrape
    intervals. Declared shorter than Prometheus really scrapes, a short range's rate
    window holds one sample or none, and every rate panel goes blank or gappy."""
    (prom,) = [ds for ds in FILES.datasources() if ds["uid"] == "tsguard-prom"]
    declared = parse_interval(prom["jsonData"]["timeInterval"])
    compose = yaml.safe_load(data_file("deploy", "prometheus.yml").read_text())
    stack = Prometheus(Settings(stack_dir=tmp_path)).config()
    for config in (compose, stack):
        assert max(_tsguard_scrape_intervals(config)) <= declared


def test_the_stack_scrapes_the_connectors_where_its_settings_say(tmp_path: Path) -> None:
    """Every other port of the stack moves with its settings; the forwarder's and the
    bridge's scrape targets were fixed at 19464/19465, so a private stack scraped (and
    evaluated the connectors' rules on) whatever ran on the default ports instead."""
    settings = Settings(
        stack_dir=tmp_path, stack_forwarder_metrics_port=32464, stack_bridge_metrics_port=32465
    )
    scrape = Prometheus(settings).config()["scrape_configs"]
    assert isinstance(scrape, list)
    jobs = {job["job_name"]: job for job in scrape}
    assert jobs["tsguard-forwarder"]["static_configs"] == [{"targets": ["127.0.0.1:32464"]}]
    assert jobs["tsguard-mqtt-bridge"]["static_configs"] == [{"targets": ["127.0.0.1:32465"]}]


def test_the_stack_scrapes_the_api_over_https_when_it_serves_tls(tmp_path: Path) -> None:
    """The stack's Prometheus scraped the API over http whatever its settings: an API
    given a certificate was down to it (TsguardApiDown fired while it served)."""
    plain = Prometheus(Settings(stack_dir=tmp_path)).config()["scrape_configs"]
    tls = Prometheus(
        Settings(
            stack_dir=tmp_path,
            api_tls_certfile=tmp_path / "api.crt",
            api_tls_keyfile=tmp_path / "api.key",
        )
    ).config()["scrape_configs"]
    assert isinstance(plain, list) and isinstance(tls, list)
    (plain_api,) = [job for job in plain if job["job_name"] == "tsguard-api"]
    (tls_api,) = [job for job in tls if job["job_name"] == "tsguard-api"]
    assert plain_api.get("scheme", "http") == "http"
    assert tls_api["scheme"] == "https"
    assert tls_api["static_configs"] == plain_api["static_configs"]


def test_every_job_a_rule_watches_is_scraped_by_compose_and_none_is_optional() -> None:
    """A rule on ``up{job=...}`` pages for a job compose's Prometheus scrapes, and not for
    one whose targets are down by design: the forwarder shared a job with the simulator,
    which runs in the demo profile only, so no rule could tell a dead forwarder (every
    anomaly page lost) from a deployment without the demo."""
    compose = yaml.safe_load(data_file("deploy", "prometheus.yml").read_text())
    scraped = {job["job_name"]: job for job in compose["scrape_configs"]}
    watched = {
        job
        for rule in prometheus_rules()
        if "alert" in rule
        for job in re.findall(r'up\{job="([^"]+)"\}', rule["expr"])
    }
    assert {"tsguard-workers", "tsguard-forwarder", "tsguard-api"} <= watched
    assert watched <= set(scraped)
    for job in watched - {"tsguard-workers"}:  # the workers are found by DNS
        targets = [t for c in scraped[job]["static_configs"] for t in c["targets"]]
        assert not any(t.startswith("simulator:") for t in targets), job


def test_the_two_postgres_datasources_differ_only_in_the_flag() -> None:
    documents = []
    for flag in (False, True):
        (source,) = yaml.safe_load(FILES.postgres_datasource_file(flag).read_text())["datasources"]
        assert source["jsonData"].pop("timescaledb") is flag
        documents.append(source)
    assert documents[0] == documents[1]
    settings_flag = Settings(grafana_timescaledb=True)
    (pg,) = [d for d in FILES.datasources(settings_flag) if d["uid"] == "tsguard-pg"]
    assert pg["jsonData"]["timescaledb"] is True


def test_dashboard_provider_disables_ui_edits() -> None:
    (path,) = FILES.provider_dir.glob("*.yaml")
    (provider,) = yaml.safe_load(path.read_text())["providers"]
    assert provider["allowUiUpdates"] is False and provider["disableDeletion"] is True
    assert provider["type"] == "file" and provider["options"]["path"]


def test_the_dashboards_go_to_the_alert_rules_folder() -> None:
    """Grafana provisions alert rules before dashboards and finds their folder by title,
    making it with a generated uid. A dashboard provider with a ``folderUid`` looks for
    that uid alone and made a second folder of the same title ("tsguard" twice, rules in
    one and dashboards in the other; Grafana 11.0 refused it instead: "a folder with the
    same name already exists"). Without it, the provider finds the rules' folder by title."""
    (path,) = FILES.provider_dir.glob("*.yaml")
    (provider,) = yaml.safe_load(path.read_text())["providers"]
    folders = {
        group["folder"]
        for rules in FILES.alerting_dir.glob("*.yaml")
        for group in yaml.safe_load(rules.read_text()).get("groups", [])
    }
    assert folders == {provider["folder"]}
    assert "folderUid" not in provider


def test_alert_rules_and_contact_point() -> None:
    rules = alert_rules()
    assert {r["uid"] for r in rules} == {
        "tsguard-critical-episode-open",
        "tsguard-source-silent",
        "tsguard-series-silent",
        "tsguard-consumer-lag-growing",
    }
    provisioned = set(_datasources()) | {"__expr__"}
    for rule, query in alert_queries():
        assert query["datasourceUid"] in provisioned, rule["uid"]
        assert query["model"]["refId"] == query["refId"]
    for rule in rules:
        assert rule["condition"] in {q["refId"] for q in rule["data"]}
        assert rule["noDataState"] == "OK"
    text = (FILES.alerting_dir / "contact-points.yaml").read_text()
    doc = yaml.safe_load(text)
    receiver = doc["contactPoints"][0]["receivers"][0]
    assert receiver["type"] == "prometheus-alertmanager"
    assert doc["policies"][0]["receiver"] == doc["contactPoints"][0]["name"]


def test_alert_rules_name_a_panel_with_their_dashboard() -> None:
    """Grafana creates a provisioned rule only when its annotations name both a dashboard
    and one of its panels, or neither ("both annotations __dashboardUid__ and __panelId__
    must be specified"), and it provisions alerting before it serves anything: two rules
    named their dashboard alone, and Grafana would not start."""
    linked = 0
    for rule in alert_rules():
        annotations = rule.get("annotations", {})
        dashboard = annotations.get("__dashboardUid__")
        panel = annotations.get("__panelId__")
        assert (dashboard is None) == (panel is None), rule["uid"]
        if dashboard is None:
            continue
        linked += 1
        assert isinstance(panel, str) and panel.isdigit(), (rule["uid"], panel)
        assert int(panel) in {p["id"] for p in walk_panels(DASHBOARDS[dashboard])}, rule["uid"]
    assert linked


_MATCHER = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
# Labels Prometheus gives every scraped series; the code never sets them.
_TARGET_LABELS = {"job", "instance"}


def test_every_series_a_query_selects_is_exported() -> None:
    """Every metric a panel, Grafana alert or Prometheus rule names is one tsguard exports
    (or ``up``, or a recording rule's), and each label value it asks a worker metric for
    is one the worker creates at start. An ``or vector(0)`` answers with or without its
    metric, so the live test alone would not see a name or a value misspelt there."""
    registry = CollectorRegistry()
    worker = build_metrics(registry).registry
    samples = [s for family in worker.collect() for s in family.samples]
    ApiMetrics(registry)
    registry.register(ConnectorCollector("any", lambda: {"in": 0}))
    # a labelled family has no sample before its first labels (the consumer lag's partitions)
    exported = {
        name
        for family in registry.collect()
        for name in [s.name for s in family.samples]
        + [family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))]
    }
    exported |= {"up"} | {r["record"] for r in prometheus_rules() if "record" in r}
    for query in prom_queries():
        selectors = metric_selectors(query.expr)
        assert selectors, query.where
        for selector in selectors:
            name = selector.split("{")[0]
            assert name in exported, (query.where, selector)
            wanted = {k: v for k, v in _MATCHER.findall(selector) if k not in _TARGET_LABELS}
            if wanted and any(s.name == name for s in samples):
                assert any(
                    s.name == name and wanted.items() <= s.labels.items() for s in samples
                ), (query.where, selector)


def test_every_query_is_collected() -> None:
    """The live tests below run these; make sure the collectors do not miss any."""
    sql = sql_queries()
    prom = prom_queries()
    panel_targets = sum(len(p["targets"]) for d in DASHBOARDS.values() for p in walk_panels(d))
    dashboard_sql = [q for q in sql if q.fmt in ("time_series", "table")]
    dashboard_prom = [q for q in prom if not q.where.startswith(("alert:", "rule:"))]
    assert len(dashboard_sql) + len(dashboard_prom) == panel_targets
    assert {q.fmt for q in sql} == {"time_series", "table", "variable", "annotation", "alert"}
    assert any(q.where.startswith("rule:") for q in prom)
