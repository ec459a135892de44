"""How the offline commands and the evaluation report show names they did not choose:
file, folder and series names.

A file name may hold anything but ``/`` and NUL. Printed through Rich with markup on,
``[bold red]x.csv`` showed as a red ``x.csv`` and a folder named ``[`` (series
``[/x].csv``) ended ``evaluate`` with a traceback after the whole run; printed raw, an
escape sequence in a name reached the terminal, and a bidirectional override turned
the rest of its line around (in the report too). So the offline consoles print without
markup, and names go through :func:`visible` first.

An output they cannot write is named too (:func:`writing`), standard output as much as
a file.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    from rich.console import Console

# Cc: control characters (escape, carriage return, newline, ...); Cf: format characters
# (bidirectional overrides and isolates, zero-width ones); Zl, Zp: line and paragraph
# separators
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})


def visible(text: str) -> str:
    """``text`` with control and format characters written as Python escapes.

    >>> visible("plant-1/temp.csv")
    'plant-1/temp.csv'
    >>> print(visible("a\\x1b[2Jb\\u202ec\\nd.csv"))
    a\\x1b[2Jb\\u202ec\\nd.csv
    """
    if text.isprintable():
        return text
    return "".join(
        ascii(char)[1:-1] if unicodedata.category(char) in _HIDDEN else char for char in text
    )


def text_name(name: str) -> str:
    """A file or folder name as text: the bytes of a name that are not UTF-8 (a Latin-1
    ``temp\\xe9rature.csv``), which Python keeps as lone surrogates, written as ``\\xe9``.
    Kept as they were, the core could not seed the series (``entity.encode()``), and
    ``evaluate`` ended after the whole run, with no JSON, table or report, on "'utf-8'
    codec can't encode character '\\udce9'".

    >>> text_name("temp\\udce9rature.csv"), text_name("température.csv")
    ('temp\\\\xe9rature.csv', 'température.csv')
    """
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def first_of(names: Sequence[str], shown: int = 5) -> str:
    """The first ``shown`` of ``names``, and how many more there are: a list cut short
    says so.

    >>> first_of(["a.csv", "b.csv"]), first_of([f"{k}.csv" for k in range(7)])
    ('a.csv, b.csv', '0.csv, 1.csv, 2.csv, 3.csv, 4.csv and 2 more')
    """
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def plain_console(stderr: bool = False) -> Console:
    """A Rich console that prints text as it is: no markup, so a ``[`` in a name is a
    ``[``, and no line breaks of its own (soft wrap), so a long path stays one piece to
    copy (Rich broke it at the console's width, 80 columns when not a terminal)."""
    from rich.console import Console

    return Console(stderr=stderr, markup=False, soft_wrap=True)


STDOUT = "standard output"


class OutputError(OSError):
    """An output that could not be written, named as the user knows it."""


@contextmanager
def writing(shown: str, flush: IO[Any] | None = None) -> Iterator[None]:
    """An ``OSError`` met while writing the output ``shown`` (a full disk, ``/dev/full``)
    becomes :class:`OutputError` ``cannot write <shown>: <why>``, which the commands say
    in one line (exit 2); one already named is left as it is. A reader that went away
    (``| head``) is left to Click, which ends the command quietly with exit 1.

    ``flush`` (standard output) is flushed before the block ends: what stayed in its
    buffer failed only as Python exited, with "Exception ignored" and exit 120.

    >>> with writing("/dev/full"):
    ...     raise OSError(28, "No space left on device")
    Traceback (most recent call last):
    ...
    stream_app.offline.terminal.OutputError: cannot write /dev/full: No space left on device
    """
    try:
        yield
        if flush is not None:
            flush.flush()
    except (BrokenPipeError, OutputError):
        raise
    except OSError as exc:
        raise OutputError(f"cannot write {shown}: {exc.strerror or exc}") from exc


class _NamedStdout:
    """Standard output whose write errors say which output failed (:func:`writing`)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        with writing(STDOUT):
            return self._stream.write(text)

    def flush(self) -> None:
        with writing(STDOUT):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def named_stdout(stream: TextIO) -> TextIO:
    """``stream`` (``sys.stdout``) raising :class:`OutputError` ``cannot write standard
    output: <why>`` where a write or flush fails. ``tsguard --version``, ``--help``, ``stack
    status`` and ``token issue`` printed through Click and Rich with no :func:`writing`
    around them, and ``> /dev/full`` ended each with a traceback (exit 1); with every
    command's standard output named so, the command line says it in one line (exit 2).

    >>> import io
    >>> class Full(io.StringIO):
    ...     def write(self, text):
    ...         raise OSError(28, "No space left on device")
    >>> named_stdout(Full()).write("x")
    Traceback (most recent call last):
    ...
    stream_app.offline.terminal.OutputError: cannot write standard output: No space left on device
    """
    return cast(TextIO, _NamedStdout(stream))
