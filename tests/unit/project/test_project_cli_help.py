"""Every ``tsguard`` command's ``--help`` says what its source says.

Typer renders help through Rich, which reads ``[...]`` as markup and drops what it
takes for a tag: ``evaluate --windows`` showed NAB's layout as ``{path under the
folder: [, ...]}`` and ``dashboards push`` lost which settings its options default to.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from stream_app.cli import app

_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_FRAME = re.compile(r"[\s│╭╮╰╯─]+")  # Rich's panel borders and the line wrapping


def _commands() -> Iterator[tuple[list[str], Any]]:
    root = get_command(app)
    todo: list[tuple[list[str], Any]] = [([], root)]
    while todo:
        path, command = todo.pop()
        yield path, command
        if hasattr(command, "list_commands"):
            ctx = command.context_class(command)
            for name in command.list_commands(ctx):
                todo.append(([*path, name], command.get_command(ctx, name)))


def _flat(text: str) -> str:
    # Rich escapes a literal "[" as "\[" in the source: what it shows has no backslash
    return _FRAME.sub(" ", text.replace("\\[", "["))


COMMANDS = sorted(_commands(), key=lambda item: item[0])


def test_the_walk_finds_every_command_group() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"evaluate", "replay", "dashboards push", "stack up", "simulate iot"} <= names
    assert len(names) > 25


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "tsguard" for p, _ in COMMANDS]
)
def test_bracketed_text_in_a_help_is_shown(path: list[str], command: Any) -> None:
    shown = _flat(CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400"}).output)
    texts = [getattr(p, "help", None) or "" for p in command.params] + [command.help or ""]
    lost = [
        fragment
        for text in texts
        for fragment in _BRACKETS.findall(_flat(text))
        if fragment not in shown
    ]
    assert not lost, f"tsguard {' '.join(path)} --help drops {lost}"
