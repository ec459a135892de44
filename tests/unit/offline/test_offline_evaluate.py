"""``tsguard evaluate`` and ``tsguard bench detectors`` end to end on generated data."""

from __future__ import annotations

import json
import math
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pytest
from typer.testing import CliRunner

from stream_app.cli import app
from stream_app.offline.evaluate import load_dataset

OVERALL_KEYS = {
    "nab_standard",
    "nab_low_fp",
    "nab_low_fn",
    "episode_f1",
    "episode_precision",
    "episode_recall",
    "mean_delay_points",
}
START = 1_700_000_000.0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _labelled_csv(path: Path, n: int, spikes: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["timestamp,value,label"]
    for i in range(n):
        anomalous = any(s <= i < s + 5 for s in spikes)
        value = 20.0 + 4.0 * math.sin(i / 10.0) + rng.normal(0.0, 0.3) + (15.0 if anomalous else 0)
        rows.append(f"{_iso(START + 60.0 * i)},{value:.3f},{int(anomalous)}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _dataset(root: Path) -> Path:
    _labelled_csv(root / "group" / "a.csv", 600, [300, 450], seed=1)
    _labelled_csv(root / "group" / "b.csv", 500, [350], seed=2)
    _labelled_csv(root / "c.csv", 400, [], seed=3)
    (root / "index.csv").write_text("path,points\nc.csv,400\n", encoding="utf-8")
    windows = {
        "group/a.csv": [
            [_iso(START + 60 * 290), _iso(START + 60 * 320)],
            [_iso(START + 60 * 445), _iso(START + 60 * 460)],
        ]
    }
    (root / "windows.json").write_text(json.dumps(windows), encoding="utf-8")
    return root


def test_windows_come_from_windows_json_or_from_labels(tmp_path: Path) -> None:
    series, skipped = load_dataset(_dataset(tmp_path))
    by_name = {s.name: s for s in series}
    assert [p.name for p in skipped] == ["index.csv"]
    assert by_name["group/a.csv"].windows == [(290, 320), (445, 460)]
    # NAB rule: 10 % of 500 points for one anomaly, centred on the labelled run
    assert by_name["group/b.csv"].windows == [(327, 377)]
    assert by_name["c.csv"].windows == []


def test_a_folder_finds_csvs_whatever_the_case_of_their_suffix(tmp_path: Path) -> None:
    """``group/D.CSV`` was left out of the evaluation without a word."""
    root = _dataset(tmp_path)
    _labelled_csv(root / "group" / "D.CSV", 300, [200], seed=4)
    series, skipped = load_dataset(root)
    assert [s.name for s in series] == ["c.csv", "group/D.CSV", "group/a.csv", "group/b.csv"]
    assert [p.name for p in skipped] == ["index.csv"]
    assert series[1].windows == [(187, 217)]  # NAB's rule on its labels


def test_windows_json_takes_epoch_seconds_too(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    windows = {"group/a.csv": [[START + 60 * 290, _iso(START + 60 * 320)]]}
    (root / "windows.json").write_text(json.dumps(windows), encoding="utf-8")
    by_name = {s.name: s for s in load_dataset(root)[0]}
    assert by_name["group/a.csv"].windows == [(290, 320)]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not JSON"),
        ("[[1, 2]]", "expected an object"),
        ('{"group/a.csv": "2023-11-14"}', "group/a.csv: expected a list"),
        ('{"group/a.csv": [1700000000, 1700003600]}', "window 1 is not a [start, end] pair"),
        ('{"group/a.csv": [[1700000000, 1700003600, 5]]}', "window 1 is not a [start, end] pair"),
        ('{"group/a.csv": [["soon", "later"]]}', "group/a.csv: window 1: Invalid isoformat"),
        ('{"group/a.csv": [[1700000000, null]]}', "window 1: Invalid isoformat"),
        ('{"c.csv": [], "group/a.csv": [[1700003600, 1700000000]]}', "window 1 ends before"),
    ],
)
def test_a_malformed_windows_json_is_named_not_a_crash(
    tmp_path: Path, text: str, says: str
) -> None:
    root = _dataset(tmp_path)
    (root / "windows.json").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["evaluate", str(root)])
    assert result.exit_code == 2, result.output
    assert f"error: {root / 'windows.json'}: " in result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.output


