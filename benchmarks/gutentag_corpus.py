"""A labelled corpus from GutenTAG (``timeeval-gutentag``), a generator nobody here tuned on.

The development families (``stream_app.offline.families``) and the kinds matrix are our
own generators, and every detector change of issue 11 was judged on them. This corpus
is the independent check: GutenTAG's own base oscillations (sine, ECG, square,
sawtooth, random walk, cylinder-bell-funnel, Dirichlet) with its own anomaly kinds
(mean, amplitude, extremum, frequency, pattern, pattern shift, platform, trend,
variance), one anomaly a series, plus anomaly-free series of each base. Series are
14 days at 5-minute steps (4,032 points, the length of many NAB series), periodic bases
at one period a day (asked for: GutenTAG's ECG comes out at about 311 points, 25.9 hours,
its peaks two hours later each day, so the ECG family is a cycle off the clock, which no
daily profile learns), and each draw starts on a different weekday and hour.

GutenTAG pins numpy and scipy below the versions tsguard runs on, so it is not a
dependency: ``make gutentag`` installs it in its own virtualenv (``.venv-gutentag``),
runs this module there to write ``timestamp,value,label`` CSVs (one folder per base,
``free_<base>`` for the anomaly-free ones), and then scores them with
``tsguard evaluate --labelling nab`` (NAB's window rule around each labelled anomaly).

Some base and kind pairs GutenTAG refuses or fails on (a frequency change of a random
walk, a pattern shift of CBF); they are skipped and counted on stderr. The CSVs are
build output: never commit them.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import sys
import warnings
from pathlib import Path
from typing import Any

POINTS = 4032
STEP_S = 300
# GutenTAG's frequencies are periods per 100 points: one a day at 5-minute steps
DAILY = 100.0 / 288.0
FIRST = dt.datetime(2018, 6, 18, tzinfo=dt.UTC)  # a Monday

_NOISE = {"amplitude": 10.0, "variance": 0.05, "offset": 50.0}
BASES: dict[str, dict[str, Any]] = {
    "sine": {"kind": "sine", "frequency": DAILY, **_NOISE},
    "ecg": {"kind": "ecg", "frequency": DAILY, **_NOISE, "variance": 0.03},
    "square": {"kind": "square", "frequency": DAILY, "duty": 0.4, **_NOISE},
    "sawtooth": {"kind": "sawtooth", "frequency": DAILY, "width": 0.7, **_NOISE},
    "random_walk": {"kind": "random-walk", "smoothing": 0.01, **_NOISE},
    "cbf": {
        "kind": "cylinder-bell-funnel",
        "avg-pattern-length": 100,
        "variance-pattern-length": 0.2,
        "variance-amplitude": 2.0,
        **_NOISE,
    },
    "dirichlet": {"kind": "dirichlet", "frequency": DAILY, **_NOISE, "variance": 0.03},
}
# each draw takes the next variant of its kind; sizes are absolute (noise about 0.5)
KINDS: dict[str, list[dict[str, Any]]] = {
    "mean": [{"kind": "mean", "offset": 2.0}, {"kind": "mean", "offset": -1.5}],
    "amplitude": [
        {"kind": "amplitude", "amplitude_factor": 2.0},
        {"kind": "amplitude", "amplitude_factor": 0.5},
    ],
    "extremum": [
        {"kind": "extremum", "min": False, "local": False},
        {"kind": "extremum", "min": True, "local": True, "context_window": 50},
    ],
    "frequency": [
        {"kind": "frequency", "frequency_factor": 2.0},
        {"kind": "frequency", "frequency_factor": 0.5},
    ],
    "pattern": [
        {
            "kind": "pattern",
            "sinusoid_k": 10.0,
            "cbf_pattern_factor": 2.0,
            "square_duty": 0.8,
            "sawtooth_width": 0.2,
        }
    ],
    "pattern_shift": [{"kind": "pattern-shift", "shift_by": 20, "transition_window": 20}],
    "platform": [{"kind": "platform", "value": 0.0}],
    "trend": [{"kind": "trend", "oscillation": {"kind": "polynomial", "polynomial": [0.0, 0.2]}}],
    "variance": [{"kind": "variance", "variance": 2.0}],
}
FREE_DRAWS = 2


def _start(draw: int) -> dt.datetime:
    """Draw ``draw`` starts two days and five hours after the one before."""
    return FIRST + dt.timedelta(days=2 * draw, hours=5 * draw)


def _config(name: str, base: str, anomaly: dict[str, Any] | None) -> dict[str, Any]:
    series: dict[str, Any] = {
        "name": name,
        "length": POINTS,
        "semi-supervised": False,
        "supervised": False,
        "base-oscillations": [BASES[base]],
        "anomalies": [] if anomaly is None else [anomaly],
    }
    return {"timeseries": [series]}


def _generate(config: dict[str, Any], seed: int) -> tuple[list[float], list[int]]:
    """One series' values and point labels, as GutenTAG generates them."""
    from gutenTAG import GutenTAG
    from gutenTAG.config.validator import GutenTAGParseError

    try:
        made = GutenTAG.from_dict(config, seed=seed).generate(return_timeseries=True)
    except GutenTAGParseError as exc:  # a BaseException: turn it into an ordinary error
        raise ValueError(str(exc)) from None
    frame = made[0].timeseries
    return [float(v) for v in frame["value-0"]], [int(v) for v in frame["is_anomaly"]]


