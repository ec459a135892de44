"""Public operational endpoints: liveness, readiness, metrics, dev JWKS."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream_app.api.state import ApiState, api_state
from stream_app.storage.errors import NOT_MIGRATED_HINT

router = APIRouter(tags=["operations"])
_PROBE_TIMEOUT_S = 3.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving (no dependency checked)."""
    return {"status": "ok"}


class NotMigrated(Exception):
    """The database answers, without the tables the API reads."""


async def _check_postgres(state: ApiState) -> None:
    if state.pool is None:
        raise RuntimeError("no pool")
    async with state.pool.connection(timeout=_PROBE_TIMEOUT_S) as conn:
        row = await (await conn.execute("SELECT to_regclass('anomalies') IS NOT NULL")).fetchone()
        if not (row and row[0]):
            raise NotMigrated(NOT_MIGRATED_HINT)


async def _check_kafka(state: ApiState) -> None:
    if state.control is None:
        raise RuntimeError("no Kafka client")
    await state.control.ping()


@router.get("/readyz", responses={503: {"description": "A dependency is unreachable."}})
async def readyz(state: ApiState = Depends(api_state)) -> JSONResponse:
    """200 when PostgreSQL (migrated) and Kafka answer within a few seconds, else 503."""
    checks: dict[str, Any] = {}
    for name, probe in (("postgres", _check_postgres), ("kafka", _check_kafka)):
        try:
            await asyncio.wait_for(probe(state), _PROBE_TIMEOUT_S)
            checks[name] = "ok"
        except NotMigrated as exc:
            checks[name] = f"error: {exc}"
        except Exception as exc:  # any failure means "not ready"; say which
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics(state: ApiState = Depends(api_state)) -> Response:
    """Prometheus exposition of the app's own registry."""
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)


dev_router = APIRouter(tags=["operations"])


@dev_router.get("/dev/.well-known/jwks.json")
async def dev_jwks(state: ApiState = Depends(api_state)) -> dict[str, Any]:
    """The public dev keys (only mounted when ``oauth_dev_mode`` is on)."""
    from stream_app.api.devkeys import dev_key_path, load_or_create

    if not state.settings.oauth_dev_mode:
        raise HTTPException(status_code=404)
    return load_or_create(dev_key_path(state.settings)).public_jwks()
