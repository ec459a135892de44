"""The app factory: ``create_app(settings, producer=..., pool=...)``.

Nothing happens at import time. The factory only wires routers, middleware
and the token verifier; the lifespan opens the PostgreSQL pool and the Kafka
clients, and closes what it opened (injected resources belong to the caller).
Kafka is connected in the background with retries so the API can start while
the broker is still coming up; until then ``/readyz`` says 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.routing import BaseRoute

from stream_app.api import anomalies, detectors, health, readings, series
from stream_app.api.auth import build_verifier
from stream_app.api.kafka import ControlView, ensure_compacted_topic
from stream_app.api.middleware import (
    ApiMetrics,
    BodyLimitMiddleware,
    MetricsMiddleware,
    RejectNulMiddleware,
    SecurityHeadersMiddleware,
)
from stream_app.api.roles import ROUTE_ROLES, normalise_template
from stream_app.api.security import authorize
from stream_app.api.state import ApiState
from stream_app.settings import Settings
from stream_app.storage.errors import NOT_MIGRATED, NOT_MIGRATED_HINT, UNAVAILABLE

log = logging.getLogger(__name__)
_KAFKA_RETRY_S = 2.0
_POOL_WAIT_S = 5.0  # a request waits this long for a connection, then 503


def create_app(
    settings: Settings,
    *,
    producer: Any = None,
    pool: AsyncConnectionPool[Any] | None = None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """Build the API. ``producer`` (an started ``AIOKafkaProducer``) and ``pool`` (an
    open pool) are used as given and not closed; otherwise the lifespan owns them."""
    registry = registry if registry is not None else CollectorRegistry()
    state = ApiState(settings=settings, registry=registry, metrics=ApiMetrics(registry))
    verifier = build_verifier(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        own_pool = pool is None
        state.pool = pool or AsyncConnectionPool(
            settings.pg_conninfo(),
            min_size=settings.pg_pool_min,
            max_size=settings.pg_pool_max,
            open=False,
            check=AsyncConnectionPool.check_connection,
            timeout=_POOL_WAIT_S,
        )
        if own_pool:
            await state.pool.open(wait=False)
        state.export_pool = AsyncConnectionPool(
            settings.pg_conninfo(),
            min_size=0,
            max_size=settings.api_max_exports,
            open=False,
            check=AsyncConnectionPool.check_connection,
            timeout=_POOL_WAIT_S,
        )
        await state.export_pool.open(wait=False)
        kafka = asyncio.create_task(_connect_kafka(state, producer), name="tsguard-api-kafka")
        try:
            yield
        finally:
            kafka.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await kafka
            if state.control is not None:
                await state.control.stop()
            if producer is None and state.producer is not None:
                await state.producer.stop()
            if own_pool:
                await state.pool.close()
            await state.export_pool.close()
            await verifier.keys.aclose()

    app = FastAPI(
        title="tsguard API",
        version="1.0",
        description="Ingest readings, query scored series and anomaly episodes, acknowledge "
        "and label them, manage detector rules. OAuth2 bearer tokens; roles per endpoint.",
        lifespan=lifespan,
        # no 307 from "/v1/anomalies/" to "/v1/anomalies": Starlette wrote its Location
        # with the request's Host header (any host a client sent); such a path is 404
        redirect_slashes=False,
    )
    app.state.api = state
    app.state.verifier = verifier
    for module in (readings, series, anomalies, detectors, health):
        app.include_router(module.router)
    if settings.oauth_dev_mode:
        app.include_router(health.dev_router)
    check_route_roles(app.routes)
    app.add_middleware(RejectNulMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: on the 413s and 422s too
    for unavailable in UNAVAILABLE:  # down, or read-only during a failover
        app.add_exception_handler(unavailable, _unavailable)
    app.add_exception_handler(PoolTimeout, _unavailable)
    app.add_exception_handler(psycopg.DataError, _unacceptable)
    for missing in NOT_MIGRATED:  # a database no `tsguard db migrate` (or worker) has seen
        app.add_exception_handler(missing, _not_migrated)
    app.openapi = _with_reading_schema(app.openapi)  # type: ignore[method-assign]
    return app


def _flat_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """``(prefix, route)`` for every route, also those of included routers: FastAPI keeps
    an included router as one entry of ``app.routes`` (``original_router``, no ``path``
    and no ``methods``), so a check of ``app.routes`` alone saw none of the API's routes."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _flat_routes(included.routes, prefix + str(getattr(context, "prefix", "")))
            continue
        yield prefix, route


