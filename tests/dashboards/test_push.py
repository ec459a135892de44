"""`tsguard dashboards push` against a small local HTTP fake: request shapes only."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from connectors.grafana.push import connect, push
from stream_app.cli import app
from stream_app.settings import Settings
from tests.dashboards.queries import FILES


@dataclass
class FakeGrafana:
    """Records every request; knows one existing datasource (tsguard-prom)."""

    url: str = ""
    requests: list[tuple[str, str, str | None, dict[str, Any]]] = field(default_factory=list)
    existing_datasources: set[str] = field(default_factory=lambda: {"tsguard-prom"})
    folders: set[str] = field(default_factory=set)


def _handler(fake: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body: Any = json.loads(self.rfile.read(length)) if length else {}
            fake.requests.append((self.command, self.path, self.headers.get("Authorization"), body))
            path = self.path
            if self.command == "GET" and path.startswith("/api/datasources/uid/"):
                uid = path.rsplit("/", 1)[1]
                if uid in fake.existing_datasources:
                    return self._reply(200, {"uid": uid, "id": 7})
                return self._reply(404, {"message": "Data source not found"})
            if self.command == "GET" and path.startswith("/api/folders/"):
                uid = path.rsplit("/", 1)[1]
                if uid in fake.folders:
                    return self._reply(200, {"uid": uid})
                return self._reply(404, {"message": "folder not found"})
            if self.command == "POST" and path == "/api/folders":
                fake.folders.add(body["uid"])
                return self._reply(200, {"uid": body["uid"], "title": body["title"]})
            if path.startswith("/api/datasources"):
                return self._reply(200, {"message": "ok", "datasource": body})
            if self.command == "POST" and path == "/api/dashboards/db":
                return self._reply(200, {"status": "success", "uid": body["dashboard"]["uid"]})
            return self._reply(404, {"message": "unexpected"})

        do_GET = do_POST = do_PUT = _handle

    return Handler


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_push_request_shapes(grafana: FakeGrafana) -> None:
    settings = Settings(pg_readonly_password=SecretStr("ro-secret"))
    report = push(connect(grafana.url, "tok"), FILES.dashboards(), FILES.datasources(settings))
    calls = [(method, path) for method, path, _, _ in grafana.requests]
    assert calls == [
        ("GET", "/api/datasources/uid/tsguard-pg"),
        ("POST", "/api/datasources"),
        ("GET", "/api/datasources/uid/tsguard-prom"),
        ("PUT", "/api/datasources/uid/tsguard-prom"),
        ("GET", "/api/folders/tsguard"),
        ("POST", "/api/folders"),
        *[("POST", "/api/dashboards/db")] * 3,
    ]
    assert {auth for _, _, auth, _ in grafana.requests} == {"Bearer tok"}
    created = grafana.requests[1][3]
    assert created["uid"] == "tsguard-pg" and created["type"] == "grafana-postgresql-datasource"
    assert created["secureJsonData"] == {"password": "ro-secret"}
    assert created["url"] == settings.grafana_pg_host and "editable" not in created
    assert grafana.requests[5][3] == {"title": "tsguard", "uid": "tsguard"}
    for _, _, _, body in grafana.requests[6:]:
        assert body["folderUid"] == "tsguard" and body["overwrite"] is True
        assert body["dashboard"]["uid"].startswith("tsguard-") and "id" not in body["dashboard"]
    assert report.datasources_created == ["tsguard-pg"]
    assert report.datasources_updated == ["tsguard-prom"] and report.folder_created


def test_cli_push_dashboards_only(grafana: FakeGrafana) -> None:
    grafana.folders.add("tsguard")
    result = CliRunner().invoke(app, ["dashboards", "push", "--url", grafana.url, "--token", "t"])
    assert result.exit_code == 0, result.output
    assert [p for _, p, _, _ in grafana.requests] == [
        "/api/folders/tsguard",
        *["/api/dashboards/db"] * 3,
    ]
    assert "dashboard tsguard-overview: pushed" in result.output


def test_cli_where_prints_the_provisioning_path() -> None:
    result = CliRunner().invoke(app, ["dashboards", "where"])
    assert result.exit_code == 0 and str(FILES.root) in result.output
    assert "docker compose up" in result.output
