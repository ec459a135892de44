"""Ground truth: what a simulator injected, where and when.

The simulators record every anomaly they inject as a `GroundTruth` so the demo
and the tests can compute recall and precision of the episodes the pipeline
reports. Delivery faults (out-of-order, duplicate) are recorded too, but with
``expect_episode=False``: a good pipeline absorbs them instead of paging.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

import orjson

from stream_app.offline.terminal import writing

GT_FIELDS = ("entity", "metric", "kind", "start", "end", "expect_episode", "source")


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """One injected anomaly on one series; ``start``/``end`` are epoch seconds, inclusive."""

    entity: str
    metric: str
    kind: str
    start: float
    end: float
    expect_episode: bool = True
    source: str = "iot"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (the wire format of the ground-truth topic and JSONL file)."""
        return asdict(self)

    def covers(self, entity: str, metric: str, ts: float) -> bool:
        """True when the point (entity, metric, ts) lies inside this window."""
        return (
            self.entity == entity and self.metric in (metric, "*") and self.start <= ts <= self.end
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GroundTruth:
        """Parse a record written by `to_dict` or read back from CSV (strings)."""
        flag = raw.get("expect_episode", True)
        if isinstance(flag, str):
            flag = flag.strip().lower() in ("1", "true", "yes")
        return cls(
            entity=str(raw["entity"]),
            metric=str(raw["metric"]),
            kind=str(raw["kind"]),
            start=float(raw["start"]),
            end=float(raw["end"]),
            expect_episode=bool(flag),
            source=str(raw.get("source", "")),
        )


class GroundTruthWriter:
    """Appends records to a CSV (``.csv``) or JSON Lines (anything else) file as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._csv = path.suffix.lower() == ".csv"
        self._fh: IO[str] = path.open("w", encoding="utf-8", newline="")
        self._writer: Any = None
        if self._csv:
            self._writer = csv.writer(self._fh)
            self._writer.writerow(GT_FIELDS)
        self.count = 0

    def write(self, records: Iterable[GroundTruth]) -> None:
        """Write and flush, so a crashed run still leaves usable truth behind."""
        with writing(str(self.path)):
            for rec in records:
                if self._writer is not None:
                    self._writer.writerow([getattr(rec, f.name) for f in fields(GroundTruth)])
                else:
                    self._fh.write(orjson.dumps(rec.to_dict()).decode() + "\n")
                self.count += 1
            self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        with writing(str(self.path)):
            self._fh.close()

    def __enter__(self) -> GroundTruthWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_ground_truth(path: Path) -> Iterator[GroundTruth]:
    """Read back a file written by `GroundTruthWriter` (CSV or JSONL)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        for row in csv.DictReader(io.StringIO(text)):
            yield GroundTruth.from_dict(row)
    else:
        for line in text.splitlines():
            if line.strip():
                yield GroundTruth.from_dict(orjson.loads(line))
