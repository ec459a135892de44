"""Level shifts among random spikes: found before the level is learned, and how late.

A CPU % near 0.3 whose readings spike at random (2 %, by 0.5-3:
:func:`stream_app.offline.families.random_spikes`) rises by ``size`` at point 3,000
of 4,032 (5-minute steps) and stays there. The default configuration learns a new
level after twelve outliers, so a shift that has not paged by then is missed. For
each size the shift is drawn ``--draws`` times (seeds 0..N-1) and counted found
when an episode opens in its first twelve points (the onsets are
:func:`benchmarks.probes.score`'s); the delays are those of the found ones::

    python -m benchmarks.spike_shifts [--draws 20] [--json]

>>> row = run(1, sizes=(2.0,))[0]
>>> row["size"], row["draws"], row["found"] <= 1
(2.0, 1, True)
"""

from __future__ import annotations

import statistics

import numpy as np

from benchmarks.noise_shapes import Row, draws_cli
from benchmarks.probes import START, STEP, N, score
from stream_app.offline.families import random_spikes

AT = 3000  # where the shift starts
LEARNED = 12  # the default ``jump_points``: after these many outliers the level is learned
SIZES = (0.5, 1.0, 2.0)


def run(draws: int, sizes: tuple[float, ...] = SIZES) -> list[Row]:
    t = START + STEP * np.arange(N, dtype=np.float64)
    rows: list[Row] = []
    for size in sizes:
        delays = []
        for seed in range(draws):
            values = random_spikes(np.random.default_rng(seed), t)
            values[AT:] += size
            # with no window, every onset after the probation is listed
            onsets = score(values, None).false
            delays += [i - AT for i in onsets if AT <= i <= AT + LEARNED][:1]
        rows.append(
            {
                "size": size,
                "draws": draws,
                "found": len(delays),
                "median_delay": statistics.median(delays) if delays else None,
                "delays": delays,
            }
        )
    return rows


def _line(r: Row) -> str:
    return (
        f"shift +{r['size']!s:<4} found {r['found']!s:>3}/{r['draws']}"
        f"  median delay {r['median_delay']}  delays {r['delays']}"
    )


def main(argv: list[str] | None = None) -> int:
    return draws_cli(argv, __doc__.splitlines()[0], run, _line)


if __name__ == "__main__":
    raise SystemExit(main())
