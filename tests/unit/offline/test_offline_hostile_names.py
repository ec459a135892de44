"""File and folder names that look like markup or hold terminal control characters are
shown as they are by ``replay``, ``evaluate`` and the report: never applied, never a crash."""

from __future__ import annotations

import math
from pathlib import Path

from typer.testing import CliRunner

from stream_app.cli import app

ESCAPE = "\x1b[2J"  # clears a terminal's screen
RTL = "\u202e"  # shows the rest of its line right to left


def _series(path: Path, label: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["timestamp,value" + (",label" if label else "")]
    for i in range(300):
        value = math.sin(i / 10.0) + (8.0 if i == 250 else 0.0)
        rows.append(
            f"{1_700_000_000 + 300 * i},{value:.4f}" + (f",{int(i == 250)}" if label else "")
        )
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _flat(text: str) -> str:
    """Output with Rich's table frames and line folds taken out."""
    return "".join(text.replace("│", "").replace("┃", "").split())


def test_evaluate_shows_names_that_look_like_markup_or_hold_controls(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # a folder named "[" makes the series "[/x].csv": a closing tag Rich cannot match
    _series(data / "[" / "x].csv")
    _series(data / "[bold]loud.csv")
    _series(data / f"a{ESCAPE}b.csv")
    _series(data / f"{RTL}vsc.exe.csv")
    report = tmp_path / "report"
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["evaluate", str(data), "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    shown = _flat(result.stdout)
    for name in ("[/x].csv", "[bold]loud.csv", "a\\x1b[2Jb.csv", "\\u202evsc.exe.csv"):
        assert name in shown
    assert "\x1b" not in result.output and RTL not in result.output
    page = (report / "index.html").read_text("utf-8")
    assert "<h2>a\\x1b[2Jb.csv</h2>" in page and "<h2>\\u202evsc.exe.csv</h2>" in page
    assert "\x1b" not in page and RTL not in page


def test_replay_names_an_output_folder_that_looks_like_markup(tmp_path: Path) -> None:
    _series(tmp_path / "in" / "a.csv", label=False)
    _series(tmp_path / "in" / "[red]b.csv", label=False)
    output = tmp_path / "out" / "[/y]"
    result = CliRunner().invoke(app, ["replay", str(tmp_path / "in"), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in output.iterdir()) == ["[red]b.csv", "a.csv"]
    assert f"-> {output}" in " ".join(result.stderr.split())


def test_a_long_output_path_is_printed_in_one_piece(tmp_path: Path) -> None:
    """Rich broke the summary at 80 columns when not a terminal, inside a long path (a
    newline in the middle of what a user copies; under pytest-xdist's longer temporary
    folders the test above failed that way)."""
    _series(tmp_path / "in" / "a.csv", label=False)
    output = tmp_path / ("deep" * 20) / "out"
    result = CliRunner().invoke(app, ["replay", str(tmp_path / "in"), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert f"-> {output}\n" in result.stderr


def test_an_error_shows_the_control_characters_of_a_name(tmp_path: Path) -> None:
    source = tmp_path / f"a{ESCAPE}.csv"
    source.write_text("time,value\n1,2\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["replay", str(source), "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 2, result.output
    assert "a\\x1b[2J.csv:1: missing column(s) timestamp" in result.stderr
    assert "\x1b" not in result.stderr
