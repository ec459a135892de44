"""``tsguard replay`` through the real command line and the real detector core."""

from __future__ import annotations

import csv
import math
import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stream_app.cli import app

HEADER = [
    "timestamp",
    "value",
    "anomaly_score",
    "is_anomaly",
    "expected",
    "lower",
    "upper",
    "status",
    "episode_event",
]


def _series_csv(path: Path, n: int = 200, start: float = 1_700_000_000.0) -> list[str]:
    """A seasonal series with one spike; returns the data lines written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        value = 10.0 + 3.0 * math.sin(i / 8.0) + (40.0 if i == n - 20 else 0.0)
        lines.append(f"{start + 60.0 * i:.0f},{value:.4f}")
    path.write_text("timestamp,value\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return lines


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == HEADER
        return list(reader)


def test_folder_output_mirrors_input_one_row_per_row(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    written = {
        rel: _series_csv(src / rel, n)
        for rel, n in [("a.csv", 150), ("plant/pump-1.csv", 120), ("plant/deep/x.csv", 90)]
    }
    result = CliRunner().invoke(app, ["replay", str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv")) == sorted(written)
    for rel, lines in written.items():
        rows = _rows(out / rel)
        assert [f"{r['timestamp']},{r['value']}" for r in rows] == lines
        scored = [r for r in rows if r["status"] in ("ok", "warmup")]
        assert len(scored) == len(rows)
        assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in scored)
        assert {r["is_anomaly"] for r in rows} <= {"0", "1"}


def test_folder_skips_csvs_that_are_not_series(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    _series_csv(src / "a.csv", 50)
    (src / "index.csv").write_text("path,points\na.csv,50\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["replay", str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped 1 CSV(s)" in result.stderr
    assert [p.name for p in out.rglob("*.csv")] == ["a.csv"]


def test_a_folder_finds_csvs_whatever_the_case_of_their_suffix(tmp_path: Path) -> None:
    """``EXPORT.CSV`` (a spreadsheet's, a Windows tool's) was left out of a folder without
    a word; the output keeps its name."""
    src, out = tmp_path / "in", tmp_path / "out"
    _series_csv(src / "a.csv", 50)
    _series_csv(src / "plant" / "EXPORT.CSV", 60)
    _series_csv(src / "b.Csv", 40)
    result = CliRunner().invoke(app, ["replay", str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "replayed 3 file(s), 150 row(s)" in result.stderr
    assert len(_rows(out / "plant" / "EXPORT.CSV")) == 60 and (out / "b.Csv").is_file()


@pytest.mark.parametrize("command", ["replay", "evaluate"])
def test_two_csvs_whose_names_differ_in_the_case_of_the_suffix_are_refused_by_name(
    command: str, tmp_path: Path
) -> None:
    """``a.csv`` and ``a.CSV`` were both scored as entity ``a`` (exit 0), the series of one
    entity in two files that a folder copied where names ignore case cannot both hold."""
    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("plant/a.csv", "plant/a.CSV", "b.csv"):
        lines = _series_csv(src / name, 50)
        if command == "evaluate":  # a label column, which evaluate needs
            labelled = ["timestamp,value,label", *(line + ",0" for line in lines)]
            (src / name).write_text("\n".join(labelled) + "\n", encoding="utf-8")
    args = [command, str(src), *(["--output", str(out)] if command == "replay" else ["--json"])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert (
        "error: plant/a.CSV and plant/a.csv would be one series (entity plant/a): rename one"
        in result.stderr
    )
    assert not out.exists() and result.stdout == ""


def test_a_list_of_skipped_csvs_cut_short_says_how_many_more(tmp_path: Path) -> None:
    """It said "skipped 6 CSV(s)" and named 5, with no sign of the sixth."""
    src, out = tmp_path / "in", tmp_path / "out"
    _series_csv(src / "a.csv", 50)
    for k in range(6):
        (src / f"index{k}.csv").write_text("path,points\na.csv,50\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["replay", str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert (
        "skipped 6 CSV(s) without the timestamp/value columns: index0.csv, index1.csv, "
        "index2.csv, index3.csv, index4.csv and 1 more"
    ) in " ".join(result.stderr.split())


def test_single_file_with_a_wrong_header_is_malformed(tmp_path: Path) -> None:
    source = tmp_path / "index.csv"
    source.write_text("path,points\na.csv,50\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["replay", str(source), "--output", str(tmp_path / "o.csv")])
    assert result.exit_code != 0
    assert f"{source}:1: missing column(s) timestamp, value" in result.stderr


def test_rejected_rows_keep_their_place(tmp_path: Path) -> None:
    source = tmp_path / "s.csv"
    lines = _series_csv(source, 80)
    # a missing value, a NaN and a duplicate timestamp in the middle of the file
    lines[40] = lines[40].split(",")[0] + ","
    lines[50] = lines[50].split(",")[0] + ",nan"
    lines.insert(61, lines[60])
    source.write_text("timestamp,value\n" + "\n".join(lines) + "\n", encoding="utf-8")
    target = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["replay", str(source), "--output", str(target)])
    assert result.exit_code == 0, result.output
    rows = _rows(target)
    assert len(rows) == len(lines)
    for i in (40, 50, 61):
        assert rows[i]["anomaly_score"] == ""
        assert rows[i]["status"] not in ("ok", "warmup", "")
    assert rows[40]["status"] == "missing"
    assert rows[50]["status"] == "non_finite"
    assert rows[61]["status"] == "duplicate"
    assert rows[62]["anomaly_score"] != ""


def test_iso_timestamps_with_and_without_zone(tmp_path: Path) -> None:
    source = tmp_path / "iso.csv"
    source.write_text(
        "timestamp,value\n2018-07-03T12:00:00Z,1\n2018-07-03 12:01:00,2\n"
        "2018-07-03T14:02:00+02:00,3\n1530619380000,4\n",
        encoding="utf-8",
    )
    target = tmp_path / "iso-out.csv"
    result = CliRunner().invoke(app, ["replay", str(source), "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in _rows(target)] == ["warmup"] * 4


def test_several_metrics_get_their_own_columns(tmp_path: Path) -> None:
    source = tmp_path / "multi.csv"
    source.write_text("timestamp,temp,vib,other\n1000,1,0.1,x\n1060,2,,y\n", encoding="utf-8")
    target = tmp_path / "multi-out.csv"
    result = CliRunner().invoke(
        app, ["replay", str(source), "--output", str(target), "--metrics", "temp,vib"]
    )
    assert result.exit_code == 0, result.output
    with target.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    assert rows[1]["vib_status"] == "missing"
    assert rows[1]["temp_status"] == "warmup"


@pytest.mark.parametrize(
    ("metrics", "says"),
    [
        ("temp,temp", "metric(s) temp named more than once"),
        ("timestamp", "timestamp is the time column, not a metric"),
        ("temp,temp_status", "metrics temp, temp_status: output column(s) temp_status would"),
    ],
)
def test_a_metric_list_that_would_garble_the_output_is_refused(
    tmp_path: Path, metrics: str, says: str
) -> None:
    source = tmp_path / "multi.csv"
    source.write_text("timestamp,temp,temp_status\n1000,1,2\n1060,2,3\n", encoding="utf-8")
    target = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app, ["replay", str(source), "--output", str(target), "--metrics", metrics]
    )
    assert result.exit_code == 2
    assert f"error: {says}" in result.stderr
    assert not target.exists()


def test_the_output_never_overwrites_the_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "in"
    _series_csv(src / "a.csv", 30)
    before = (src / "a.csv").read_bytes()
    monkeypatch.chdir(tmp_path)
    # the same file, spelt another way
    result = CliRunner().invoke(app, ["replay", "in/a.csv", "--output", str(src / "." / "a.csv")])
    assert result.exit_code == 2
    assert "the output would overwrite its input" in result.stderr
    # a folder into itself
    result = CliRunner().invoke(app, ["replay", "in", "--output", str(src)])
    assert result.exit_code == 2
    assert "the output folder is the input folder" in result.stderr
    assert (src / "a.csv").read_bytes() == before
    # a folder inside the input, named relatively and then absolutely: the second run
    # does not replay the first one's output
    for out in ("in/out", str(src / "out")):
        result = CliRunner().invoke(app, ["replay", "in", "--output", out])
        assert result.exit_code == 0, result.output
        assert "replayed 1 file(s), 30 row(s)" in result.stderr
    assert (src / "a.csv").read_bytes() == before
    assert not (src / "out" / "out").exists()


def test_an_output_hard_linked_to_the_input_is_refused(tmp_path: Path) -> None:
    """Before, the output was written through the link: the input became the output."""
    _series_csv(tmp_path / "a.csv", 30)
    before = (tmp_path / "a.csv").read_bytes()
    os.link(tmp_path / "a.csv", tmp_path / "b.csv")
    result = CliRunner().invoke(
        app, ["replay", str(tmp_path / "a.csv"), "-o", str(tmp_path / "b.csv")]
    )
    assert result.exit_code == 2
    assert "the output would overwrite its input" in result.stderr
    assert (tmp_path / "a.csv").read_bytes() == before


def test_folders_inside_one_another(tmp_path: Path) -> None:
    """An input folder inside the output folder is read (before: "no CSV with columns",
    its files taken for our own output); an output that would land on an input file,
    or a folder replayed into a file, is refused once, before any work."""
    _series_csv(tmp_path / "nest" / "raw" / "a.csv", 30)
    result = CliRunner().invoke(
        app, ["replay", str(tmp_path / "nest" / "raw"), "-o", str(tmp_path / "nest")]
    )
    assert result.exit_code == 0, result.output
    assert len(_rows(tmp_path / "nest" / "a.csv")) == 30
    _series_csv(tmp_path / "nest" / "raw" / "raw" / "a.csv", 40)
    before = (tmp_path / "nest" / "raw" / "a.csv").read_bytes()
    result = CliRunner().invoke(
        app, ["replay", str(tmp_path / "nest" / "raw"), "-o", str(tmp_path / "nest")]
    )
    assert result.exit_code == 2
    assert "would overwrite an input" in result.stderr
    assert (tmp_path / "nest" / "raw" / "a.csv").read_bytes() == before
    (tmp_path / "taken.csv").write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["replay", str(tmp_path / "nest" / "raw"), "-o", str(tmp_path / "taken.csv")]
    )
    assert result.exit_code == 2
    assert result.stderr.count("error:") == 1
    assert "a folder's replay writes a folder, and this is a file" in result.stderr


def test_a_replay_stopped_midway_leaves_no_output_that_looks_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the output was written left a file cut at any row, exit 130, no word."""
    from stream_app.offline import replay

    _series_csv(tmp_path / "a.csv", 300)
    (tmp_path / "out.csv").write_text("an older run", encoding="utf-8")
    real = replay._episode_event  # called for every row scored, as it is written
    calls = []

    def cells(events: Any, metric: str) -> str:
        calls.append(len(calls))
        if len(calls) - 1 == 150:
            raise KeyboardInterrupt
        return real(events, metric)

    monkeypatch.setattr(replay, "_episode_event", cells)
    result = CliRunner().invoke(
        app, ["replay", str(tmp_path / "a.csv"), "-o", str(tmp_path / "out.csv")]
    )
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    assert calls[-1] == 150
    assert (tmp_path / "out.csv").read_text("utf-8") == "an older run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "out.csv"]


