"""Long-running connectors export their counts on ``/metrics`` (scraped over real HTTP)."""

from __future__ import annotations

import socket

import httpx

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
