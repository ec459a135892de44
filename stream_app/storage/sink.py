"""The sink contract the worker writes through, owned by tsguard.

After quix-streams' sinks: ``add_*`` buffers, ``take`` hands the buffer over
as one batch, ``flush_with_retry`` writes a batch in one transaction and
retries with backoff while the destination is away (the caller stops
consuming meanwhile: backpressure, never a dropped batch). Writes are
idempotent, so a replay never duplicates. :class:`PostgresSink` implements it;
tests use a list-backed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol


class ObservationRow(NamedTuple):
    """One scored point as stored in ``observations``."""

    entity: str
    metric: str
    ts: datetime
    value: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    score: float | None
    is_anomaly: bool
    status: str
    detector: str | None


class SourceMark(NamedTuple):
    """How far one source's clock (its event time in one partition) moved since the last
    mark: stored in ``sources``, which the wall-clock alert on a source that stopped
    sending reads (see :mod:`stream_app.core.activity`)."""

    source: str
    partition: int
    watermark: datetime  # its newest reading's time (never ahead of the wall clock)
    step_s: float | None  # its usual step (None before its first)
    live_tod: int  # the five-minute slots of the UTC day it reported in since the last mark
    live_dow: int  # the weekdays (Monday = bit 0) it reported on since the last mark


class SinkBackpressure(Exception):
    """The database cannot take the batch now; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: float, cause: BaseException) -> None:
        super().__init__(
            f"sink unavailable ({type(cause).__name__}: {cause}); retry in {retry_after:.1f}s"
        )
        self.retry_after = retry_after
        self.cause = cause


@dataclass(slots=True)
class SinkStats:
    """What one successful flush wrote."""

    points: int = 0
    points_inserted: int = 0
    episodes: int = 0
    seconds: float = 0.0
    # episodes the batch's orphans resolved, as stored (the anomalies table's columns)
    resolved: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class SinkBatch:
    """Points and episode records written together in one transaction."""

    points: list[ObservationRow] = field(default_factory=list)
    episodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (entity, epoch seconds, ids): the entity's episodes stored open whose last event
    # came before that time, other than those ids and the batch's own, have lost the
    # model that would resolve them; the write resolves them at that time, after the
    # batch's own episodes
    orphans: list[tuple[str, float, tuple[str, ...]]] = field(default_factory=list)
    # the sources whose clocks moved, and when (the worker's wall clock) it saw them move
    sources: list[SourceMark] = field(default_factory=list)
    seen_at: datetime | None = None

    def __len__(self) -> int:
        return len(self.points) + len(self.episodes) + len(self.orphans) + len(self.sources)


class Sink(Protocol):
    """Where scored points and episode events go."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def add_point(self, row: ObservationRow) -> None: ...

    def add_episode(self, event: Mapping[str, Any]) -> None:
        """Buffer an anomaly event (wire format); only the latest per episode is kept."""

    def take(self) -> SinkBatch:
        """What is buffered, as one batch; the buffer starts empty."""

    async def flush_with_retry(
        self, batch: SinkBatch | None = None, *, all_series: bool = True
    ) -> SinkStats:
        """Write ``batch`` (else the buffer) in one transaction, retrying until it is durable."""

    async def apply_retention(self, days: int) -> int | None:
        """Delete what is older than ``days``; None when another worker is doing it."""
