"""Detector and episode-policy rules per series pattern, stored in the control topic.

A rule is exactly what the workers' ``EngineConfig`` accepts in its ``rules``
list (``pattern``, ``detector``, ``params``, ``policy``, ``limits``,
``cleaning``); the API parses it with the same code before publishing, so a
rule that reaches the topic is one every worker can apply. Workers follow the
topic and swap configurations without restarting.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from stream_app.api.body import body_doc, json_body
from stream_app.api.security import authorize
from stream_app.api.state import ApiState, api_state, require_producer

router = APIRouter(tags=["detectors"], dependencies=[Depends(authorize)])
RuleName = Path(..., pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class DetectorRule(BaseModel):
    """One rule; fields left out fall back to the workers' defaults."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "pattern": "plant-*/temperature",
                "detector": "robust_seasonal",
                "policy": {"threshold": 0.999, "direction": "up", "min_points": 2},
            }
        },
    )

    pattern: str = Field(..., min_length=1, max_length=300, description="fnmatch on entity/metric")
    detector: str | None = Field(None, max_length=64)
    params: dict[str, Any] | None = None
    policy: dict[str, Any] | None = None
    limits: dict[str, Any] | None = None
    cleaning: dict[str, Any] | None = None


class NamedRule(DetectorRule):
    name: str


class RuleList(BaseModel):
    items: list[NamedRule]


def workers_accept(rule: dict[str, Any]) -> None:
    """``ValueError`` unless the workers' own parser and detector registry accept the rule."""
    from stream_app.core import EngineConfig

    try:
        EngineConfig.from_mapping({"rules": [rule]})
    except TypeError as exc:
        raise ValueError(str(exc)) from exc


def check_rule(rule: dict[str, Any]) -> None:
    """422 unless the workers accept the rule (:func:`workers_accept`)."""
    try:
        workers_accept(rule)
    except ValueError as exc:
        # the parser's place of the one rule it was given ("rules[0]") is not the client's
        detail = str(exc).removeprefix("rules[0].").removeprefix("rules[0]: ")
        raise HTTPException(status_code=422, detail=detail[:500]) from exc


def decode_rule(value: bytes) -> dict[str, Any]:
    """Control-topic value -> rule (ValueError for what the API would not write, and for
    what the workers ignore: a record written past the API, whose threshold 5 the workers
    refused, was listed as if applied)."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(data, dict):
        raise ValueError("rule is not a JSON object")
    rule = DetectorRule.model_validate(data).model_dump(exclude_none=True)
    workers_accept(rule)
    return rule


@router.get("/v1/detectors", response_model=RuleList, response_model_exclude_none=True)
async def list_rules(state: ApiState = Depends(api_state)) -> dict[str, Any]:
    """The current rules, read from the control topic up to its end."""
    if state.control is None:
        raise HTTPException(status_code=503, detail="Kafka not available")
    try:
        rules = await state.control.snapshot()
    except (KafkaError, TimeoutError) as exc:
        raise HTTPException(status_code=503, detail="control topic unavailable") from exc
    return {"items": [{"name": name, **rules[name]} for name in sorted(rules)]}


@router.put(
    "/v1/detectors/{name}",
    response_model=NamedRule,
    response_model_exclude_none=True,
    openapi_extra=body_doc(DetectorRule),
)
async def put_rule(
    rule: DetectorRule = Depends(json_body(DetectorRule)),
    name: str = RuleName,
    state: ApiState = Depends(api_state),
) -> dict[str, Any]:
    """Create or replace the rule ``name`` (admin)."""
    value = rule.model_dump(exclude_none=True)
    check_rule(value)
    await _publish(state, name, orjson.dumps(value))
    return {"name": name, **value}


@router.delete("/v1/detectors/{name}", status_code=204, response_model=None)
async def delete_rule(name: str = RuleName, state: ApiState = Depends(api_state)) -> None:
    """Remove the rule ``name`` (a tombstone; compaction drops it later)."""
    await _publish(state, name, None)


async def _publish(state: ApiState, name: str, value: bytes | None) -> None:
    producer = require_producer(state)
    try:
        await producer.send_and_wait(state.settings.topic_control, value, key=name.encode())
    except KafkaError as exc:
        raise HTTPException(status_code=503, detail="Kafka unavailable; rule not stored") from exc
