"""Long-running connectors export their counts on ``/metrics`` (scraped over real HTTP)."""

from __future__ import annotations

import socket

import httpx
import pytest

from connectors.ingest.mqtt_bridge import BridgeStats
from connectors.metrics import serve_metrics


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_counts_are_read_at_scrape_time() -> None:
    stats = BridgeStats()
    port = _free_port()
    server = serve_metrics(
        port,
        "mqtt-bridge",
        lambda: {"in": stats.messages, "out": stats.readings, "deadletter": stats.deadletters},
        host="127.0.0.1",
    )
    try:
        stats.messages, stats.readings, stats.deadletters = 7, 5, 2
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'tsguard_connector_messages_total{connector="mqtt-bridge",outcome="in"} 7.0' in text
        assert 'tsguard_connector_messages_total{connector="mqtt-bridge",outcome="out"} 5.0' in text
        stats.readings = 6
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'outcome="out"} 6.0' in text
    finally:
        server.shutdown()
        server.server_close()


def test_no_port_no_server() -> None:
    assert serve_metrics(None, "x", dict) is None


def _said(text: str) -> str:
    """An error box's words on one line (rich wraps them)."""
    return " ".join(text.replace("│", " ").split())


def test_metrics_listen_on_loopback_unless_told() -> None:
    server = serve_metrics(_free_port(), "x", dict)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()


def test_a_port_in_use_is_a_clear_error_not_a_traceback() -> None:
    from typer.testing import CliRunner

    from stream_app.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=rf"cannot serve /metrics on 127\.0\.0\.1:{port}: "):
            serve_metrics(port, "x", dict)
        result = CliRunner().invoke(
            app,
            ["simulate", "iot", "--dry-run", "--count", "1", "--metrics-port", str(port)],
        )
    assert result.exit_code == 2, result.output
    assert f"cannot serve /metrics on 127.0.0.1:{port}: " in _said(result.stderr)
    assert "Traceback" not in result.output


def test_an_address_this_host_does_not_have_is_a_clear_error() -> None:
    from typer.testing import CliRunner

    from stream_app.cli import app

    result = CliRunner().invoke(
        app,
        ["forward", "alertmanager", "--metrics-port", str(_free_port()),
         "--metrics-host", "192.0.2.1"],  # TEST-NET-1: never this host's
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "cannot serve /metrics on 192.0.2.1:" in _said(result.stderr)
