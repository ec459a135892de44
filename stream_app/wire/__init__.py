"""The wire format of tsguard, in code: the one home of the reading contract.

``schemas/*.schema.json`` describe the messages; this package implements them
for every producer and consumer (the worker's decoder, the connectors and the
API): time parsing (RFC 3339 only), name rules (anchored at the end), the
reading decoder with its rejection reasons, the checks of untrusted JSON
(duplicate keys, depth, lone surrogates, NUL), the dead-letter record and the
anomaly event.
"""

from stream_app.wire.content import DuplicateKeyError, content_problems, has_duplicate_keys
from stream_app.wire.deadletter import dead_letter
from stream_app.wire.event import EVENT_VERSION, event_to_wire
from stream_app.wire.names import ENTITY_RE, MAX_ENTITY, METRIC_RE, is_entity, is_metric
from stream_app.wire.reading import (
    ASCII_SPACE,
    MAX_METRICS,
    MAX_TAGS,
    Reading,
    ReadingDecoder,
    Rejection,
    parse_number,
)
from stream_app.wire.timefmt import (
    MAX_EPOCH,
    MAX_YEAR,
    MIN_YEAR,
    TimestampRangeError,
    epoch_seconds_from_number,
    format_rfc3339,
    parse_rfc3339,
    parse_timestamp,
)

__all__ = [
    "ASCII_SPACE",
    "ENTITY_RE",
    "EVENT_VERSION",
    "MAX_ENTITY",
    "MAX_EPOCH",
    "MAX_METRICS",
    "MAX_TAGS",
    "MAX_YEAR",
    "METRIC_RE",
    "MIN_YEAR",
    "DuplicateKeyError",
    "Reading",
    "ReadingDecoder",
    "Rejection",
    "TimestampRangeError",
    "content_problems",
    "dead_letter",
    "epoch_seconds_from_number",
    "event_to_wire",
    "format_rfc3339",
    "has_duplicate_keys",
    "is_entity",
    "is_metric",
    "parse_number",
    "parse_rfc3339",
    "parse_timestamp",
]
