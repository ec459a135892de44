"""Issue 11's detection benchmarks as one suite into a folder, and two such folders compared.

Every detector change is judged on the same dozen runs: the development families
(``benchmarks/quality.py``: the generated families with the real development set, with
its windows and with NAB's window rule; its 1-minute series as 5-minute means; two other
draws; half-hourly and hourly series;
60 days at 5 minutes; read at irregular times, and jittered with points and hours lost),
the probes, the kinds matrix, the anomaly-free noise shapes, spikes with level shifts,
long bursty counts, runs of identical values and, where it was built (``make gutentag``),
the GutenTAG corpus. ``run`` starts each as a subprocess of this interpreter, from the root of
``--checkout`` (this one by default; another worktree, to score its code) and with it
first on ``PYTHONPATH``, ``--jobs`` at a time, and keeps what each prints (JSON) in
``OUT/<name>.json``; ``compare`` prints, for two such folders, the headline of every run
and each line that differs::

    python -m benchmarks.suite run OUT [--checkout DIR] [--jobs 2] [--only dev,kinds]
        [--dev ../shared/datasets/anomaly-dev] [--gutentag build/gutentag]
    python -m benchmarks.suite compare BEFORE AFTER

About 4-8 minutes on two cores. A run that failed leaves ``OUT/<name>.err`` and is named
at the end; ``compare`` skips what either folder lacks.

>>> sorted(RUNS)[:3]
['dev', 'dev_5min', 'events']
>>> _row_key({"base": "counts", "kind": "spike", "size": 0.4, "nab_onsets": 0.19})
('counts', 'spike', 0.4)
>>> _row_key({"shape": "errors200", "step": 60, "stuck_episodes": 1})
('errors200', 60)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from stream_app.offline.evaluate import DETECTORS

ROOT = Path(__file__).resolve().parents[1]
_QUALITY = ["benchmarks/quality.py"]
_GENERATED = ["--dev", "/nonexistent"]  # the generated families alone
_HALF_HOURLY = ["--step", "1800", "--points", "4032"]  # 12 weeks
_SIXTY_DAYS = ["--points", "17280"]  # at 5 minutes
# name: the arguments after the interpreter; "{dev}", "{json}" and "{gutentag}" are filled
# in. A run with "{json}" writes its report there; the others print it as JSON.
RUNS: dict[str, list[str]] = {
    # the longest run first, so that the others share the cores with it: 60 days, where
    # the budget period has grown threefold (many real series are 10,000-22,000 points)
    "sixty_days": [*_QUALITY, *_GENERATED, *_SIXTY_DAYS, "--json", "{json}"],
    "dev": [*_QUALITY, "--dev", "{dev}", "--json", "{json}"],
    "nab_rule": [*_QUALITY, "--dev", "{dev}", "--labelling", "nab", "--json", "{json}"],
    # the development set's 1-minute real series as 5-minute means: the step of most NAB
    # series, at which real data had no run (the spike lines differ below half an hour)
    "dev_5min": [*_QUALITY, "--dev", "{dev}", "--coarsen", "300", "--json", "{json}"],
    "seed11": [*_QUALITY, *_GENERATED, "--seed", "11", "--json", "{json}"],
    "seed23": [*_QUALITY, *_GENERATED, "--seed", "23", "--json", "{json}"],
    # 30 minutes: one reading per daily bin, two per hourly weekly bin (the steps between 5
    # minutes and an hour had no run; a taxi-demand metric comes at this step)
    "half_hourly": [*_QUALITY, *_GENERATED, *_HALF_HOURLY, "--json", "{json}"],
    "hourly": [*_QUALITY, *_GENERATED, "--step", "3600", "--points", "2016", "--json", "{json}"],
    "events": [*_QUALITY, *_GENERATED, "--sampling", "events", "--json", "{json}"],
    "mixed": [*_QUALITY, *_GENERATED, "--sampling", "mixed", "--json", "{json}"],
    "probes": ["-m", "benchmarks.probes", "--seeds", "3", "--json"],
    "kinds": ["-m", "benchmarks.kinds_matrix", "--json"],
    "noise_shapes": ["-m", "benchmarks.noise_shapes", "--draws", "8", "--json"],
    "spike_shifts": ["-m", "benchmarks.spike_shifts", "--draws", "10", "--json"],
    "long_counts": ["-m", "benchmarks.long_counts", "--draws", "6", "--json"],
    "stuck_runs": ["-m", "benchmarks.stuck_runs", "--json"],
    "gutentag": ["-m", "stream_app.cli", "evaluate", "{gutentag}", "--labelling", "nab", "--json"],
}
QUALITY_RUNS = (
    "sixty_days",
    "dev",
    "nab_rule",
    "dev_5min",
    "seed11",
    "seed23",
    "half_hourly",
    "hourly",
    "events",
    "mixed",
    "gutentag",
)
# besides its text fields, what names a row of a benchmark drawn ``--draws`` times
_ROW_NAMES = ("size", "step", "step_s", "points")
BASELINES = tuple(d for d in DETECTORS if d != "tsguard")  # what every report scores too

Report = dict[str, Any]


def _argv(name: str, out: Path, dev: Path, gutentag: Path) -> list[str]:
    fill = {"{dev}": str(dev), "{json}": str(out / f"{name}.json"), "{gutentag}": str(gutentag)}
    return [sys.executable, *(fill.get(a, a) for a in RUNS[name])]


def _run_one(
    name: str, checkout: Path, out: Path, dev: Path, gutentag: Path
) -> tuple[str, int, float]:
    argv = _argv(name, out, dev, gutentag)
    path = os.pathsep.join(p for p in (str(checkout), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode:
        (out / f"{name}.err").write_text(done.stderr)
    elif "{json}" not in RUNS[name]:
        (out / f"{name}.json").write_text(done.stdout)
    return name, done.returncode, seconds


def run(checkout: Path, out: Path, dev: Path, gutentag: Path, names: list[str], jobs: int) -> int:
    """Run ``names`` on ``checkout``'s code into ``out``; 1 if any failed."""
    out.mkdir(parents=True, exist_ok=True)
    if "gutentag" in names and not gutentag.is_dir():
        print(f"no GutenTAG corpus in {gutentag} (make gutentag): skipped", file=sys.stderr)
        names = [n for n in names if n != "gutentag"]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda n: _run_one(n, checkout, out, dev, gutentag), names))
    failed = [name for name, code, _ in results if code]
    for name, code, seconds in results:
        print(f"{name:14s} {'failed' if code else 'ok':6s} {seconds:6.0f} s")
    (out / "suite.json").write_text(
        json.dumps({n: {"returncode": c, "seconds": round(s, 1)} for n, c, s in results})
    )
    if failed:
        print("failed (see OUT/<name>.err):", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


def _load(folder: Path, name: str) -> Any:
    path = folder / f"{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _passing(report: Report) -> tuple[int, int]:
    """Families where tsguard beats both baselines on onsets and F1, of those with windows."""
    fams = [v for v in report["families"].values() if v["tsguard"].get("nab_onsets") is not None]
    won = sum(
        all(
            (v["tsguard"]["nab_onsets"] or 0.0) > (v[b]["nab_onsets"] or 0.0)
            and (v["tsguard"]["f1"] or 0.0) > (v[b]["f1"] or 0.0)
            for b in BASELINES
        )
        for v in fams
    )
    return won, len(fams)


def _quality_headline(report: Report) -> str:
    t = report["overall"]["tsguard"]
    won, of = _passing(report)
    onsets = t.get("nab_standard_onsets", t.get("nab_onsets"))
    ref = t.get("nab_standard_onsets_reference", t.get("nab_onsets_reference"))
    f1 = t.get("episode_f1", t.get("f1"))
    return (
        f"onsets {onsets:.2f} (reference {ref:.2f})  episodes {t['episodes']}  F1 {f1:.3f}  "
        f"false/10k free {t.get('false_per_10k_free')}  outside {t['outside_share']:.4f}  "
        f"families beating both baselines {won}/{of}"
    )


def _family_line(v: Report) -> str:
    t = v["tsguard"]
    parts = [
        f"{k} {t[k]:.4g}" for k in ("nab_onsets", "f1", "false_per_10k") if t.get(k) is not None
    ]
    return ", ".join(parts) + f", episodes {t['episodes']}"


def _row_key(row: Report) -> tuple[Any, ...]:
    """A row's identity: its text fields and its size or step, in their order."""
    return tuple(v for k, v in row.items() if isinstance(v, str) or k in _ROW_NAMES)


def _numbers(row: Report) -> str:
    return ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in row.items()
        if not isinstance(v, str) and k not in _ROW_NAMES
    )


