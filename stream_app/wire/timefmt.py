"""Event time on the wire: RFC 3339 text or epoch seconds, within one range.

Text must be a full RFC 3339 ``date-time`` (``T`` separator, seconds, and a
``Z`` or ``±HH:MM`` offset); dates alone, week dates, basic format and naive
times are refused. Text and numbers alike run from the epoch to the end of
9999 in UTC, so ``0001-01-01T00:00:00Z`` is refused like a negative number is,
and so is ``1970-01-01T00:00:00+05:00`` (five hours before the epoch) and
``9999-12-31T23:59:59-01:00`` (the year 10000). Every failure is a
``ValueError`` with a readable message.

>>> parse_timestamp("2026-11-26T10:00:00Z")
1795687200.0
>>> parse_timestamp("2026-11-26T12:00:00.5+02:00")
1795687200.5
>>> parse_timestamp(1795687200.5)
1795687200.5
>>> format_rfc3339(1795687200.5)
'2026-11-26T10:00:00.500000Z'
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Any

MIN_YEAR = 1970
MAX_YEAR = 9999
MAX_EPOCH = 253_402_300_800.0  # 10000-01-01T00:00:00Z, exclusive
MIN_EPOCH = -62_135_596_800.0  # 0001-01-01T00:00:00Z, the first time a file may give
MIN_TEXT, MAX_TEXT = 20, 40
_MICROS_EXACT = 2.0**53 / 1e6  # below it (the year 2255), microseconds count exactly

# Every field range in the pattern, so datetime.fromisoformat (fast, but laxer:
# it takes "+01:60" and other ISO 8601 forms) only checks the day of the month.
_STRICT = re.compile(
    r"(?:19[7-9][0-9]|[2-9][0-9]{3})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
# a date and time of day without Z or an offset
_NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?", re.ASCII)
# a fraction of a second with more digits than microseconds hold
_SUB_MICRO = re.compile(r"\.[0-9]{7}")
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in(year: int, month: int) -> int:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 29 if month == 2 and leap else _DAYS[month - 1]


def parse_rfc3339(text: str) -> float:
    """Epoch seconds of an RFC 3339 ``date-time``; ValueError for anything else.

    >>> parse_rfc3339("1970-01-01T05:00:00+05:00")
    0.0
    >>> parse_rfc3339("1970-01-01T00:00:00+23:59")
    Traceback (most recent call last):
    ValueError: '1970-01-01T00:00:00+23:59' is not a time from 1970 to the end of 9999 in UTC
    """
    ts = _read_rfc3339(text)
    # the years in the text are 1970 to 9999, but an offset moves the instant: the
    # reading was taken (202) and stored as an observation on 1969-12-31, which a
    # number (-86340) would never be
    if not 0.0 <= ts < MAX_EPOCH:
        raise ValueError(f"{text!r} is not a time from 1970 to the end of 9999 in UTC")
    return ts


def _read_rfc3339(text: str) -> float:
    if MIN_TEXT <= len(text) <= MAX_TEXT:
        upper = text.upper()
        if _STRICT.fullmatch(upper):
            try:
                ts = datetime.fromisoformat(upper).timestamp()
            except ValueError as exc:  # the day of the month
                raise ValueError(f"{text!r} is not a calendar date-time: {exc}") from None
            # fromisoformat cuts digits past the microsecond, a number is rounded to it
            # (to_microsecond): one instant written both ways was two points
            # (28 characters at least: "2026-12-05T10:00:00.0000009Z")
            if (
                len(upper) >= 28
                and _SUB_MICRO.search(upper)
                and -_MICROS_EXACT < ts < _MICROS_EXACT
            ):
                return to_microsecond(_explain(text))
            return ts
    return _explain(text)


def _explain(text: str) -> float:
    """The slow, field-by-field parse: raises with the precise reason."""
    if _NAIVE.fullmatch(text):
        # said first: a local time without its offset (a device's wall clock) is 19
        # characters, and "must be 20 to 40 characters" did not say what was missing
        raise ValueError(f"{text[:40]!r} has no time zone: add Z or an offset such as +01:00")
    if not MIN_TEXT <= len(text) <= MAX_TEXT:
        raise ValueError(f"timestamp text must be {MIN_TEXT} to {MAX_TEXT} characters")
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text[:40]!r} is not RFC 3339 (YYYY-MM-DDTHH:MM:SS[.fraction] and Z or ±HH:MM)"
        )
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"year {year} is outside {MIN_YEAR}..{MAX_YEAR}")
    if not 1 <= month <= 12 or not 1 <= day <= _days_in(year, month):
        raise ValueError(f"{year:04d}-{month:02d}-{day:02d} is not a calendar date")
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"{hour:02d}:{minute:02d}:{second:02d} is not a time of day")
    offset = 0
    if match[8]:
        off_h, off_m = int(match[9]), int(match[10])
        if off_h > 23 or off_m > 59:
            raise ValueError(f"offset {match[8]}{off_h:02d}:{off_m:02d} is out of range")
        offset = (off_h * 3600 + off_m * 60) * (1 if match[8] == "+" else -1)
    days = date(year, month, day).toordinal() - _EPOCH_DAY
    whole = days * 86400 + hour * 3600 + minute * 60 + second - offset
    return whole + float("0" + match[7]) if match[7] else float(whole)


def to_microsecond(ts: float) -> float:
    """``ts`` to the microsecond, as RFC 3339 text is read and PostgreSQL stores it: two
    times 0.3 us apart were two points to the worker and one row to the database.

    >>> to_microsecond(1700000000.0000003), to_microsecond(-1.0000004)
    (1700000000.0, -1.0)
    """
    if -_MICROS_EXACT < ts < _MICROS_EXACT and ts != int(ts):
        return round(ts * 1e6) / 1e6
    return ts


def parse_timestamp(value: Any) -> float:
    """RFC 3339 text or epoch seconds (0 to the end of year 9999) to epoch seconds."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be a string or a number, not a boolean")
    if isinstance(value, int | float):
        ts = float(value)
        if not (math.isfinite(ts) and 0 <= ts < MAX_EPOCH):
            raise ValueError(f"timestamp {value!r} is not epoch seconds from 0 to the year 9999")
        return to_microsecond(ts)
    if isinstance(value, str):
        return parse_rfc3339(value)
    raise ValueError(
        f"timestamp must be RFC 3339 text or epoch seconds, got {type(value).__name__}"
    )