def check_route_roles(routes: list[BaseRoute]) -> None:
    """Every route is in ``ROUTE_ROLES``; every non-public one carries ``authorize``."""
    for prefix, route in _flat_routes(routes):
        methods = getattr(route, "methods", None) or set()
        if not methods or not isinstance(getattr(route, "path", None), str):
            # a kind of route this check cannot read (a mount, a websocket): fail closed
            raise RuntimeError(f"{route!r} cannot be checked against ROUTE_ROLES")
        path = normalise_template(prefix + str(getattr(route, "path", "")))
        for method in methods - {"HEAD"}:
            if (method, path) not in ROUTE_ROLES:
                raise RuntimeError(f"{method} {path} has no role in ROUTE_ROLES")
            if ROUTE_ROLES[(method, path)] is None:
                continue
            guarded = isinstance(route, APIRoute) and any(
                dep.call is authorize for dep in route.dependant.dependencies
            )
            if not guarded:
                raise RuntimeError(f"{method} {path} declares a role but is not guarded")


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return JSONResponse({"detail": "database unavailable"}, status_code=503)


async def _not_migrated(_: Request, exc: Exception) -> JSONResponse:
    # 500 with a traceback before: the API does not migrate (the workers do, at start)
    log.warning("database schema not migrated: %s", exc)
    return JSONResponse({"detail": f"database {NOT_MIGRATED_HINT}"}, status_code=503)


async def _unacceptable(_: Request, exc: Exception) -> JSONResponse:
    # A value PostgreSQL cannot take (a NUL byte in text, say) is the client's fault.
    return JSONResponse({"detail": f"value not acceptable: {type(exc).__name__}"}, 422)


async def _connect_kafka(state: ApiState, producer: Any) -> None:
    """Create the control topic, start the producer and the control view; retry forever."""
    from aiokafka import AIOKafkaProducer

    settings = state.settings
    while True:
        own: Any = None
        control: ControlView | None = None
        try:
            await ensure_compacted_topic(settings, settings.topic_control)
            if producer is None:
                own = AIOKafkaProducer(
                    **settings.kafka_client_kwargs(),
                    acks="all",
                    linger_ms=5,
                    # a send fails (and its batch expires) after this, not aiokafka's 40 s
                    request_timeout_ms=int(settings.api_kafka_timeout_s * 1000),
                    max_request_size=settings.max_message_bytes,
                )
                await own.start()
            control = ControlView(settings, settings.topic_control, detectors.decode_rule)
            await control.start()
        except asyncio.CancelledError:
            if own is not None:
                await own.stop()
            raise
        except Exception as exc:  # broker not up yet: retry, /readyz says 503 meanwhile
            log.warning("Kafka not reachable (%s); retrying in %.0f s", exc, _KAFKA_RETRY_S)
            if own is not None:
                await own.stop()
            await asyncio.sleep(_KAFKA_RETRY_S)
            continue
        state.producer = producer if producer is not None else own
        state.control = control
        return


def _with_reading_schema(original: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Publish the reading JSON Schema as ``components.schemas.Reading`` in the OpenAPI."""

    def openapi() -> dict[str, Any]:
        document = original()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        if "Reading" not in schemas:
            reading = {
                k: v for k, v in readings.reading_schema().items() if k not in ("$schema", "$id")
            }
            schemas["Reading"] = reading
        return document

    return openapi
