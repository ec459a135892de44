"""``POST /v1/readings``: validate a batch against the reading schema, produce to Kafka.

Validation is per item, so one bad reading does not sink a batch: valid items
are produced (key = entity, ``ingested_at`` stamped here) and each rejected
item comes back with its index, a JSON pointer to the offending field and the
message. 202 means every accepted item was acknowledged by the broker.
"""

from __future__ import annotations

import asyncio
import json
import time
from functools import lru_cache
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from stream_app.api.body import media_type_in
from stream_app.api.security import authorize
from stream_app.api.state import ApiState, api_state, require_producer
from stream_app.resources import data_file
from stream_app.wire import parse_timestamp
from stream_app.wire.content import content_problems, has_duplicate_keys, loads_marking_duplicates
from stream_app.wire.reading import MAX_FUTURE_S, Reading, ReadingDecoder, Rejection

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
_READING_TYPES = media_type_in(
    frozenset({"application/json", *NDJSON_TYPES}), "application/json or application/x-ndjson"
)
_MAX_ERRORS_PER_ITEM = 5
_MAX_ERRORS = 1000
_DECODER = ReadingDecoder()


class ItemError(BaseModel):
    index: int
    pointer: str
    field: str
    message: str


class IngestResult(BaseModel):
    accepted: int
    rejected: int
    errors: list[ItemError]


@lru_cache(maxsize=1)
def reading_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        data_file("schemas", "reading.schema.json").read_text("utf-8")
    )
    return schema


