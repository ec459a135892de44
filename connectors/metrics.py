"""``/metrics`` for the long-running connectors (forwarder, simulator, bridge, replay).

Each connector already keeps plain counters of what it did (``ForwardStats``,
the simulator's sent count, ...). :class:`ConnectorCollector` reads them at
scrape time, so the hot loops stay free of metric calls, and
:func:`serve_metrics` exposes them with Prometheus' own HTTP server on a port
given on the command line (the compose health checks poll it).

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> registry.register(ConnectorCollector("forwarder", lambda: {"in": 3, "out": 2}))
>>> registry.get_sample_value(
...     "tsguard_connector_messages_total", {"connector": "forwarder", "outcome": "out"}
... )
2.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class ConnectorCollector(Collector):
    """``tsguard_connector_messages_total{connector, outcome}`` from a counters callback."""

    def __init__(self, connector: str, read: Callable[[], Mapping[str, float]]) -> None:
        self.connector = connector
        self._read = read

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "tsguard_connector_messages",
            "Messages a connector handled, by outcome (in, out, deadletter, error, retry).",
            labels=["connector", "outcome"],
        )
        for outcome, value in sorted(self._read().items()):
            family.add_metric([self.connector, outcome], float(value))
        yield family


def serve_metrics(
    port: int | None,
    connector: str,
    read: Callable[[], Mapping[str, float]],
    *,
    host: str = "127.0.0.1",  # loopback unless told: in a container, 0.0.0.0 (see compose)
    registry: CollectorRegistry | None = None,
) -> Any:
    """Serve ``/metrics`` on ``host``:``port`` from a daemon thread (nothing when ``port``
    is None).

    Returns the HTTP server (``shutdown()`` and ``server_close()`` stop it) or None; a
    ``ValueError`` that says so when it cannot listen there (the port taken, an address
    this host does not have).
    """
    if port is None:
        return None
    registry = registry or CollectorRegistry()
    registry.register(ConnectorCollector(connector, read))
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:  # socket.gaierror too: an unknown name
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ValueError(f"cannot serve /metrics on {host}:{port}: {reason}") from None
    return server
