"""What every request handler can reach: settings and the open resources.

One object on ``app.state.api`` instead of module globals, so two apps (two
tests, two settings) never share a pool or a producer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, Request
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from stream_app.api.kafka import ControlView
from stream_app.api.middleware import ApiMetrics
from stream_app.settings import Settings


@dataclass
class ApiState:
    settings: Settings
    registry: CollectorRegistry
    metrics: ApiMetrics
    pool: AsyncConnectionPool[Any] | None = None
    # the exports' own connections (at most settings.api_max_exports), apart from the
    # routes' pool, and how many run now
    export_pool: AsyncConnectionPool[Any] | None = None
    exports_running: int = 0
    producer: Any = None  # aiokafka.AIOKafkaProducer (untyped library)
    # labels waiting for Kafka with a connection held: at most half the pool, so a Kafka
    # outage cannot take the other routes' connections
    label_slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.label_slots = asyncio.Semaphore(max(1, self.settings.pg_pool_max // 2))

    control: ControlView | None = None


def api_state(request: Request) -> ApiState:
    """FastAPI dependency: the state of the app serving this request."""
    state: ApiState = request.app.state.api
    return state


def require_pool(state: ApiState) -> AsyncConnectionPool[Any]:
    if state.pool is None:
        raise HTTPException(status_code=503, detail="database not available")
    return state.pool


def require_producer(state: ApiState) -> Any:
    if state.producer is None:
        raise HTTPException(status_code=503, detail="Kafka not available")
    return state.producer
