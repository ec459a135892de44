"""The uvicorn server ``tsguard api`` runs the app in.

uvicorn answers a request it cannot parse (a header beyond h11's 16 kB bound for an
incomplete head, a malformed request line) with a 400 of its own, before the app and its
:class:`~stream_app.api.middleware.MetricsMiddleware` see anything: the API's request
metrics never counted them (a 200 kB header, answered 400 on the stack, left
``tsguard_api_requests_total`` as it was). The server speaks HTTP/1.1 through h11 with
those 400s counted as ``method="other", route="unmatched", status="400"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from fastapi import FastAPI

    from stream_app.api.middleware import ApiMetrics
    from stream_app.settings import Settings


def server_config(settings: Settings, served: FastAPI) -> uvicorn.Config:
    """uvicorn's configuration for ``served`` (an app of ``create_app``) under ``settings``."""
    tls = settings.api_tls_certfile is not None and settings.api_tls_keyfile is not None
    return uvicorn.Config(
        served,
        host=settings.api_host,
        port=settings.api_port,
        ssl_certfile=str(settings.api_tls_certfile) if tls else None,
        ssl_keyfile=str(settings.api_tls_keyfile) if tls else None,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
        # h11 by name: "auto" takes httptools when it is installed, whose 400s this
        # does not count
        http=counting_h11(served.state.api.metrics),
    )


def counting_h11(metrics: ApiMetrics) -> type[H11Protocol]:
    """uvicorn's h11 protocol, counting the 400s it answers without the app."""

    class CountingH11Protocol(H11Protocol):
        def send_400_response(self, msg: str) -> None:
            metrics.requests.labels("other", "unmatched", "400").inc()
            super().send_400_response(msg)

    return CountingH11Protocol