def test_a_named_pipe_is_read_as_a_file(tmp_path: Path) -> None:
    """``tsguard replay <(zcat x.csv.gz) -o out.csv``: before, "no such file or folder"."""
    lines = _series_csv(tmp_path / "a.csv", 50)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    text = (tmp_path / "a.csv").read_bytes()

    def feed() -> None:
        with fifo.open("wb") as handle:
            handle.write(text)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    result = CliRunner().invoke(app, ["replay", str(fifo), "-o", str(tmp_path / "out.csv")])
    writer.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert [r["timestamp"] for r in _rows(tmp_path / "out.csv")] == [x.split(",")[0] for x in lines]


def test_malformed_file_fails_with_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _series_csv(src / "good.csv", 30)
    bad = src / "bad.csv"
    bad.write_text("timestamp,value\n1000,1\n1060,2\nsoon,3\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["replay", str(src), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{bad}:4:" in result.stderr
    assert "cannot parse timestamp 'soon'" in result.stderr
    # the malformed file (first in the folder) writes nothing, and loses nothing else
    assert not (tmp_path / "out" / "bad.csv").exists()
    assert len(_rows(tmp_path / "out" / "good.csv")) == 30
    assert "replayed 1 file(s), 30 row(s)" in result.stderr
    assert "1 of 2 file(s) not replayed" in result.stderr


def test_files_that_are_not_utf8_fail_alone_in_a_folder(tmp_path: Path) -> None:
    """Bytes that are not UTF-8, in a row or in the header, are that file's error: the
    folder's other files are still replayed (the header check once read a whole block of
    each file and stopped the command before any file was replayed)."""
    src = tmp_path / "in"
    _series_csv(src / "good.csv", 30)
    rows = src / "rows.csv"
    rows.write_bytes(b"timestamp,value\n1000,1\n1060,caf\xe9\n")
    head = src / "head.csv"
    head.write_bytes(b"timestamp,val\xfcue\n1000,1\n")
    twice = src / "twice.csv"
    twice.write_text("timestamp,value,value\n1000,1,2\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["replay", str(src), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{rows}:3: not UTF-8 text" in result.stderr
    assert f"{head}:1: not UTF-8 text" in result.stderr
    assert f"{twice}:1: column(s) value named more than once" in result.stderr
    assert len(_rows(tmp_path / "out" / "good.csv")) == 30
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.csv"]
    assert "3 of 4 file(s) not replayed" in result.stderr


def test_a_file_that_cannot_be_opened_fails_alone_in_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the user may not read (root reads any, so its refusal is simulated) stopped
    the command in the header check, before any file of the folder was replayed."""
    src = tmp_path / "in"
    _series_csv(src / "a.csv", 30)
    _series_csv(src / "b.csv", 30)
    from stream_app.offline import csvio, replay

    def refused(path: Path, *args: object, **kwargs: object) -> object:
        if path.name == "b.csv":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    def header_read(path: Path, columns: object) -> bool:
        refused(path)
        return True

    real = csvio.iter_series_csv
    monkeypatch.setattr(replay, "has_columns", header_read)
    monkeypatch.setattr(replay, "iter_series_csv", refused)
    result = CliRunner().invoke(app, ["replay", str(src), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "Permission denied" in result.stderr and "1 of 2 file(s) not replayed" in result.stderr
    # the input's error, though it came as the output was written
    assert "cannot write" not in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.csv"]


def test_a_link_named_csv_that_leads_nowhere_is_named_and_fails_alone(tmp_path: Path) -> None:
    """A dangling link among a folder's files was left out unnamed, exit 0: the user
    never learnt that a series they meant to replay was not there."""
    src = tmp_path / "in"
    _series_csv(src / "a.csv", 30)
    (src / "b.csv").symlink_to(tmp_path / "gone" / "b.csv")
    result = CliRunner().invoke(app, ["replay", str(src), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "b.csv" in result.stderr and "No such file" in result.stderr
    assert "1 of 2 file(s) not replayed" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.csv"]


def test_a_malformed_single_file_writes_nothing(tmp_path: Path) -> None:
    bad, out = tmp_path / "bad.csv", tmp_path / "out.csv"
    bad.write_text("timestamp,value\n1000,1\nlater,2\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["replay", str(bad), "--output", str(out)])
    assert result.exit_code == 2
    assert f"{bad}:3:" in result.stderr and not out.exists()


def test_episode_event_marks_where_episodes_open_and_resolve(tmp_path: Path) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _series_csv(src, 300)  # one spike at row 280
    result = CliRunner().invoke(app, ["replay", str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    events = [(i, r["episode_event"]) for i, r in enumerate(rows) if r["episode_event"]]
    assert events and events[0] == (280, "opened")
    assert {kind for _, kind in events} <= {"opened", "resolved"}
    # is_anomaly is 1 exactly inside the episodes: from each opening row to before its resolve
    inside = False
    for r in rows:
        inside = {"opened": True, "resolved": False}.get(r["episode_event"], inside)
        assert r["is_anomaly"] == ("1" if inside else "0")


def test_a_wide_file_is_scored_a_reading_per_row_like_the_worker(tmp_path: Path) -> None:
    """Rows are readings of one entity: an invalid cell only drops that metric's point."""
    from stream_app.core import EngineConfig
    from stream_app.offline.replay import score_entity, score_series

    n = 120
    ts = [1_700_000_000.0 + 60.0 * i for i in range(n)]
    temp = [20.0 + math.sin(i / 7.0) + (15.0 if i == 100 else 0.0) for i in range(n)]
    vib = [0.1 + 0.01 * math.cos(i / 5.0) for i in range(n)]
    config = EngineConfig.from_mapping({"entities": [{"pattern": "plant-*"}]})
    both = score_entity("plant-1/pump", ts, {"temp": temp, "vib": vib}, config, {"vib": {50}})
    assert both["vib"].status[50] == "invalid_value" and both["temp"].status[50] == "ok"
    assert both["temp"].episode_event[100] == "opened" and both["vib"].episode_event[100] == ""
    # each metric's own columns are what scoring it alone gives
    alone = score_series("plant-1/pump", "temp", ts, temp, config)
    assert both["temp"].scores == alone.scores


def test_a_stuck_sensor_is_an_episode_in_the_replay_columns() -> None:
    """A noisy sensor that freezes: its stuck episode opens and resolves in
    ``episode_event``, ``is_anomaly`` marks it, and its onset ranks with the onsets."""
    from stream_app.core import EngineConfig
    from stream_app.core.policy import ONSET_SCORE
    from stream_app.offline.replay import score_series

    rng = random.Random(4)
    n = 1500
    ts = [1_700_000_000.0 + 60.0 * i for i in range(n)]
    values = [round(20.0 + rng.gauss(0.0, 1.0), 1) for _ in range(n)]
    values[1000:1100] = [values[999]] * 100  # frozen for 100 minutes
    out = score_series("plant-1", "temp", ts, values, EngineConfig.default())
    events = [(i, e) for i, e in enumerate(out.episode_event) if e]
    assert events == [(events[0][0], "opened"), (1100, "resolved")]
    onset = events[0][0]
    assert 1000 < onset < 1060
    assert all(out.is_anomaly[onset:1100]) and not any(out.is_anomaly[1100:])
    assert out.scores[onset] is not None and out.scores[onset] >= ONSET_SCORE


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("bad.yaml", "policy: [\n", "not valid YAML"),
        ("bad.yaml", "- a list\n", "must be a mapping"),
        ("bad.json", "{nope", "not valid JSON"),
        # tracebacks before (TypeError, an unnamed int() error, a comparison with None)
        ("null.yaml", "defaults: {params: [1, 2]}\n", "defaults: params must be a mapping"),
        ("rule.yaml", "rules: [{pattern: '*', params: 7}]\n", "rules[0]: params must be a mapping"),
        (
            "entity.yaml",
            "entities: [{pattern: '*', params: {window_size: abc}}]\n",
            "entities[0]: entity scorer: window_size must be a number",
        ),
        (
            "forest.yaml",
            "entities: [{pattern: '*', params: {n_trees: 100000}}]\n",
            "n_trees must be within 1 and 50",
        ),
        (
            "nodes.yaml",
            "entities: [{pattern: '*', params: {n_trees: 50, height: 12}}]\n",
            "entity scorer: n_trees x 2 ** height must be at most 16384",
        ),
        (
            "warm.yaml",
            "defaults: {cleaning: {warmup_points: null}}\n",
            "warmup_points needs a value",
        ),
        ("latin.yaml", "seed: 1\n# caf\udce9\n", "latin.yaml:2: not UTF-8 text"),
    ],
)
@pytest.mark.parametrize("command", ["replay", "evaluate", "bench"])
def test_a_malformed_config_is_a_clear_error_not_a_traceback(
    tmp_path: Path, name: str, text: str, says: str, command: str
) -> None:
    # a YAML file that does not parse ended in a yaml.ParserError traceback (and in
    # `bench detectors` any bad configuration did); a JSON one did not name the file
    source = tmp_path / "s.csv"
    _series_csv(source, 40)
    config = tmp_path / name
    config.write_bytes(text.encode("utf-8", "surrogateescape"))
    args = {
        "replay": ["replay", str(source), "--output", str(tmp_path / "o.csv")],
        "evaluate": ["evaluate", "--generated", "1"],
        "bench": ["bench", "detectors", "--points", "100"],
    }[command]
    result = CliRunner().invoke(app, [*args, "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert says in result.stderr


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("empty_params.yaml", "defaults: {params: null}\nrules: [{pattern: '*', params: null}]\n"),
        ("entities.yaml", "entities: [{pattern: '*', params: null}]\n"),
        ("bom.json", "\ufeff" + '{"seed": 3}'),  # Notepad's UTF-8
    ],
)
def test_a_config_with_nothing_for_params_or_a_byte_order_mark_is_read(
    tmp_path: Path, name: str, text: str
) -> None:
    """``params:`` written with nothing after it is null in YAML: the detector's own
    parameters, as leaving it out; before, a TypeError."""
    source = tmp_path / "s.csv"
    _series_csv(source, 40)
    config = tmp_path / name
    config.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(
        app, ["replay", str(source), "-o", str(tmp_path / "o.csv"), "--config", str(config)]
    )
    assert result.exit_code == 0, result.output


