"""The worker's silence on a fleet whose devices keep different clocks and deliveries.

``python -m benchmarks.silence_clocks [--days 2] [--jitter 2] [--seed 1] [--json]``

One partition, one reading a minute from each of 28 devices, fed to the worker's batch
step (``ReadingScorer``, 200 messages a batch, silence judged between batches too) in
the order the readings arrive:

- ``ok``: 10 devices on time;
- ``late``: 10 devices whose own clocks run 2 minutes to an hour late;
- ``gateway``: 4 devices whose gateway uploads what they took every 5, 15, 30 or 60
  minutes;
- ``silent``: 4 devices that stop for a while at 70 % of the run (two on time, 30 and
  60 minutes; one an hour late by its clock, for an hour; one behind a 15-minute
  gateway, for two hours).

Every device reads at the top of its minute plus up to ``--jitter`` seconds. A silence
episode is 10 typical intervals without data (the default), so ``ok`` and ``late``
should open none and ``silent`` one each. The gateways that upload every 30 and 60
minutes do leave their devices without data for longer than that between uploads, and
some of those gaps open a silence (21 in two days at the defaults).

>>> counts = run(days=1.2, jitter=2.0, seed=1)
>>> counts["ok"], counts["late"], counts["silent"]
(0, 0, 4)
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

import orjson

from stream_app.core import EngineConfig
from stream_app.worker.decode import ReadingDecoder
from stream_app.worker.feed import Record
from stream_app.worker.scoring import ReadingScorer
from stream_app.worker.states import EntityStates

START = 1_767_000_000.0
STEP = 60.0
BATCH = 200
# entity: (how late its clock runs, its gateway's upload period (0: none), silent from
# (a share of the run, or None), for how long)
Device = tuple[float, float, float | None, float]


def fleet() -> dict[str, Device]:
    devices: dict[str, Device] = {f"ok/{i}": (0.0, 0.0, None, 0.0) for i in range(10)}
    for late in (120, 300, 600, 900, 1200, 1500, 1800, 2400, 3000, 3600):
        devices[f"late/{late}s"] = (float(late), 0.0, None, 0.0)
    for period in (300, 900, 1800, 3600):
        devices[f"gateway/{period}s"] = (0.0, float(period), None, 0.0)
    devices["silent/on-time-30m"] = (0.0, 0.0, 0.70, 1800.0)
    devices["silent/on-time-60m"] = (0.0, 0.0, 0.72, 3600.0)
    devices["silent/late-60m"] = (900.0, 0.0, 0.71, 3600.0)
    devices["silent/gateway-120m"] = (0.0, 900.0, 0.73, 7200.0)
    return devices


def arrivals(days: float, jitter: float, seed: int) -> list[tuple[float, str, bytes]]:
    """(arrival time, entity, message) for every reading, in the order they arrive."""
    rng = random.Random(seed)
    end = START + days * 86400.0
    out = []
    for entity, (late, period, silent_from, silent_for) in fleet().items():
        quiet = START + silent_from * (end - START) if silent_from is not None else end
        t = START
        while t < end:
            if not quiet <= t < quiet + silent_for:
                taken = t + rng.uniform(0.0, jitter)
                arrive = taken if not period else (taken // period + 1) * period + rng.uniform(0, 5)
                doc = {"entity": entity, "ts": taken - late, "metrics": {"t": rng.gauss(20, 1)}}
                out.append((arrive, entity, orjson.dumps(doc)))
            t += STEP
    out.sort()
    return out


def run(days: float = 2.0, jitter: float = 2.0, seed: int = 1) -> Counter[str]:
    """Silence episodes opened per group of devices."""
    saved: dict[str, bytes] = {}
    states = EntityStates(EngineConfig.default(), saved.get)
    scorer = ReadingScorer(states, ReadingDecoder(max_future_s=1e12))
    opened: Counter[str] = Counter(dict.fromkeys(("ok", "late", "gateway", "silent"), 0))
    messages = arrivals(days, jitter, seed)
    for k in range(0, len(messages), BATCH):
        chunk = messages[k : k + BATCH]
        records = [Record(m, e.encode(), "r", 0, k + j) for j, (_, e, m) in enumerate(chunk)]
        now = chunk[-1][0]
        for out in (scorer.process(records, now=now), scorer.advance(now=now)):
            for event in out.events:
                if event["kind"] == "silence" and event["event"] == "opened":
                    opened[event["entity"].split("/")[0]] += 1
    return opened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--jitter", type=float, default=2.0, help="seconds after the minute")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = run(args.days, args.jitter, args.seed)
    if args.json:
        print(orjson.dumps(dict(counts)).decode())
    else:
        for group, n in counts.items():
            print(f"{group:8s} {n:6d} silence episodes opened")


if __name__ == "__main__":
    main()
