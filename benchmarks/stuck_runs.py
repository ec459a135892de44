"""Anomaly-free series that sit at one value most of the time: what pages on them.

``python -m benchmarks.stuck_runs [--draws 8] [--json]``

Five shapes, two weeks each at 1-minute and at 5-minute steps, ``--draws`` series of
each (seeds 1..N), all without anomalies:

- ``errors200``, ``errors1000``, ``errors3000``: an error counter at zero but for blips
  of 1-3 errors lasting 1-3 readings, coming at random about every 200, 1,000 or 3,000
  readings;
- ``status``: a health flag at 1 but for a lone 0 about every 1,500 readings;
- ``setpoint``: a set point that moves by 0.5-1.5 at random, about every 1,500 readings;
- ``flicker20``, ``flicker200``: a sensor read to 0.1 that sits at 35.6 and reads one
  unit (0.1) above or below it about every 20 or 200 readings.

For each shape and step it counts, after NAB's probation (the first 15 %), the stuck
episodes opened, the share of points inside one, and the value episodes opened (with
the default configuration). A stuck episode on these is false by construction: the
series is at its usual value. Value episodes are the blips themselves: blips of 2 or 3
errors, which the detector pages when they are rarer than about four a day (see
``SPIKE_PER_DAY``); a move of one unit (an error, the flag's 0, a flicker) is within the
reading's resolution and does not page (see ``UNIT_WITHIN``).

>>> rows = run(1, shapes=("status",), steps=(300.0,), days=3)
>>> [(r["shape"], r["step"], r["series"]) for r in rows]
[('status', 300.0, 1)]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from benchmarks.noise_shapes import Row, draws_cli
from stream_app.core import EngineConfig, SeriesProcessor

SHAPES = ("errors200", "errors1000", "errors3000", "status", "setpoint", "flicker20", "flicker200")
STEPS = (60.0, 300.0)
START = 1_700_000_000.0
_BLIP_EVERY = {"errors200": 200.0, "errors1000": 1000.0, "errors3000": 3000.0}
_FLICKER_EVERY = {"flicker20": 20.0, "flicker200": 200.0}


def series(shape: str, seed: int, n: int) -> npt.NDArray[np.float64]:
    """One anomaly-free series of ``n`` readings."""
    rng = np.random.default_rng(seed)
    if shape in _BLIP_EVERY:
        values = np.zeros(n)
        for i in np.nonzero(rng.random(n) < 1.0 / _BLIP_EVERY[shape])[0]:
            k = int(rng.integers(1, 4))
            values[i : i + k] = float(rng.integers(1, 4))
        return values
    if shape == "status":
        values = np.ones(n)
        values[rng.random(n) < 1.0 / 1500.0] = 0.0
        return values
    if shape == "setpoint":
        values = np.empty(n)
        level, at = 20.0, 0
        while at < n:
            length = int(rng.exponential(1500.0)) + 1
            values[at : at + length] = level
            level = round(level + float(rng.choice([-1.0, 1.0])) * int(rng.integers(1, 4)) * 0.5, 1)
            at += length
        return values
    if shape in _FLICKER_EVERY:
        off = (rng.random(n) < 1.0 / _FLICKER_EVERY[shape]) * rng.choice([-1.0, 1.0], n)
        return np.asarray(np.round(356.0 + off) / 10.0, np.float64)
    raise ValueError(f"unknown shape {shape!r}")


def run(
    draws: int,
    shapes: tuple[str, ...] = SHAPES,
    steps: tuple[float, ...] = STEPS,
    days: float = 14.0,
) -> list[Row]:
    """One row per shape and step: episodes opened after probation, summed over draws."""
    config = EngineConfig.default()
    rows = []
    for shape in shapes:
        for step in steps:
            n = int(days * 86400.0 / step)
            probation = int(0.15 * n)
            stuck = value = inside = 0
            for seed in range(1, draws + 1):
                proc = SeriesProcessor.create(f"{shape}-{seed}", "value", config)
                for i, v in enumerate(series(shape, seed, n).tolist()):
                    _, events = proc.process(START + i * step, v)
                    if i < probation:
                        continue
                    for e in events:
                        if e.event == "opened":
                            stuck += e.kind == "stuck"
                            value += e.kind == "value"
                    inside += bool(proc.stuck.episode)
            scored = draws * (n - probation)
            rows.append(
                {
                    "shape": shape,
                    "step": step,
                    "series": draws,
                    "stuck_episodes": stuck,
                    "stuck_share": round(inside / scored, 4),
                    "value_episodes": value,
                }
            )
    return rows


def _line(r: Row) -> str:
    return (
        f"{r['shape']!s:11s} {r['step']:5.0f} s  stuck episodes {r['stuck_episodes']:3d}"
        f"  share in them {r['stuck_share']:.4f}  value episodes {r['value_episodes']:3d}"
    )


def _report(rows: list[Row]) -> str:
    stuck = sum(int(str(r["stuck_episodes"])) for r in rows)
    value = sum(int(str(r["value_episodes"])) for r in rows)
    lines = [_line(r) for r in rows]
    lines.append(f"all: stuck episodes {stuck}, value episodes {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return draws_cli(argv, __doc__.splitlines()[0], run, _line, _report, draws=8)


if __name__ == "__main__":
    raise SystemExit(main())
