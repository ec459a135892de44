"""Pure ASGI middleware: request metrics and the request body size limit.

Written against raw ASGI rather than ``BaseHTTPMiddleware`` so streamed
responses (the export) pass through untouched and the body limit can act
while the body is still arriving.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import HTTPException
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stream_app.api.roles import normalise_template

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """Request counts and latency per route *template* (bounded labels, never an entity)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "tsguard_api_requests_total",
            "HTTP requests served by the API.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "tsguard_api_request_seconds",
            "Time to the end of the response body.",
            ("method", "route"),
            buckets=_BUCKETS,
            registry=registry,
        )


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route") or _route_of(scope)
            path = getattr(route, "path", None)
            template = normalise_template(path) if isinstance(path, str) else "unmatched"
            method = str(scope.get("method", "?"))
            if method not in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"):
                method = "other"
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)


def _route_of(scope: Scope) -> Any:
    """The route a request was for when it was answered before routing (a 413 for its
    body's size was counted as ``unmatched``, out of sight of the route's panels)."""
    return _matching(getattr(scope.get("app"), "routes", ()), scope)


def _matching(routes: Any, scope: Scope) -> Any:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included router
        if included is not None:
            found = _matching(included.routes, scope)
            if found is not None:
                return found
            continue
        matched, _ = route.matches(scope)
        if matched != Match.NONE:
            return route
    return None


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: by Content-Length up front, else while streaming.

    When the limit is crossed mid-stream the ``receive`` wrapper raises an
    ``HTTPException(413)``, which FastAPI's handlers turn into the response
    before anything was sent (handlers read the body before they answer).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await _send_413(send, self.max_bytes)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(status_code=413, detail=_too_large(self.max_bytes))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await _send_413(send, self.max_bytes)


def _too_large(limit: int) -> str:
    return f"request body larger than {limit} bytes"


async def _send_413(send: Send, limit: int) -> None:
    body = b'{"detail":"' + _too_large(limit).encode() + b'"}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RejectNulMiddleware:
    """422 for a NUL byte in the path or query: PostgreSQL text cannot hold one, and
    finding out inside a streamed export would be too late for a clean error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"")
        ):
            body = b'{"detail":"NUL byte in the URL"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 422,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """``X-Content-Type-Options: nosniff`` on every response, and ``Cache-Control: no-store``
    on those of the ``/v1/`` routes: they answer bearer-token requests with the episodes,
    series and comments of the caller's organisation, which no browser cache or shared
    proxy may keep (the responses carried no caching header at all)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = str(scope.get("path", "")).startswith("/v1/")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {bytes(name).lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if private and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_wrapper)
