"""Where ``replay -o`` writes: into a device or a named pipe, through a symbolic link, into
a folder named with a trailing /."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from typer.testing import CliRunner

from stream_app.cli import app


def _series(path: Path, n: int = 120) -> None:
    lines = ["timestamp,value", *(f"{1_700_000_000 + 60 * i},{10 + i % 4}" for i in range(n))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_named_pipe_is_written_into_not_replaced_by_a_file(tmp_path: Path) -> None:
    source, pipe = tmp_path / "s.csv", tmp_path / "out.fifo"
    _series(source)
    os.mkfifo(pipe)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()), daemon=True)
    reader.start()
    result = CliRunner().invoke(app, ["replay", str(source), "-o", str(pipe)])
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(pipe.lstat().st_mode)  # before: a regular file in its place
    text = got[0].decode()
    assert text.startswith("timestamp,value,anomaly_score,") and text.count("\n") == 121
    assert not list(tmp_path.glob(".*.partial"))


def test_a_symbolic_link_keeps_pointing_at_the_file_it_names_which_gets_the_output(
    tmp_path: Path,
) -> None:
    source, real, link = tmp_path / "s.csv", tmp_path / "real.csv", tmp_path / "link.csv"
    _series(source)
    real.write_text("old\n", encoding="utf-8")
    link.symlink_to(real)
    result = CliRunner().invoke(app, ["replay", str(source), "-o", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert real.read_text(encoding="utf-8").count("\n") == 121


def test_a_link_to_nothing_yet_makes_the_file_it_names(tmp_path: Path) -> None:
    source, link = tmp_path / "s.csv", tmp_path / "link.csv"
    _series(source)
    link.symlink_to(tmp_path / "made.csv")
    result = CliRunner().invoke(app, ["replay", str(source), "-o", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and (tmp_path / "made.csv").read_text().count("\n") == 121


def test_an_output_that_ends_with_a_slash_is_a_folder_to_make(tmp_path: Path) -> None:
    """``-o newdir/`` wrote a file named ``newdir`` (the / was lost on the way to a Path):
    a trailing / says a folder, which is made and gets the file under its own name, as
    a folder that exists does; without it, a missing path is still a file to make."""
    source = tmp_path / "one.csv"
    _series(source)
    result = CliRunner().invoke(app, ["replay", str(source), "-o", f"{tmp_path / 'newdir'}/"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "newdir").is_dir()
    assert (tmp_path / "newdir" / "one.csv").read_text().count("\n") == 121
    result = CliRunner().invoke(app, ["replay", str(source), "-o", str(tmp_path / "plain")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "plain").read_text().count("\n") == 121
    # a file named with a trailing / is not a folder: refused, and left as it was
    result = CliRunner().invoke(app, ["replay", str(source), "-o", f"{tmp_path / 'plain'}/"])
    assert result.exit_code == 2, result.output
    assert "a trailing / names a folder" in result.stderr
    assert (tmp_path / "plain").read_text().count("\n") == 121


def test_an_output_that_cannot_be_written_is_named_not_the_partial_file_beside_it(
    tmp_path: Path,
) -> None:
    """``-o /proc/version`` said "No such file or directory: '/proc/.version.8060.partial'",
    a file the user never named."""
    source, taken = tmp_path / "s.csv", tmp_path / "taken.csv"
    _series(source)
    taken.write_text("x\n", encoding="utf-8")
    for target in (taken / "out.csv", Path("/proc/version")):
        result = CliRunner().invoke(app, ["replay", str(source), "-o", str(target)])
        assert result.exit_code == 2, result.output
        said = " ".join(result.stderr.split())
        assert said.startswith(f"error: cannot write {target}: "), said
        assert ".partial" not in said
    assert not list(tmp_path.glob(".*.partial")) and taken.read_text(encoding="utf-8") == "x\n"