def _rows_headline(rows: list[Report]) -> str:
    onsets = [r["nab_onsets"] for r in rows if isinstance(r.get("nab_onsets"), float)]
    false = sum(int(r.get("false_episodes", 0)) for r in rows)
    behind = sum(
        1 for r in rows if float(r.get("zscore_nab_onsets", -1.0)) > float(r.get("nab_onsets", 0.0))
    )
    parts = [f"{len(rows)} rows"]
    if onsets:
        parts.append(f"mean onsets {sum(onsets) / len(onsets):.2f}, behind the z-score {behind}")
    if any("false_episodes" in r for r in rows):
        early = sum(int(r.get("false_early", 0)) for r in rows)
        parts.append(f"false episodes {false}" + (f" (early {early})" if early else ""))
    return "; ".join(parts)


def _compare_quality(a: Report, b: Report, say: Callable[[str], None]) -> None:
    say(f"  before: {_quality_headline(a)}")
    say(f"  after:  {_quality_headline(b)}")
    for family in sorted(set(a["families"]) & set(b["families"])):
        before, after = _family_line(a["families"][family]), _family_line(b["families"][family])
        if before != after:
            say(f"    {family}: {before} -> {after}")


def _compare_rows(a: list[Report], b: list[Report], say: Callable[[str], None]) -> None:
    say(f"  before: {_rows_headline(a)}")
    say(f"  after:  {_rows_headline(b)}")
    old = {_row_key(r): r for r in a}
    for row in b:
        was = old.get(_row_key(row))
        if was is not None and _numbers(was) != _numbers(row):
            label = " ".join(str(k) for k in _row_key(row))
            say(f"    {label}: {_numbers(was)} -> {_numbers(row)}")


