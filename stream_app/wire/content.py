"""Checks of untrusted JSON that a schema cannot express.

- Duplicate keys: JSON parsers keep the last one silently, so
  ``{"entity": "a", "entity": "b"}`` would be read as ``b``. orjson gives no
  hook, so :func:`has_duplicate_keys` counts key ends in the raw bytes (a
  cheap upper bound) against the keys parsed, and only when they differ
  parses again with the standard library to know for sure.
- Depth, lone surrogates, NUL and non-finite numbers in a parsed document
  (:func:`content_problems`, iterative, so no ``RecursionError``).

>>> has_duplicate_keys(b'{"a": 1, "a": 2}', {"a": 2})
True
>>> has_duplicate_keys(b'{"a": ":", "b": 2}', {"a": ":", "b": 2})
False
>>> content_problems({"tags": {"k": "a\\x00b"}, "x": float("nan")})
[('/tags/k', 'text contains a NUL character'), ('/x', 'value is not a finite number')]
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32
# A closing quote followed by a colon ends a key; inside strings a quote is
# escaped, so the count is never below the true number of keys.
_KEY_END = re.compile(rb'"[ \t\n\r]*:')
# A quote followed by a blank: only then can a key end be spelled with blanks
# (one search; four ``in`` tests of two bytes each cost five times as much).
_QUOTE_BLANK = re.compile(rb'"[ \t\n\r]')
_SURROGATE = re.compile("[\ud800-\udfff]")


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice."""


class DuplicatedKeys(dict[str, Any]):
    """An object that named ``key`` twice (from :func:`loads_marking_duplicates`)."""

    def __init__(self, pairs: list[tuple[str, Any]], key: str) -> None:
        super().__init__(pairs)
        self.key = key


def _mark_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return DuplicatedKeys(pairs, key)
        seen.add(key)
    return dict(pairs)


def _int_like_orjson(text: str) -> int | float:
    # orjson reads integers outside 64 bits as floats; do the same so a
    # document reads alike whichever parser read it (and can be re-encoded).
    number = int(text)
    if -(2**63) <= number < 2**64:
        return number
    try:
        return float(number)
    except OverflowError:  # beyond the floats (309 digits and more): infinite, as 1e999
        return math.inf if number > 0 else -math.inf


def loads_marking_duplicates(raw: bytes | str, parse_constant: Any = None) -> Any:
    """Parse with the standard library; objects with a repeated key become DuplicatedKeys.

    Raises ValueError (bad JSON) or RecursionError (absurd nesting).
    """
    return json.loads(
        raw,
        object_pairs_hook=_mark_duplicates,
        parse_int=_int_like_orjson,
        parse_constant=parse_constant,
    )


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(f"duplicate key {key[:64]!r}")
        result[key] = value
    return result


def count_keys(value: Any, limit: int = MAX_DEPTH) -> int:
    """Keys of every object in ``value`` (objects nested deeper than ``limit`` not counted)."""
    total, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            continue
        if isinstance(item, dict):
            total += len(item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return total


def duplicate_key(raw: bytes | str) -> str | None:
    """The first duplicated key of a JSON text (``None`` if there is none or it does not parse)."""
    try:
        json.loads(raw, object_pairs_hook=_refuse_duplicates)
    except DuplicateKeyError as exc:
        return str(exc)
    except (ValueError, RecursionError):
        return None
    return None


def _count_flat(doc: Any) -> int | None:
    """Keys of an object whose values nest one level at most (a reading); None otherwise."""
    if type(doc) is not dict:
        return None
    total = len(doc)
    for value in doc.values():
        kind = type(value)
        if kind is dict:
            total += len(value)
            for inner in value.values():
                if type(inner) is dict or type(inner) is list:
                    return None
        elif kind is list:
            return None
    return total


def has_duplicate_keys(raw: bytes, parsed: Any) -> bool:
    """Whether ``raw`` (which parsed to ``parsed``) names a key twice in some object."""
    keys = _count_flat(parsed)
    if keys is None:
        keys = count_keys(parsed, limit=1 << 30)
    if _QUOTE_BLANK.search(raw) is None:
        upper_bound = raw.count(b'":')  # no blank between a key and its colon
    else:
        upper_bound = len(_KEY_END.findall(raw))
    if upper_bound == keys:
        return False
    return duplicate_key(raw) is not None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "text contains a NUL character"
    if _SURROGATE.search(text):
        return "text contains a lone surrogate (not valid Unicode)"
    return None


def _escape(part: object) -> str:
    # Pointers are sent back in error messages: they must be valid Unicode.
    text = str(part).encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("~", "~0").replace("/", "~1")


def content_problems(value: Any, max_depth: int = MAX_DEPTH) -> list[tuple[str, str]]:
    """``(JSON pointer, message)`` for nesting, text and numbers no reading may carry."""
    problems: list[tuple[str, str]] = []
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > max_depth:
            problems.append((path, f"nested deeper than {max_depth} levels"))
            continue
        if isinstance(item, str):
            message = _text_problem(item)
        elif isinstance(item, float):
            message = None if math.isfinite(item) else "value is not a finite number"
        elif isinstance(item, dict):
            message = None
            if isinstance(item, DuplicatedKeys):
                problems.append((path, f"duplicate key {item.key[:64]!r}"))
            for key, child in reversed(item.items()):
                pointer = f"{path}/{_escape(key)}"
                key_problem = _text_problem(key)
                if key_problem is not None:
                    problems.append((pointer, f"key: {key_problem}"))
                stack.append((child, pointer, depth + 1))
        elif isinstance(item, list):
            message = None
            indexed = reversed(list(enumerate(item)))
            stack.extend((child, f"{path}/{i}", depth + 1) for i, child in indexed)
        else:
            message = None
        if message is not None:
            problems.append((path, message))
    return problems