def _nab_layout(root: Path) -> tuple[Path, Path]:
    """The data set of :func:`_dataset` as NAB keeps its own: ``timestamp,value`` files
    in ``data/`` and every series' windows (an empty list: none) in a file apart."""
    labelled = _dataset(root / "labelled")
    data = root / "nab" / "data"
    for path in labelled.rglob("*.csv"):
        if path.name == "index.csv":
            continue
        target = data / path.relative_to(labelled)
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text("utf-8").splitlines()
        target.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n", "utf-8")
    (data / "notes.csv").write_text("path,comment\nc.csv,none\n", encoding="utf-8")
    windows = json.loads((labelled / "windows.json").read_text("utf-8"))
    windows |= {"group/b.csv": [[_iso(START + 60 * 327), _iso(START + 60 * 377)]], "c.csv": []}
    labels = root / "nab" / "labels" / "combined_windows.json"
    labels.parent.mkdir(parents=True)
    labels.write_text(json.dumps(windows), encoding="utf-8")
    return data, labels


def test_a_windows_file_apart_labels_timestamp_value_files(tmp_path: Path) -> None:
    data, labels = _nab_layout(tmp_path)
    series, skipped = load_dataset(data, windows_file=labels)
    assert [p.name for p in skipped] == ["notes.csv"]
    by_name = {s.name: s for s in series}
    assert by_name["group/a.csv"].windows == [(290, 320), (445, 460)]
    assert by_name["group/b.csv"].windows == [(327, 377)]
    assert by_name["c.csv"].windows == []
    # the same series, labelled in their files, score the same
    apart = CliRunner().invoke(app, ["evaluate", str(data), "--windows", str(labels), "--json"])
    assert apart.exit_code == 0, apart.output
    inline = CliRunner().invoke(app, ["evaluate", str(tmp_path / "labelled"), "--json"])
    ours, theirs = json.loads(apart.stdout), json.loads(inline.stdout)
    assert ours["series"].keys() == theirs["series"].keys()
    for key in ("nab_standard_onsets", "episode_f1", "episodes", "nab_standard"):
        assert ours["overall"]["tsguard"][key] == theirs["overall"]["tsguard"][key], key
    assert "not in the windows file: notes.csv" in " ".join(apart.stderr.split())


@pytest.mark.parametrize("apart", [False, True], ids=["labels", "windows-file"])
def test_a_list_of_skipped_csvs_cut_short_says_how_many_more(tmp_path: Path, apart: bool) -> None:
    """It said "skipped 6 CSV(s)" and named 5, with no sign of the sixth."""
    if apart:
        data, labels = _nab_layout(tmp_path)
        args, why = ["--windows", str(labels)], "not in the windows file"
    else:
        data, args, why = _dataset(tmp_path / "data"), [], "without timestamp,value,label"
    for k in range(5):
        (data / f"notes{k}.csv").write_text("path,comment\nc.csv,none\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["evaluate", str(data), "--json", *args])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert f"skipped 6 CSV(s) {why}: " in said
    assert said.count(".csv, ") == 4 and " and 1 more" in said


def test_a_window_beside_its_series_is_said(tmp_path: Path) -> None:
    """A window that covers none of its series' points (another year, another time zone)
    would make a labelled series look anomaly-free without a word."""
    data, labels = _nab_layout(tmp_path)
    windows = json.loads(labels.read_text("utf-8"))
    windows["group/b.csv"].append([_iso(START - 86400 * 365), _iso(START - 86400 * 364)])
    labels.write_text(json.dumps(windows), encoding="utf-8")
    notes: list[str] = []
    series, _ = load_dataset(data, windows_file=labels, on_note=notes.append)
    assert notes == ["group/b.csv: 1 of its 2 window(s) cover none of its points"]
    assert {s.name: s.windows for s in series}["group/b.csv"] == [(327, 377)]
    result = CliRunner().invoke(app, ["evaluate", str(data), "--windows", str(labels)])
    assert result.exit_code == 0, result.output
    assert notes[0] in " ".join(result.stderr.split())


def test_windows_keys_that_name_no_csv_are_said(tmp_path: Path) -> None:
    """A key in another case or without its subfolder left the series labelled by NAB's
    rule, and a CSV missing from the folder left its windows out, without a word."""
    root = _dataset(tmp_path)
    windows = {"group/A.csv": [[_iso(START + 60 * 100), _iso(START + 60 * 120)]], "b.csv": []}
    (root / "windows.json").write_text(json.dumps(windows), encoding="utf-8")
    notes: list[str] = []
    load_dataset(root, on_note=notes.append)
    assert notes == [
        f"{root / 'windows.json'}: 2 of its 2 entries name no CSV under {root} "
        "(keys are paths under that folder): 'group/A.csv', 'b.csv'"
    ]
    result = CliRunner().invoke(app, ["evaluate", str(root)])
    assert result.exit_code == 0, result.output
    assert notes[0] in " ".join(result.stderr.split())
    # a --windows file: only the key that names nothing is said
    data, labels = _nab_layout(tmp_path / "apart")
    keyed = json.loads(labels.read_text("utf-8")) | {"gone.csv": []}
    labels.write_text(json.dumps(keyed), encoding="utf-8")
    notes.clear()
    load_dataset(data, windows_file=labels, on_note=notes.append)
    assert notes == [
        f"{labels}: 1 of its 4 entries name no CSV under {data} "
        "(keys are paths under that folder): 'gone.csv'"
    ]
    # one file given alone: the other keys name its neighbours, nothing to say
    notes.clear()
    load_dataset(data / "c.csv", windows_file=labels, on_note=notes.append)
    assert notes == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--labelling", "nab"], "NAB's rule needs point labels"),
        (["--windows-of-another-folder"], "names no timestamp,value CSV under"),
    ],
)
def test_a_windows_file_that_cannot_label_the_folder_is_an_error(
    tmp_path: Path, args: list[str], says: str
) -> None:
    data, labels = _nab_layout(tmp_path)
    if args == ["--windows-of-another-folder"]:
        args = []
        data = data / "group"  # its files are a.csv, b.csv: the file names group/a.csv
    result = CliRunner().invoke(app, ["evaluate", str(data), "--windows", str(labels), *args])
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.stderr.replace("│", " ").split())
    assert "Traceback" not in result.output


