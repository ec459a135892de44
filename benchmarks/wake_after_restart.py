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

import math
import time

from benchmarks.worker_memory import T0, fleet_cli, fleet_scorer, one_reading_each, score_fleet
from stream_app.worker import scoring
from stream_app.worker.scoring import ReadingScorer


def _scorer(store: dict[str, bytes]) -> ReadingScorer:
    scorer = fleet_scorer(store)
    scorer.saved_entities = lambda: list(store)
    return scorer


def measure(entities: int, readings: int) -> dict[str, float]:
    store: dict[str, bytes] = {}
    first = _scorer(store)
    score_fleet(first, entities, readings)
    for entity in list(first.states.entities()):
        store[entity] = first.states.dump(entity)
    del first
    now = T0 + 60 * (readings + 1)
    # one more reading of each entity: its last in a chunk of readings + 1
    nxt = one_reading_each(entities, readings + 1, readings)
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
    return fleet_cli(argv, __doc__, measure, readings=40)


if __name__ == "__main__":
    raise SystemExit(main())
