"""``tsguard dashboards push``: upload the dashboards (and datasources) over Grafana's HTTP API.

For operators whose Grafana is not provisioned from files. Uses the maintained
``grafana-client`` library. Every call is an upsert keyed on the stable uids,
so pushing twice changes nothing; provisioned and pushed dashboards are the
same JSON.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError

#: grafana-client has no type hints: its API object is typed as Any here.
Grafana = Any

FOLDER_UID = "tsguard"
FOLDER_TITLE = "tsguard"
#: Fields of a provisioning entry that the HTTP API does not accept.
_PROVISIONING_ONLY = ("editable", "orgId", "version", "deleteOnProvision")


@dataclass(slots=True)
class PushReport:
    """What one push created or updated, by uid."""

    folder_created: bool = False
    datasources_created: list[str] = field(default_factory=list)
    datasources_updated: list[str] = field(default_factory=list)
    dashboards: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"folder {FOLDER_UID}: {'created' if self.folder_created else 'exists'}"]
        out += [f"datasource {uid}: created" for uid in self.datasources_created]
        out += [f"datasource {uid}: updated" for uid in self.datasources_updated]
        out += [f"dashboard {uid}: pushed" for uid in self.dashboards]
        return out


def connect(url: str, token: str | None, *, timeout_s: float = 10.0) -> Grafana:
    """A client for ``url``; a service-account token (Bearer) or user:password in the URL."""
    return GrafanaApi.from_url(url, credential=token or None, timeout=timeout_s)


def _is_missing(exc: GrafanaClientError) -> bool:
    return bool(exc.status_code == 404)


def ensure_folder(api: Grafana, report: PushReport) -> None:
    """The tsguard folder, created with a fixed uid when it does not exist."""
    try:
        api.folder.get_folder(FOLDER_UID)
    except GrafanaClientError as exc:
        if not _is_missing(exc):
            raise
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        report.folder_created = True


def datasource_payload(entry: dict[str, Any]) -> dict[str, Any]:
    """A provisioning-file datasource as the HTTP API wants it."""
    payload = {k: copy.deepcopy(v) for k, v in entry.items() if k not in _PROVISIONING_ONLY}
    payload.setdefault("access", "proxy")
    return payload


def push_datasources(api: Grafana, entries: Iterable[dict[str, Any]], report: PushReport) -> None:
    """Create each datasource, or update it in place when its uid exists."""
    for entry in entries:
        payload = datasource_payload(entry)
        uid = str(payload["uid"])
        try:
            api.datasource.get_datasource_by_uid(uid)
        except GrafanaClientError as exc:
            if not _is_missing(exc):
                raise
            api.datasource.create_datasource(payload)
            report.datasources_created.append(uid)
            continue
        api.datasource.update_datasource_by_uid(uid, payload)
        report.datasources_updated.append(uid)


def push_dashboards(api: Grafana, dashboards: Iterable[dict[str, Any]], report: PushReport) -> None:
    """Upload each dashboard into the tsguard folder, overwriting the same uid."""
    for dashboard in dashboards:
        body = copy.deepcopy(dashboard)
        body.pop("id", None)  # Grafana matches on uid; a stale numeric id would conflict
        api.dashboard.update_dashboard(
            {
                "dashboard": body,
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "tsguard dashboards push",
            }
        )
        report.dashboards.append(str(body["uid"]))


def push(
    api: Grafana,
    dashboards: Iterable[dict[str, Any]],
    datasources: Iterable[dict[str, Any]] = (),
) -> PushReport:
    """Datasources first (dashboards refer to their uids), then folder and dashboards."""
    report = PushReport()
    push_datasources(api, datasources, report)
    ensure_folder(api, report)
    push_dashboards(api, dashboards, report)
    return report
