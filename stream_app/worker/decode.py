"""The worker's reading decoder: re-exported from :mod:`stream_app.wire`.

The wire package owns the reading contract (decoder, time parsing, name
rules, dead letters); this module keeps the worker's import path.
"""

from stream_app.wire.content import has_duplicate_keys
from stream_app.wire.deadletter import dead_letter
from stream_app.wire.names import ENTITY_RE, MAX_ENTITY, METRIC_RE
from stream_app.wire.reading import (
    MAX_METRICS,
    MAX_TAGS,
    Reading,
    ReadingDecoder,
    Rejection,
)
from stream_app.wire.timefmt import parse_timestamp

__all__ = [
    "ENTITY_RE",
    "MAX_ENTITY",
    "MAX_METRICS",
    "MAX_TAGS",
    "METRIC_RE",
    "Reading",
    "ReadingDecoder",
    "Rejection",
    "dead_letter",
    "has_duplicate_keys",
    "parse_timestamp",
]
