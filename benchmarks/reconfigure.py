"""A rule changed at run time: what it costs the worker to keep what its models learned.

A rule change keeps what the live models learned: each live entity is packed and
restored under the new rules at its next use. Scores ``--readings`` readings (3
metrics) of each of ``--entities`` entities with the worker's scorer, then times one
checkpoint round (every entity's state saved), the rule change itself (a rule matching
no series: what holds the event loop at once), and the next round of one reading per
entity after it, against the same round without a change (the reference)::

    python -m benchmarks.reconfigure [--entities 20000] [--readings 60]

Printed as JSON.
"""

from __future__ import annotations

import time

from benchmarks.worker_memory import T0, fleet_cli, fleet_scorer, one_reading_each, score_fleet
from stream_app.core import EngineConfig


def measure(entities: int, readings: int) -> dict[str, float]:
    store: dict[str, bytes] = {}
    scorer = fleet_scorer(store)
    score_fleet(scorer, entities, readings)
    started = time.perf_counter()
    for entity in list(scorer.states.entities()):
        store[entity] = scorer.states.dump(entity)
    checkpoint = time.perf_counter() - started
    rounds = [one_reading_each(entities, readings + 2, k) for k in (readings, readings + 1)]
    started = time.perf_counter()
    scorer.process(rounds[0], now=T0 + 60 * (readings + 1))
    plain = time.perf_counter() - started
    unrelated = {"rules": [{"pattern": "none/*", "policy": {"min_points": 3}}]}
    started = time.perf_counter()
    scorer.states.reconfigure(EngineConfig.from_mapping(unrelated))
    change = time.perf_counter() - started
    started = time.perf_counter()
    scorer.process(rounds[1], now=T0 + 60 * (readings + 2))
    after = time.perf_counter() - started
    return {
        "entities": entities,
        "readings": readings,
        "checkpoint_round_s": round(checkpoint, 3),
        "rule_change_s": round(change, 4),
        "round_s": round(plain, 3),
        "round_after_change_s": round(after, 3),
        "ratio_after_change": round(after / plain, 2),
    }


def main(argv: list[str] | None = None) -> int:
    return fleet_cli(argv, __doc__, measure, readings=60)


if __name__ == "__main__":
    raise SystemExit(main())