@pytest.mark.parametrize("refused", ["rb", "r"], ids=["header", "rows"])
def test_a_file_that_cannot_be_read_fails_alone_in_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: str
) -> None:
    """A CSV the user may not read stopped the whole evaluation at its header check or
    its rows (root reads any file, so the refusal is simulated where files are opened):
    it is named, the folder's other files are evaluated, and the command ends with exit 2."""
    data = _dataset(tmp_path / "data")
    secret = data / "group" / "b.csv"
    real_open = Path.open

    def opening(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if self == secret and mode == refused:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", opening)
    result = CliRunner().invoke(app, ["evaluate", str(data), "--json"])
    assert result.exit_code == 2, result.output
    assert f"error: [Errno 13] Permission denied: '{secret}'" in result.stderr
    assert "1 of 3 file(s) not evaluated (see above)" in result.stderr
    assert set(json.loads(result.stdout)["series"]) == {"group/a.csv", "c.csv"}
    # one file that cannot be read is the command's error, as before
    result = CliRunner().invoke(app, ["evaluate", str(secret)])
    assert result.exit_code == 2, result.output
    assert "Permission denied" in result.stderr and "not evaluated" not in result.stderr


def test_a_malformed_file_fails_alone_in_a_folder(tmp_path: Path) -> None:
    """A malformed CSV in a folder stopped the whole evaluation (a replay fails it alone):
    it is named with its line, the other files are evaluated, and the command ends with
    exit 2; given alone, it is the command's error as before."""
    data = _dataset(tmp_path / "data")
    broken = data / "group" / "b.csv"
    lines = broken.read_text(encoding="utf-8").splitlines()
    lines[10] = "not a time,1.0,0"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["evaluate", str(data), "--json"])
    assert result.exit_code == 2, result.output
    said = " ".join(result.stderr.split())
    assert f"error: malformed CSV: {broken}:11:" in said
    assert "1 of 3 file(s) not evaluated (see above)" in said
    report = json.loads(result.stdout)
    assert set(report["series"]) == {"group/a.csv", "c.csv"}
    # the JSON names it too (before, only standard error did)
    assert [item["file"] for item in report["not_evaluated"]] == ["group/b.csv"]
    assert f"{broken}:11:" in report["not_evaluated"][0]["error"]
    assert report["skipped"] == ["index.csv"]  # no timestamp,value,label columns
    result = CliRunner().invoke(app, ["evaluate", str(broken)])
    assert result.exit_code == 2, result.output
    assert "malformed CSV" in result.stderr and "not evaluated" not in result.stderr


