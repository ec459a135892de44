"""Splitting a migration file into statements, without a SQL parser.

Migrations run one statement at a time in autocommit mode (TimescaleDB's
continuous aggregates refuse a transaction block), so a file must be cut at
its top-level semicolons. A semicolon does not end a statement inside a
quoted string (``'...'``, ``E'...'`` with backslash escapes), a quoted
identifier (``"..."``), a dollar-quoted body (``$$...$$``, ``$fn$...$fn$``),
a line comment (``-- ...``) or a block comment (``/* ... */``, nested).
Chunks holding only comments and whitespace are dropped.

>>> split_statements("SELECT ';'; -- a; comment\\nSELECT $$ ; $$;")
["SELECT ';'", '-- a; comment\\nSELECT $$ ; $$']
"""

from __future__ import annotations

import re

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$]")


class SqlSplitError(ValueError):
    """An unterminated string, identifier, dollar quote or comment."""


def _end_of_quoted(text: str, start: int, quote: str, backslashes: bool) -> int:
    """Index just past the closing ``quote`` of a literal opened at ``start``."""
    i = start + 1
    while i < len(text):
        char = text[i]
        if backslashes and char == "\\":
            i += 2
            continue
        if char == quote:
            if i + 1 < len(text) and text[i + 1] == quote:  # doubled quote is an escape
                i += 2
                continue
            return i + 1
        i += 1
    raise SqlSplitError(f"unterminated {quote} quote starting at offset {start}")


def _end_of_block_comment(text: str, start: int) -> int:
    depth, i = 0, start
    while i < len(text):
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise SqlSplitError(f"unterminated block comment starting at offset {start}")


def _is_only_comments(chunk: str) -> bool:
    i = 0
    while i < len(chunk):
        if chunk[i].isspace():
            i += 1
        elif chunk.startswith("--", i):
            newline = chunk.find("\n", i)
            i = len(chunk) if newline < 0 else newline + 1
        elif chunk.startswith("/*", i):
            i = _end_of_block_comment(chunk, i)
        else:
            return False
    return True


def split_statements(text: str) -> list[str]:
    """The statements of ``text`` in order, stripped, without their semicolons."""
    statements: list[str] = []
    begin = i = 0
    while i < len(text):
        char = text[i]
        if char == ";":
            statements.append(text[begin:i])
            begin = i = i + 1
        elif char == "'":
            escaped = i > 0 and text[i - 1] in "eE" and not _IDENT_CHAR.match(text[i - 2 : i - 1])
            i = _end_of_quoted(text, i, "'", backslashes=escaped)
        elif char == '"':
            i = _end_of_quoted(text, i, '"', backslashes=False)
        elif text.startswith("--", i):
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline + 1
        elif text.startswith("/*", i):
            i = _end_of_block_comment(text, i)
        elif char == "$" and not (i > 0 and _IDENT_CHAR.match(text[i - 1])):
            tag = _DOLLAR_TAG.match(text, i)
            if tag is None:  # $1 and the like: a parameter, not a quote
                i += 1
                continue
            close = text.find(tag[0], tag.end())
            if close < 0:
                raise SqlSplitError(f"unterminated dollar quote {tag[0]} at offset {i}")
            i = close + len(tag[0])
        else:
            i += 1
    statements.append(text[begin:])
    return [s.strip() for s in statements if not _is_only_comments(s)]
