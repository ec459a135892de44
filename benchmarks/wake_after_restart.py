"""What a restarted worker pays to look at the saved entities not heard from yet.

After a restart or a rebalance, the silence scans load every saved entity that has not
sent a reading since (``ReadingScorer._wake``), judge those with silence left to watch
and let the others go, for at most ``WAKE_BUDGET_S`` a scan and a scan a
``WAKE_EVERY_S``. Scores ``--readings`` readings (3 metrics) of each of ``--entities``
entities, saves them, starts a new scorer on the saved states, and times the looks at
all of them (the pacing lifted), against one round of one reading per entity on the
restarted scorer (the reference: what loading them by their readings costs)::

    python -m benchmarks.wake_after_restart [--entities 20000] [--readings 40]

Printed as JSON: the seconds of looking, per entity, the scans it takes at the budget,
the reference round and the ratio of the two.
"""

from __future__ import annotations

import argparse
import json
import math
import time

from benchmarks.worker_memory import CHUNK, T0, _chunk
from stream_app.core import EngineConfig
from stream_app.worker import scoring
from stream_app.worker.decode import ReadingDecoder
from stream_app.worker.scoring import ReadingScorer
from stream_app.worker.states import EntityStates


def _scorer(store: dict[str, bytes]) -> ReadingScorer:
    scorer = ReadingScorer(
        EntityStates(EngineConfig.default(), store.get), ReadingDecoder(max_future_s=1e12)
    )
    scorer.saved_entities = lambda: list(store)
    return scorer


def measure(entities: int, readings: int) -> dict[str, float]:
    store: dict[str, bytes] = {}
    first = _scorer(store)
    for start in range(0, entities, CHUNK):
        first.process(_chunk(start, readings), now=T0 + 60 * readings)
    for entity in list(first.states.entities()):
        store[entity] = first.states.dump(entity)
    del first
    now = T0 + 60 * (readings + 1)
    # one more reading of each entity: its last in a chunk of readings + 1
    nxt = [
        r
        for start in range(0, entities, CHUNK)
        for r in _chunk(start, readings + 1)[readings :: readings + 1]
    ]
    restarted = _scorer(store)
    restarted.process(nxt[:1], now=now)  # a clock with time: the looks may begin
    every = scoring.WAKE_EVERY_S
    scoring.WAKE_EVERY_S = 0.0
    try:
        looked = 0.0
        while restarted._dormant or restarted._wake_due:
            started = time.perf_counter()
            restarted.advance(now)
            looked += time.perf_counter() - started
    finally:
        scoring.WAKE_EVERY_S = every
    live = sum(1 for _ in restarted.states.entities())
    reference = _scorer(dict(store))
    started = time.perf_counter()
    reference.process(nxt, now=now)
    round_s = time.perf_counter() - started
    return {
        "entities": entities,
        "readings": readings,
        "look_s": round(looked, 3),
        "look_ms_per_entity": round(1000 * looked / entities, 4),
        "scans_at_budget": math.ceil(looked / scoring.WAKE_BUDGET_S),
        "kept_live": live,
        "round_s": round(round_s, 3),
        "ratio_look_to_round": round(looked / round_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--readings", type=int, default=40)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.entities, args.readings)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
