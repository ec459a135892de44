"""JSON request bodies read only after the caller is authorized.

FastAPI parses a body declared as an endpoint parameter before it runs the
dependencies, so ``{not json`` without a token answered 422 instead of 401.
:func:`json_body` is a dependency that depends on ``authorize`` and reads the
body itself; the body is then checked like every untrusted JSON
(:mod:`stream_app.wire.content`: duplicate keys, nesting depth, lone
surrogates, NUL, non-finite numbers) before the model validates it. Errors are
422 in FastAPI's own ``detail`` shape. A body that does not say it is JSON
(``Content-Type``) is 415 before it is read, as on ``POST /v1/readings``
(:func:`media_type_in` serves both).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from stream_app.api.auth import Principal
from stream_app.api.security import authorize
from stream_app.wire.content import content_problems, has_duplicate_keys

M = TypeVar("M", bound=BaseModel)
JSON_TYPES = frozenset({"application/json"})


def media_type_in(accepted: frozenset[str], say: str) -> Callable[[Request], Awaitable[str]]:
    """A dependency giving the request's media type (lower case, without parameters such
    as ``charset``), or 415 naming ``say`` when it is not one of ``accepted``."""

    async def media_type(request: Request) -> str:
        found = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if found not in accepted:
            raise HTTPException(status_code=415, detail=f"use {say}")
        return found

    return media_type


# a body sent as text/plain (or with no type) was read as JSON all the same
json_media_type = media_type_in(JSON_TYPES, "application/json")


def _invalid(
    loc: list[str | int], message: str, kind: str = "value_error"
) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ["body", *loc], "msg": message}])


def parse_untrusted(raw: bytes) -> Any:
    """The parsed body, or RequestValidationError naming the first problem."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:  # also lone surrogates and depth > 1024
        raise _invalid([], f"body is not valid JSON: {exc}"[:300], "json_invalid") from None
    if has_duplicate_keys(raw, data):
        raise _invalid([], "an object in the body names the same key twice", "json_invalid")
    problems = content_problems(data)
    if problems:
        pointer, message = problems[0]
        loc: list[str | int] = [part for part in pointer.split("/")[1:]]
        raise _invalid(loc, message)
    return data


def json_body(model: type[M]) -> Callable[..., Awaitable[M]]:
    """A dependency giving the request body as ``model``, after ``authorize``."""

    async def read(
        request: Request,
        _principal: Principal = Depends(authorize),
        _media_type: str = Depends(json_media_type),
    ) -> M:
        data = parse_untrusted(await request.body())
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in errors]
            ) from None

    return read


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` that documents the body the dependency reads."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        },
        "responses": {"415": {"description": "Not application/json."}},
    }