def _compare_probes(a: Report, b: Report, say: Callable[[str], None]) -> None:
    total_a = sum(p["false"] for p in a["probes"].values())
    total_b = sum(p["false"] for p in b["probes"].values())
    say(f"  false onsets after probation: {total_a} -> {total_b}")
    for name, row in b["probes"].items():
        was = a["probes"].get(name)
        if was is not None and was != row:
            say(
                f"    {name}: found {was['found']} -> {row['found']}, false {was['false']} -> {row['false']}"
            )


def compare(before: Path, after: Path, say: Callable[[str], None] = print) -> int:
    """Print the headline of every run both folders have, and the lines that differ."""
    for name in RUNS:
        a, b = _load(before, name), _load(after, name)
        if a is None or b is None:
            continue
        say(name)
        if name in QUALITY_RUNS:
            _compare_quality(a, b, say)
        elif name == "probes":
            _compare_probes(a, b, say)
        else:
            _compare_rows(a, b, say)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the suite into a folder")
    r.add_argument("out", type=Path)
    r.add_argument("--checkout", type=Path, default=ROOT, help="whose code to score")
    r.add_argument("--dev", type=Path, default=ROOT.parent / "shared/datasets/anomaly-dev")
    r.add_argument("--gutentag", type=Path, default=ROOT / "build/gutentag")
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--only", default="", help="comma-separated run names (default: all)")
    c = sub.add_parser("compare", help="compare two folders the suite ran into")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "compare":
        return compare(args.before, args.after)
    names = [n for n in args.only.split(",") if n] or list(RUNS)
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        parser.error(f"unknown runs: {', '.join(unknown)} (known: {', '.join(RUNS)})")
    out = args.out.resolve()
    dev, gutentag = args.dev.resolve(), args.gutentag.resolve()
    return run(args.checkout.resolve(), out, dev, gutentag, names, args.jobs)


if __name__ == "__main__":
    raise SystemExit(main())