def test_a_value_that_is_not_a_number_is_left_out_as_replay_does(tmp_path: Path) -> None:
    """One cell "abc" threw the whole series out of an evaluation (exit 2), while replay
    scored the same file and marked that row ``invalid_value``."""
    data = _dataset(tmp_path / "data")
    broken = data / "group" / "b.csv"
    lines = broken.read_text(encoding="utf-8").splitlines()
    lines[100] = lines[100].rsplit(",", 2)[0] + ",abc,0"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["evaluate", str(data), "--json"])
    assert result.exit_code == 0, result.output
    assert "group/b.csv: 1 value(s) not a number" in " ".join(result.stderr.split())
    assert set(json.loads(result.stdout)["series"]) == {"group/a.csv", "group/b.csv", "c.csv"}
    (one,), _ = load_dataset(broken)
    assert one.values[99] is None and len(one.values) == 500


def test_one_file_is_evaluated_as_in_its_folder(tmp_path: Path) -> None:
    """A single CSV: labelled by its folder's windows.json or its labels, or by the
    windows file apart, whose key for it may be longer than its name."""
    root = _dataset(tmp_path / "labelled")
    (one,), _ = load_dataset(root / "group" / "b.csv")
    assert (one.name, one.windows) == ("b.csv", [(327, 377)])
    (inside,), _ = load_dataset(root / "c.csv")
    assert (inside.name, inside.windows) == ("c.csv", [])
    data, labels = _nab_layout(tmp_path)
    (apart,), _ = load_dataset(data / "group" / "a.csv", windows_file=labels)
    assert (apart.name, apart.windows) == ("group/a.csv", [(290, 320), (445, 460)])
    result = CliRunner().invoke(app, ["evaluate", str(root / "group" / "a.csv"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["series_count"] == 1


def _fed(pipe: Path, data: bytes) -> threading.Thread:
    """A named pipe at ``pipe`` that gives ``data`` to its first reader."""
    os.mkfifo(pipe)

    def feed() -> None:
        with pipe.open("wb") as handle:
            handle.write(data)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    return writer


def test_a_named_pipe_is_evaluated_as_the_file_it_gives(tmp_path: Path) -> None:
    """``tsguard evaluate <(zcat x.csv.gz)``: before, "no CSV with timestamp,value,label
    columns" (replay took it); a pipe is read once, and its header is read first."""
    _labelled_csv(tmp_path / "a.csv", 3000, [2000], seed=5)
    (from_file,), _ = load_dataset(tmp_path / "a.csv")
    writer = _fed(tmp_path / "pipe", (tmp_path / "a.csv").read_bytes())
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "pipe"), "--json"])
    writer.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["points"] == 3000
    writer = _fed(tmp_path / "again", (tmp_path / "a.csv").read_bytes())
    (piped,), _ = load_dataset(tmp_path / "again")
    assert (piped.timestamps, piped.values) == (from_file.timestamps, from_file.values)
    assert (piped.name, piped.windows) == ("again", from_file.windows)


def test_a_malformed_row_of_a_named_pipe_names_the_pipe(tmp_path: Path) -> None:
    rows = b"timestamp,value,label\n1700000000,1,0\n1700000060,2\n"
    _fed(tmp_path / "pipe", rows)
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "pipe")])
    assert result.exit_code == 2
    assert f"error: malformed CSV: {tmp_path / 'pipe'}:3: expected 3 fields" in result.stderr


def test_nab_labelling_ignores_windows_json(tmp_path: Path) -> None:
    series, _ = load_dataset(_dataset(tmp_path), labelling="nab")
    by_name = {s.name: s for s in series}
    # two anomalies share 10 % of 600 points: 30 each, centred on the labelled runs
    assert by_name["group/a.csv"].windows == [(287, 317), (437, 467)]