def _write(path: Path, start: dt.datetime, values: list[float], labels: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["timestamp", "value", "label"])
        for i, (value, label) in enumerate(zip(values, labels, strict=True)):
            stamp = start + dt.timedelta(seconds=STEP_S * i)
            out.writerow([stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), repr(value), label])


def build(out: Path, draws: int) -> tuple[int, list[str]]:
    """Write the corpus under ``out``; the number of series written and those skipped."""
    written, skipped = 0, []
    jobs: list[tuple[str, str, int, dict[str, Any] | None]] = []
    for base, kind in itertools.product(BASES, KINDS):
        for draw in range(draws):
            variants = KINDS[kind]
            # 45, 60, 75 ... points: 3.75, 5, 6.25 ... hours (GutenTAG's trend needs a
            # multiple of 5 points)
            size = 1 if kind == "extremum" else 45 + 15 * (draw % 6)
            anomaly: dict[str, Any] = {
                "position": ("middle", "end")[draw % 2],
                "length": size,
                "channel": 0,
                "kinds": [variants[draw % len(variants)]],
            }
            jobs.append((base, f"{kind}-{draw}", draw, anomaly))
    for base in BASES:
        jobs.extend((f"free_{base}", f"free-{draw}", draw, None) for draw in range(FREE_DRAWS))
    for folder, name, draw, asked in jobs:
        base = folder.removeprefix("free_")
        try:
            values, labels = _generate(_config(f"{base}-{name}", base, asked), 100 + draw)
        except Exception as exc:  # GutenTAG refuses some pairs, each its own way
            skipped.append(f"{folder}/{name}: {type(exc).__name__}: {str(exc)[:80]}")
            continue
        if asked is not None and not any(labels):
            skipped.append(f"{folder}/{name}: no point labelled")
            continue
        _write(out / folder / f"{name}.csv", _start(draw), values, labels)
        written += 1
    return written, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the CSVs (build output)")
    parser.add_argument("--draws", type=int, default=3, help="series per base and kind")
    args = parser.parse_args(argv)
    try:
        import gutenTAG  # noqa: F401
    except ImportError:
        print(
            "error: GutenTAG is not installed in this Python; `make gutentag` installs it in "
            ".venv-gutentag and runs this there",
            file=sys.stderr,
        )
        return 2
    warnings.filterwarnings("ignore")
    written, skipped = build(args.out, args.draws)
    for line in skipped:
        print("skipped", line, file=sys.stderr)
    print(f"{written} series written to {args.out}, {len(skipped)} skipped", file=sys.stderr)
    return 0 if written else 1


if __name__ == "__main__":
    raise SystemExit(main())