@lru_cache(maxsize=1)
def reading_validator() -> Draft202012Validator:
    """Compiled once: building a validator costs far more than using one."""
    return Draft202012Validator(
        reading_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


class _NonFinite(float):
    """Marks ``NaN``/``Infinity`` literals so they are reported per item."""


def parse_body(body: bytes, content_type: str) -> list[Any]:
    """The items of a JSON array (or single object) or of NDJSON lines.

    Raises ``ValueError`` when a JSON body does not parse at all. An NDJSON
    line that does not parse becomes a ``_BadLine`` item, reported with its
    index like any other invalid reading.
    """
    if content_type in NDJSON_TYPES:
        items: list[Any] = []
        short = 0  # lines shorter than any reading, so far: each one is refused
        for line in body.splitlines():
            if not line.strip():
                continue
            if len(line) < SHORTEST_READING:
                short += 1
                if short > _MAX_ERRORS:
                    # _MAX_ERRORS refused items said all there is room to say: this one is
                    # only counted, unparsed (5 MB of "x" lines, 2.5 million of them, took 85
                    # to 107 s on a busy 2-core host, each read by orjson and again by the
                    # standard parser for a message no one would see)
                    items.append(_SHORT_LINE)
                    continue
            items.append(_loads_lenient(line))
        return items
    data = _loads_lenient(body)
    if isinstance(data, _BadLine):
        raise ValueError(data.error)
    return data if isinstance(data, list) else [data]


class _BadLine:
    def __init__(self, error: str) -> None:
        self.error = error


# the length of the shortest reading there is, b'{"entity":"a","ts":0,"metrics":{"a":0}}'
SHORTEST_READING = 39
_SHORT_LINE = _BadLine("shorter than any reading")


def _loads_lenient(raw: bytes) -> Any:
    try:
        data = orjson.loads(raw)
        if not has_duplicate_keys(raw, data):
            return data
    except orjson.JSONDecodeError:
        pass
    # orjson refuses NaN/Infinity, numbers that overflow a double and lone
    # surrogates, and keeps the last of duplicate keys; the standard parser
    # reads them all, so each item can be rejected with a pointer.
    try:
        return loads_marking_duplicates(raw, parse_constant=_NonFinite)
    except (ValueError, RecursionError) as exc:
        return _BadLine(f"not valid JSON: {exc}"[:300])


def _escape(part: object) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


@lru_cache(maxsize=1)
def _bounded_objects() -> dict[str, int]:
    """The reading's object properties with a bound on their size (``metrics``, ``tags``)."""
    properties: dict[str, dict[str, Any]] = reading_schema()["properties"]
    return {name: int(p["maxProperties"]) for name, p in properties.items() if "maxProperties" in p}


def _oversized(item: Any) -> list[tuple[str, str]]:
    """An object over the schema's bound, said before the schema runs: jsonschema checks every
    name and value of it after the bound failed, and 200,000 metrics in one 2.7 MB reading held
    a thread of the API for 15 s (four of 300,000 at once, 71 s; the other clients waited)."""
    if not isinstance(item, dict):
        return []
    return [
        (f"/{name}", f"{len(value)} properties, more than {bound}")
        for name, bound in _bounded_objects().items()
        if isinstance(value := item.get(name), dict) and len(value) > bound
    ]


def validate_item(item: Any) -> list[tuple[str, str]]:
    """``(pointer, message)`` for every problem of one reading; empty when valid."""
    if isinstance(item, _BadLine):
        return [("", item.error)]
    problems = _oversized(item) or content_problems(item)[:_MAX_ERRORS_PER_ITEM]
    if problems:
        return problems
    told: dict[str, int] = {}  # "required" errors said so far, by the object's pointer
    for error in reading_validator().iter_errors(item):
        pointer = "".join(f"/{_escape(p)}" for p in error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            # one error per missing property, in the schema's order: each names its own
            # (every one named the first before: '/entity' for a missing ts)
            missing = [p for p in error.validator_value if p not in error.instance]
            nth = told.get(pointer, 0)
            told[pointer] = nth + 1
            pointer += f"/{_escape(missing[nth])}" if nth < len(missing) else ""
        problems.append((pointer, error.message[:300]))
        if len(problems) >= _MAX_ERRORS_PER_ITEM:
            break
    return problems


def _too_far_ahead(item: dict[str, Any], now: float) -> list[tuple[str, str]]:
    """The worker's own limit on a time in the future: past it, the reading would be
    accepted here (202) and dead-lettered there, unseen by the client."""
    try:
        ahead = parse_timestamp(item["ts"]) - now
    except (ValueError, OverflowError) as exc:  # the schema's format let it through
        return [("/ts", str(exc)[:300])]
    if ahead > MAX_FUTURE_S:
        return [("/ts", f"{ahead:.0f} s in the future (limit {MAX_FUTURE_S:.0f} s)")]
    return []


def check_batch(
    items: list[Any], now: float | None = None
) -> tuple[list[dict[str, Any]], list[ItemError], int]:
    """Split a batch into valid readings and errors; returns (valid, errors, rejected)."""
    valid: list[dict[str, Any]] = []
    errors: list[ItemError] = []
    rejected = 0
    clock = time.time() if now is None else now
    for index, item in enumerate(items):
        # the verdict from the worker's own decoder (it and the schema agree: a contract
        # test), the schema's pointers only for the errors reported: 1.7 million items
        # of {} in a 5 MB body took 32 s of the server's time, each checked by jsonschema
        verdict = _DECODER.validate(item, clock) if type(item) is dict else None
        if isinstance(verdict, Reading) and not content_problems(item):
            valid.append(item)
            continue
        rejected += 1
        if len(errors) >= _MAX_ERRORS:
            continue  # counted; no more is said of it
        problems = validate_item(item) or _too_far_ahead(item, clock)
        if not problems:  # the decoder's word, where the schema alone finds nothing
            detail = verdict.detail if isinstance(verdict, Rejection) else "not a reading"
            problems = [("", detail[:300])]
        for pointer, message in problems:
            if len(errors) < _MAX_ERRORS:
                field = pointer.split("/")[1] if pointer else ""
                errors.append(ItemError(index=index, pointer=pointer, field=field, message=message))
    return valid, errors, rejected


# bodies up to this size are checked on the event loop (a thread costs more than they do)
_INLINE_BYTES = 64 * 1024


def _checked(
    body: bytes, content_type: str
) -> tuple[list[Any], tuple[list[dict[str, Any]], list[ItemError], int]]:
    """The body's items, and :func:`check_batch`'s verdict on them."""
    items = parse_body(body, content_type)
    return items, check_batch(items)


router = APIRouter(tags=["ingest"], dependencies=[Depends(authorize)])

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Reading"}}
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/v1/readings",
    status_code=202,
    response_model=IngestResult,
    responses={
        413: {"description": "Body larger than api_max_body_bytes."},
        415: {"description": "Not JSON or NDJSON."},
        422: {"model": IngestResult, "description": "No valid reading in the batch."},
    },
    openapi_extra=_BODY_DOC,
)
async def post_readings(
    request: Request,
    content_type: str = Depends(_READING_TYPES),
    state: ApiState = Depends(api_state),
) -> Any:
    """Ingest a JSON array (``application/json``) or NDJSON (``application/x-ndjson``)."""
    body = await request.body()  # the BodyLimitMiddleware caps this at api_max_body_bytes
    try:
        if len(body) > _INLINE_BYTES:
            # a 4.5 MB batch took 4.5 s to check: on the event loop, every other request
            # (and the liveness probe) waited for it; in a thread they take turns
            items, (valid, errors, rejected) = await asyncio.to_thread(_checked, body, content_type)
        else:
            items, (valid, errors, rejected) = _checked(body, content_type)
    except ValueError as exc:
        errors = [ItemError(index=-1, pointer="", field="", message=str(exc)[:300])]
        return JSONResponse(IngestResult(accepted=0, rejected=0, errors=errors).model_dump(), 422)
    if not valid:
        if not items:
            errors = [ItemError(index=-1, pointer="", field="", message="no readings in the body")]
        return JSONResponse(
            IngestResult(accepted=0, rejected=rejected, errors=errors).model_dump(), 422
        )
    await _produce(state, valid)
    return IngestResult(accepted=len(valid), rejected=rejected, errors=errors)


async def _produce(state: ApiState, readings: list[dict[str, Any]]) -> None:
    producer = require_producer(state)
    topic = state.settings.topic_readings
    now = time.time()
    try:
        pending = []
        for reading in readings:
            reading["ingested_at"] = now
            pending.append(
                await producer.send(topic, orjson.dumps(reading), key=reading["entity"].encode())
            )
        await asyncio.gather(*pending)
    except KafkaError as exc:
        # Some items may have been written: a retry can duplicate them, which the
        # workers absorb (they deduplicate on entity, metric, ts).
        raise HTTPException(
            status_code=503, detail=f"Kafka unavailable: {type(exc).__name__}"
        ) from exc
