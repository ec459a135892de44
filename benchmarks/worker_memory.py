"""Memory a worker's live models hold per entity, with and without the live limit.

``python -m benchmarks.worker_memory [--entities N] [--readings R] [--limit L]``
scores ``R`` readings (3 metrics each) of each of ``N`` entities with the
worker's :class:`~stream_app.worker.scoring.ReadingScorer`, 1,000 entities at a
time, once keeping every entity live and once evicting idle ones beyond ``L``
after each chunk (``TSGUARD_WORKER_MAX_LIVE_ENTITIES``). Before each eviction
every live entity's state is written to a dict, as the checkpointer would have
saved it, so eviction is judged on silence alone. Printed as JSON: the memory
Python holds for the scorer afterwards (``tracemalloc``, after a collection,
the messages dropped), the live entities, the evicted ones and the saved
states' bytes. With fewer readings than the warm-up (30) no series is watched
for silence yet, so every idle entity may go.
"""

from __future__ import annotations

import argparse
import gc
import json
import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson

from stream_app.core import EngineConfig
from stream_app.worker.decode import ReadingDecoder
from stream_app.worker.feed import Record
from stream_app.worker.scoring import ReadingScorer
from stream_app.worker.states import EntityStates

T0 = 1_790_000_000.0
CHUNK = 1000


def _chunk(first: int, readings: int) -> list[Record]:
    return [
        Record(
            orjson.dumps(
                {
                    "entity": f"e{i}",
                    "ts": T0 + 60 * k,
                    "metrics": {"a": 1.0 + 0.01 * k, "b": 2.0, "c": 3.0 + i % 7},
                }
            ),
            f"e{i}".encode(),
            "readings",
            0,
            i * readings + k,
        )
        for i in range(first, first + CHUNK)
        for k in range(readings)
    ]


def fleet_scorer(store: dict[str, bytes]) -> ReadingScorer:
    """The worker's scorer, loading saved states from ``store`` (the checkpointer's table)."""
    return ReadingScorer(
        EntityStates(EngineConfig.default(), store.get), ReadingDecoder(max_future_s=1e12)
    )


def score_fleet(scorer: ReadingScorer, entities: int, readings: int) -> None:
    """``readings`` readings of each of ``entities`` entities, scored a chunk at a time."""
    for first in range(0, entities, CHUNK):
        scorer.process(_chunk(first, readings), now=T0 + 60 * readings)


def one_reading_each(entities: int, readings: int, k: int) -> list[Record]:
    """The ``k``-th of ``readings`` readings of each of ``entities`` entities."""
    return [r for first in range(0, entities, CHUNK) for r in _chunk(first, readings)[k::readings]]


def fleet_cli(
    argv: list[str] | None,
    doc: str,
    measure: Callable[[int, int], dict[str, Any]],
    readings: int,
) -> int:
    """The command line of a benchmark over ``--entities`` entities of ``--readings``
    readings each (default ``readings``), printing ``measure``'s result as JSON."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--readings", type=int, default=readings)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.entities, args.readings)))
    return 0


def measure(entities: int, readings: int, limit: int) -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    store: dict[str, bytes] = {}
    scorer = fleet_scorer(store)
    evicted = 0
    for first in range(0, entities, CHUNK):
        scorer.process(_chunk(first, readings), now=T0 + 60 * readings)
        if limit:
            for entity in list(scorer.states.entities()):
                store[entity] = scorer.states.dump(entity)
            evicted += scorer.evict(limit, lambda entity: False)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    saved = sum(map(len, store.values()))
    return {
        "limit": limit,
        "entities": entities,
        "live": len(list(scorer.states.entities())),
        "evicted": evicted,
        "held_mb": round(held / 1e6, 1),
        "saved_states_mb": round(saved / 1e6, 1),
        "held_kb_per_entity": round(held / entities / 1e3, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--readings", type=int, default=25)
    parser.add_argument("--limit", type=int, default=1_000)
    args = parser.parse_args(argv)
    for limit in (0, args.limit):
        print(json.dumps(measure(args.entities, args.readings, limit)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
