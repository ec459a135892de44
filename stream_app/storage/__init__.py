"""Storage: table columns, migrations, the Sink contract and the PostgreSQL sink."""

from stream_app.storage.migrate import Flavor, detect_flavor, migrate
from stream_app.storage.postgres import PostgresSink
from stream_app.storage.sink import ObservationRow, Sink, SinkBackpressure, SinkBatch, SinkStats

__all__ = [
    "Flavor",
    "ObservationRow",
    "PostgresSink",
    "Sink",
    "SinkBackpressure",
    "SinkBatch",
    "SinkStats",
    "detect_flavor",
    "migrate",
]