def test_evaluate_json_has_every_detector_and_key(tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["evaluate", str(_dataset(tmp_path / "data")), "--json", "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload["overall"]) == {"tsguard", "river_hst", "zscore"}
    for metrics in payload["overall"].values():
        assert set(metrics) >= OVERALL_KEYS
        assert -1000.0 <= metrics["nab_standard"] <= 100.0
    assert set(payload["series"]) == {"group/a.csv", "group/b.csv", "c.csv"}
    for metrics in payload["overall"].values():
        # NAB's reference normalisation never exceeds ours (it adds unreachable windows)
        assert metrics["nab_standard_reference"] <= metrics["nab_standard"] + 1e-9
        assert metrics["nab_standard_onsets_reference"] <= metrics["nab_standard_onsets"] + 1e-9
        assert 0.0 <= metrics["outside_share"] <= 1.0
    # families: the folder "group" and the top-level file; only "group" has windows
    assert set(payload["families"]) == {"group", "other"}
    assert "false_per_10k" in payload["families"]["other"]["tsguard"]
    assert set(payload["lofo_nab"]["tsguard"]["families"]) == {"group"}
    html = (report / "index.html").read_text(encoding="utf-8")
    plots = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(plots) == 3
    for plot in plots:
        ElementTree.fromstring(plot)  # well-formed SVG


def test_evaluate_table_output(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", str(_dataset(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "overall" in result.stdout
    assert "river_hst" in result.stdout


def test_a_detector_without_episodes_has_no_precision(tmp_path: Path) -> None:
    """An anomaly-free series where tsguard opens no episode: its precision is null (it
    read 0.0), in the series, the family and overall, shown as - in the table and the
    report."""
    data = _dataset(tmp_path / "data")
    report = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["evaluate", str(data / "c.csv"), "--json", "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["series"]["c.csv"]["tsguard"]["episodes"] == 0
    assert payload["series"]["c.csv"]["tsguard"]["episode_precision"] is None
    assert payload["families"]["other"]["tsguard"]["precision"] is None
    assert payload["overall"]["tsguard"]["episode_precision"] is None
    assert (report / "index.html").is_file()
    result = CliRunner().invoke(app, ["evaluate", str(data / "c.csv")])
    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("│ tsguard ")]
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[5] == "-"  # detector, NAB std, lowFP, lowFN, F1, then P


def test_a_report_path_that_is_a_file_is_refused_before_the_evaluation(tmp_path: Path) -> None:
    taken = tmp_path / "report.html"
    taken.write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["evaluate", str(_dataset(tmp_path / "data")), "--report", str(taken)]
    )
    assert result.exit_code == 2
    assert "is a file" in result.output
    assert "overall" not in result.stdout  # nothing was scored
    assert taken.read_text(encoding="utf-8") == "mine"


def test_a_report_folder_that_cannot_be_written_is_refused_before_the_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report folder that cannot be made (here: under a file; a folder the user may
    not write fails the same way) failed only after the whole evaluation had run."""
    from stream_app.offline import evaluate_cli

    def scoring(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the detectors ran before the report folder was checked")

    monkeypatch.setattr(evaluate_cli, "run_all", scoring)
    taken = tmp_path / "taken"
    taken.write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["evaluate", str(_dataset(tmp_path / "data")), "--report", str(taken / "report")]
    )
    assert result.exit_code == 2, result.output
    assert f"error: --report {taken / 'report'}: cannot write there (Not a directory)" in (
        " ".join(result.stderr.split())
    )
    assert taken.read_text(encoding="utf-8") == "mine"
    # a folder that can be written is made, and holds only the report afterwards
    monkeypatch.undo()
    made = tmp_path / "new" / "report"
    result = CliRunner().invoke(
        app, ["evaluate", str(_dataset(tmp_path / "data")), "--json", "--report", str(made)]
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in made.iterdir()] == ["index.html"]


def test_evaluate_rejects_a_folder_without_labelled_series(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("timestamp,value\n1,2\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path)])
    assert result.exit_code != 0
    assert "no CSV with timestamp,value,label" in result.stderr


def test_bench_detectors_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "detectors", "--json", "--points", "2000", "--repeats", "1"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    for key in (
        "tsguard_points_per_s",
        "river_hst_points_per_s",
        "river_sad_points_per_s",
        "ratio_hst",
        "ratio_sad",
        "state_bytes_per_series",
    ):
        assert payload[key] > 0


def test_evaluate_generated_families_include_anomaly_free_ones() -> None:
    result = CliRunner().invoke(app, ["evaluate", "--generated", "1", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    families = payload["families"]
    assert {"gen/business_hours", "gen/free_business_hours", "gen/counts"} <= set(families)
    free = families["gen/free_seasonal"]["tsguard"]
    assert free["false_per_10k"] is not None and "nab_onsets" not in free
    assert payload["overall"]["tsguard"]["false_per_10k_free"] is not None


def test_evaluate_needs_a_folder_or_generated_families() -> None:
    result = CliRunner().invoke(app, ["evaluate"])
    assert result.exit_code != 0
    assert "nothing to evaluate" in result.stderr


def test_a_folder_of_headers_without_rows_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("timestamp,value,label\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "no CSV has a row after its header" in result.stderr


def test_rows_out_of_time_order_are_evaluated_sorted_and_said(tmp_path: Path) -> None:
    """An export newest first: before, the detector marked every row but one late (no
    score) and ranked 0 while the order-blind z-score ranked 95, without a word; and its
    windows file said a window that covers 21 rows covered none."""
    _labelled_csv(tmp_path / "sorted" / "a.csv", 600, [300, 450], seed=1)
    header, *rows = (tmp_path / "sorted" / "a.csv").read_text("utf-8").splitlines()
    (tmp_path / "newest_first").mkdir()
    (tmp_path / "newest_first" / "a.csv").write_text(
        "\n".join([header, *reversed(rows)]) + "\n", encoding="utf-8"
    )
    windows = {"a.csv": [[_iso(START + 60 * 290), _iso(START + 60 * 320)]]}
    for folder in ("sorted", "newest_first"):
        (tmp_path / f"{folder}.json").write_text(json.dumps(windows), encoding="utf-8")
    results = {}
    for folder in ("sorted", "newest_first"):
        notes: list[str] = []
        series, _ = load_dataset(
            tmp_path / folder, windows_file=tmp_path / f"{folder}.json", on_note=notes.append
        )
        assert series[0].windows == [(290, 320)], folder
        assert notes == (
            []
            if folder == "sorted"
            else ["a.csv: its rows are not in time order; evaluated sorted by time"]
        )
        result = CliRunner().invoke(app, ["evaluate", str(tmp_path / folder), "--json"])
        assert result.exit_code == 0, result.output
        results[folder] = json.loads(result.stdout)["overall"]
    for detector, scores in results["sorted"].items():
        for key in OVERALL_KEYS:  # not the timings
            assert results["newest_first"][detector][key] == scores[key], (detector, key)
    assert results["sorted"]["tsguard"]["nab_standard"] > 50


def test_rows_at_a_time_already_seen_are_evaluated_once_and_said(tmp_path: Path) -> None:
    """A file with every row twice: before, the detector gave each second copy no score
    (a duplicate) while the baselines scored both, and NAB counted twice the points,
    without a word. The label of either copy labels the time."""
    _labelled_csv(tmp_path / "once" / "a.csv", 600, [300, 450], seed=1)
    header, *rows = (tmp_path / "once" / "a.csv").read_text("utf-8").splitlines()
    twice = [copy for row in rows for copy in (row[: row.rindex(",")] + ",0", row)]
    (tmp_path / "twice").mkdir()
    (tmp_path / "twice" / "a.csv").write_text("\n".join([header, *twice]) + "\n", "utf-8")
    results = {}
    for folder in ("once", "twice"):
        notes: list[str] = []
        series, _ = load_dataset(tmp_path / folder, on_note=notes.append)
        assert len(series[0].values) == 600, folder
        assert notes == (
            []
            if folder == "once"
            else [
                "a.csv: 600 row(s) at a time an earlier row already had; evaluated with "
                "the first row at each time (a label on any of them kept)"
            ]
        )
        result = CliRunner().invoke(app, ["evaluate", str(tmp_path / folder), "--json"])
        assert result.exit_code == 0, result.output
        results[folder] = json.loads(result.stdout)["overall"]
    for detector, scores in results["once"].items():
        for key in OVERALL_KEYS:
            assert results["twice"][detector][key] == scores[key], (detector, key)
    # the second copy's label counted: the first copy of every row says 0
    assert results["once"]["tsguard"]["windows"] == 2


@pytest.mark.parametrize(
    "args",
    [
        ["detectors", "--points", "100000000000000000000"],  # a numpy traceback before
        ["detectors", "--repeats", "1000"],
        ["pipeline", "--seconds", "nan"],  # NaN passes a lower bound alone
        ["pipeline", "--offered-rate", "inf"],
        ["pipeline", "--entities", "100000000"],
    ],
)
def test_bench_sizes_beyond_reason_are_refused_before_any_work(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["bench", *args])
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output
