"""The benchmark suite's runner and its comparison of two result folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import suite


def _family(onsets: float | None, f1: float | None, episodes: int) -> dict[str, Any]:
    return {"nab_onsets": onsets, "f1": f1, "false_per_10k": None, "episodes": episodes}


def _quality(counts_onsets: float, free_false: float) -> dict[str, Any]:
    overall = {
        "nab_onsets": 70.0,
        "nab_onsets_reference": 65.0,
        "episodes": 700,
        "f1": 0.6,
        "false_per_10k_free": free_false,
        "outside_share": 0.001,
    }
    return {
        "overall": {"tsguard": overall},
        "families": {
            "gen/counts": {
                "tsguard": _family(counts_onsets, 0.7, 30),
                "zscore": _family(40.0, 0.6, 9),
                "river_hst": _family(20.0, 0.5, 9),
            },
            "gen/free_counts": {
                "tsguard": {**_family(None, None, 30), "false_per_10k": free_false},
                "zscore": _family(None, None, 4),
                "river_hst": _family(None, None, 40),
            },
        },
    }


def _write(folder: Path, name: str, report: object) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(report))


def test_compare_shows_the_headlines_and_only_what_changed(tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    _write(before, "dev", _quality(75.0, 14.6))
    _write(after, "dev", _quality(30.0, 14.6))  # counts now behind the z-score
    rows = [
        {
            "base": "spiky",
            "kind": "spike",
            "size": 0.4,
            "nab_onsets": 0.0,
            "zscore_nab_onsets": 16.3,
        },
        {
            "base": "spiky",
            "kind": "spike",
            "size": 1.0,
            "nab_onsets": 10.0,
            "zscore_nab_onsets": 0.0,
        },
    ]
    _write(before, "kinds", rows)
    _write(after, "kinds", [rows[0], {**rows[1], "nab_onsets": 20.0}])
    probes = {"seeds": 3, "probes": {"noise": {"found": 0, "false": 2, "anomaly": False}}}
    _write(before, "probes", probes)
    _write(after, "probes", probes)
    _write(after, "gutentag", _quality(1.0, 1.0))  # only one side: skipped
    shape = {"shape": "latency", "step_s": 300.0, "false_episodes": 5}
    _write(before, "noise_shapes", [shape])  # a folder from before the early count
    _write(after, "noise_shapes", [{**shape, "false_early": 2}])
    lines: list[str] = []
    assert suite.compare(before, after, lines.append) == 0
    text = "\n".join(lines)
    assert "families beating both baselines 1/1" in text
    assert "families beating both baselines 0/1" in text
    assert "gen/counts: nab_onsets 75, f1 0.7, episodes 30 -> nab_onsets 30" in text
    assert "gen/free_counts" not in text  # the same before and after
    assert "spiky spike 1.0: nab_onsets 10" in text and "-> nab_onsets 20" in text
    assert "spiky spike 0.4" not in text
    assert "mean onsets 5.00, behind the z-score 1" in text
    assert "mean onsets 10.00, behind the z-score 1" in text
    assert "false onsets after probation: 2 -> 2" in text
    assert "false episodes 5\n" in text and "false episodes 5 (early 2)" in text
    assert "gutentag" not in text


def test_run_keeps_each_report_and_names_what_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        suite,
        "RUNS",
        {
            "prints": ["-c", "import json, os; print(json.dumps([{'cwd': os.getcwd()}]))"],
            "writes": ["-c", "import sys; open(sys.argv[1], 'w').write('{}')", "{json}"],
            "fails": ["-c", "import sys; sys.exit('it broke')"],
        },
    )
    out = tmp_path / "out"
    code = suite.run(tmp_path, out, tmp_path, tmp_path / "none", list(suite.RUNS), jobs=2)
    assert code == 1
    assert json.loads((out / "prints.json").read_text()) == [{"cwd": str(tmp_path)}]
    assert json.loads((out / "writes.json").read_text()) == {}
    assert "it broke" in (out / "fails.err").read_text()
    assert not (out / "fails.json").exists()
    assert json.loads((out / "suite.json").read_text())["fails"]["returncode"] == 1
    assert "failed (see OUT/<name>.err): fails" in capsys.readouterr().err


def test_unknown_runs_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        suite.main(["run", "/tmp/unused", "--only", "dev,nope"])
    assert "unknown runs: nope" in capsys.readouterr().err


def test_every_quality_run_is_a_run_of_quality_py_that_writes_its_report() -> None:
    # compare reads the runs QUALITY_RUNS names as quality reports (families, overall):
    # a name there that no run has, or a run of another harness, would compare nothing
    quality = set(suite.QUALITY_RUNS) - {"gutentag"}  # `tsguard evaluate --json` prints one
    assert quality <= set(suite.RUNS)
    for name in quality:
        argv = suite.RUNS[name]
        assert argv[0] == "benchmarks/quality.py" and "{json}" in argv, name
    steps = {float(a[a.index("--step") + 1]) for a in suite.RUNS.values() if "--step" in a}
    assert steps == {1800.0, 3600.0}  # the 5-minute grid is the default
