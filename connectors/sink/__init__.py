"""PostgreSQL / TimescaleDB storage: migrations and the batching sink."""

from connectors.sink.migrate import Flavor, detect_flavor, migrate
from connectors.sink.postgres import PostgresSink, SinkBackpressure, SinkStats

__all__ = ["Flavor", "PostgresSink", "SinkBackpressure", "SinkStats", "detect_flavor", "migrate"]