# A number in a file's time column is read in the unit that puts it in a plausible era:
# 1e11 s is the year 5138, and so are 1e14 ms and 1e17 us; 1e11 ms is 1973.
_EPOCH_UNITS = ((1e11, 1.0), (1e14, 1e-3), (1e17, 1e-6))


class TimestampRangeError(ValueError):
    """A number that is a time outside the years 1 to 9999 in every unit it could be in."""


def epoch_seconds_from_number(number: float) -> float:
    """Epoch seconds from a number in a file's time column: seconds, or, when it is too
    large to be seconds, milliseconds, microseconds or nanoseconds (what databases,
    Kafka, pandas and Prometheus export). The wire itself takes seconds only.

    >>> [epoch_seconds_from_number(x) for x in (1.7e9, 1.7e12, 1.7e15, 1.7e18)]
    [1700000000.0, 1700000000.0, 1700000000.0, 1700000000.0]
    >>> epoch_seconds_from_number(-2e12)  # milliseconds before 1970
    -2000000000.0
    >>> epoch_seconds_from_number(1e26)  # nanoseconds past the year 9999
    Traceback (most recent call last):
    stream_app.wire.timefmt.TimestampRangeError: 1e+26 is not a time from the year 1 to the year 9999
    """
    size = number if number >= 0.0 else -number
    seconds = number * 1e-9
    for below, unit in _EPOCH_UNITS:
        if size < below:
            seconds = number * unit
            break
    if not MIN_EPOCH <= seconds < MAX_EPOCH:  # also false for NaN
        raise TimestampRangeError(f"{number!r} is not a time from the year 1 to the year 9999")
    # to the microsecond, as the wire reads a number: a file of rows 0.3 us apart was
    # scored row by row by replay, while the stream took them as one time (duplicates)
    return to_microsecond(seconds)


def format_rfc3339(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC text (microseconds when not whole)."""
    text = datetime.fromtimestamp(ts, tz=UTC).isoformat()
    return text.replace("+00:00", "Z")
