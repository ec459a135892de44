"""The dead-letter record (``schemas/deadletter.schema.json``)."""

from __future__ import annotations

import base64
from typing import Any

from stream_app.wire.reading import Rejection
from stream_app.wire.timefmt import format_rfc3339

MAX_ORIGIN_CHARS = 1024  # origin.key and origin.location (the schema's maxLength)


def dead_letter(
    raw: bytes | None,
    rejection: Rejection,
    *,
    at: float,
    max_payload: int,
    source: str = "kafka",
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | str | None = None,
    location: str | None = None,
) -> dict[str, Any]:
    """A dead-letter record with a bounded payload (UTF-8 text, else base64)."""
    payload = raw or b""
    cut = payload[:max_payload]
    try:
        text, encoding = cut.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(cut).decode("ascii"), "base64"
    if isinstance(key, bytes):
        key = key[: 4 * MAX_ORIGIN_CHARS].decode("utf-8", errors="replace")
    # a key or location is the sender's: cut, so that the letter (whose own Kafka key is
    # this key) stays under a message's size limit; a 600 kB key made a letter that
    # could not be sent, and the worker died on it at every restart
    if key is not None:
        key = key[:MAX_ORIGIN_CHARS]
    if location is not None:
        location = location[:MAX_ORIGIN_CHARS]
    return {
        "reason": rejection.reason,
        "detail": rejection.detail[:2000],
        "origin": {
            "source": source,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": key,
            "location": location,
        },
        "payload": text,
        "payload_encoding": encoding,
        "payload_size": len(payload),
        "truncated": len(payload) > max_payload,
        "at": format_rfc3339(at),
    }
