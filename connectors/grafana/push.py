"""``tsguard dashboards push``: upload the dashboards (and datasources) over Grafana's HTTP API.

For operators whose Grafana is not provisioned from files. Six calls of
Grafana's HTTP API through httpx (already a dependency). Every call is an
upsert keyed on the stable uids, so pushing twice changes nothing;
provisioned and pushed dashboards are the same JSON.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx


class GrafanaError(RuntimeError):
    """Grafana answered a call with an error status."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"Grafana {response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
        self.status_code = response.status_code


class Grafana:
    """The few Grafana HTTP API calls ``push`` makes."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.client.request(method, path, json=body)
        if response.status_code >= 400:
            raise GrafanaError(response)
        return response.json() if response.content else None

    def get_folder(self, uid: str) -> Any:
        return self._call("GET", f"/api/folders/{quote(uid, safe='')}")

    def create_folder(self, title: str, uid: str) -> Any:
        return self._call("POST", "/api/folders", {"title": title, "uid": uid})

    def get_datasource(self, uid: str) -> Any:
        return self._call("GET", f"/api/datasources/uid/{quote(uid, safe='')}")

    def create_datasource(self, payload: dict[str, Any]) -> Any:
        return self._call("POST", "/api/datasources", payload)

    def update_datasource(self, uid: str, payload: dict[str, Any]) -> Any:
        return self._call("PUT", f"/api/datasources/uid/{quote(uid, safe='')}", payload)

    def save_dashboard(self, body: dict[str, Any]) -> Any:
        return self._call("POST", "/api/dashboards/db", body)


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
    parts = urlsplit(url)
    auth: httpx.BasicAuth | None = None
    headers: dict[str, str] = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif parts.username is not None:
        auth = httpx.BasicAuth(parts.username, parts.password or "")
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    base = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return Grafana(httpx.Client(base_url=base, headers=headers, auth=auth, timeout=timeout_s))


def _is_missing(exc: GrafanaError) -> bool:
    return exc.status_code == 404


def ensure_folder(api: Grafana, report: PushReport) -> None:
    """The tsguard folder, created with a fixed uid when it does not exist."""
    try:
        api.get_folder(FOLDER_UID)
    except GrafanaError as exc:
        if not _is_missing(exc):
            raise
        api.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
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
            api.get_datasource(uid)
        except GrafanaError as exc:
            if not _is_missing(exc):
                raise
            api.create_datasource(payload)
            report.datasources_created.append(uid)
            continue
        api.update_datasource(uid, payload)
        report.datasources_updated.append(uid)


def push_dashboards(api: Grafana, dashboards: Iterable[dict[str, Any]], report: PushReport) -> None:
    """Upload each dashboard into the tsguard folder, overwriting the same uid."""
    for dashboard in dashboards:
        body = copy.deepcopy(dashboard)
        body.pop("id", None)  # Grafana matches on uid; a stale numeric id would conflict
        api.save_dashboard(
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
