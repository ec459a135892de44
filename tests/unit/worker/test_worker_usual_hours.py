"""The worker's silence judgement forgets the hours a device no longer reports in, across
a restart from its saved state."""

from __future__ import annotations

import orjson

from stream_app.core import EngineConfig
from stream_app.worker.decode import ReadingDecoder
from stream_app.worker.feed import Record
from stream_app.worker.scoring import ReadingScorer
from stream_app.worker.states import EntityStates

MONDAY = 1_767_571_200.0  # 2026-01-05T00:00:00Z
DAY = 86_400.0
HOUR = 3600.0
STEP = 600.0  # ten-minute readings: silence after 100 minutes without one
NOW = MONDAY + 100 * DAY  # the wall clock, after every reading


def _stream(days: int) -> list[tuple[float, str]]:
    """A partition's readings in time order: a meter reporting around the clock every 20
    minutes (it moves the source's event time) and a press on the day shift
    (09:00-17:00) for three weeks, then on nights (21:00-05:00)."""
    docs = []
    for day in range(days):
        midnight = MONDAY + day * DAY
        docs += [(midnight + 1200.0 * k, "site/meter") for k in range(72)]
        start = 9.0 if day < 21 else 21.0
        docs += [(midnight + start * HOUR + STEP * k, "site/press") for k in range(48)]
    return sorted(docs)


def _records(docs: list[tuple[float, str]], offset: int) -> list[Record]:
    return [
        Record(
            orjson.dumps({"entity": entity, "ts": ts, "metrics": {"load": 20.0 + k % 3}}),
            entity.encode(),
            "r",
            0,
            offset + k,
        )
        for k, (ts, entity) in enumerate(docs)
    ]


def _scorer(store: dict[str, bytes]) -> ReadingScorer:
    states = EntityStates(EngineConfig.default(), store.get)
    return ReadingScorer(states, ReadingDecoder(max_future_s=1e12))


def test_a_press_moved_to_nights_is_not_judged_silent_at_its_day_hours_for_good() -> None:
    store: dict[str, bytes] = {}
    scorer = _scorer(store)
    docs = _stream(42)
    silent_days = []
    offset = 0
    for day in range(42):  # a batch a day, from 02:00 (the press is on its night shift)
        end = MONDAY + day * DAY + 2 * HOUR
        batch = [d for d in docs[offset:] if d[0] < end + DAY]
        if day == 24:  # a restart from the saved states, while it forgets
            for entity in ("site/meter", "site/press"):
                store[entity] = scorer.states.dump(entity)
            scorer = _scorer(store)
        events = scorer.process(_records(batch, offset), now=NOW).events
        offset += len(batch)
        if any(e["entity"] == "site/press" and e["kind"] == "silence" and e["event"] == "opened"
               for e in events):  # fmt: skip
            silent_days.append(day)
    assert silent_days[0] == 0  # its first evening: no pattern to judge by yet
    # quiet through its old hours: a silence each day for a week or two after the move
    # (every day to the end before)
    moved = silent_days[1:]
    assert moved[0] == 21 and 7 <= len(moved) <= 14
    assert moved == list(range(21, 21 + len(moved)))