def test_a_series_piped_in_and_out_is_scored_as_its_file(tmp_path: Path) -> None:
    """``tsguard replay - -o -`` in a pipeline: the rows are those of the file's replay,
    and only they go to standard output (what the command says goes to standard error)."""
    _series_csv(tmp_path / "s.csv", 300)
    done = CliRunner().invoke(app, ["replay", str(tmp_path / "s.csv"), "-o", str(tmp_path / "o")])
    assert done.exit_code == 0, done.output
    text = (tmp_path / "s.csv").read_text("utf-8")
    piped = CliRunner().invoke(app, ["replay", "-", "-o", "-"], input=text)
    assert piped.exit_code == 0, piped.output
    assert piped.stdout == (tmp_path / "o").read_text("utf-8")
    assert "-> standard output" in piped.stderr
    # piped in, written to a file; read from a file, written out
    into = CliRunner().invoke(app, ["replay", "-", "-o", str(tmp_path / "p.csv")], input=text)
    assert into.exit_code == 0, into.output
    assert (tmp_path / "p.csv").read_text("utf-8") == piped.stdout
    out = CliRunner().invoke(app, ["replay", str(tmp_path / "s.csv"), "-o", "-"])
    assert out.stdout == piped.stdout


@pytest.mark.parametrize(
    ("args", "piped", "says"),
    [
        (["-", "-o", "-"], "timestamp,value\n1,2\nsoon,3\n", "malformed CSV: <stdin>:3:"),
        (["-", "-o", "-"], "", "malformed CSV: <stdin>:1: empty file"),
        (["{folder}", "-o", "-"], "", "--output - writes one series"),
        (["{folder}/nothere.csv", "-o", "-"], "", "nothere.csv: no such file or folder"),
    ],
)
def test_a_bad_pipe_is_a_clear_error(
    tmp_path: Path, args: list[str], piped: str, says: str
) -> None:
    _series_csv(tmp_path / "a.csv")
    args = [a.replace("{folder}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(app, ["replay", *args], input=piped)
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    assert result.stdout == ""
