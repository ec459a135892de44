"""Grafana's PostgreSQL query interpolation, reproduced so tests can run panel SQL.

Grafana cannot run on the development machines, so the only proof that a panel
works is to expand its SQL the way Grafana would and run it on the real
database. The rules below follow Grafana's sources (frontend template
variables, ``sqleng.Interpolate`` and the PostgreSQL ``macros.go``), including
their quirks: numbers printed like Go's ``%v``, ``time_bucket('300.000s',c)``
without a space, and ``$__timeGroup(...)`` directly followed by a comma
silently gaining ``AS "time"`` (pre-5.3 compatibility).

>>> from datetime import UTC, datetime
>>> q = expand(
...     "SELECT $__timeGroupAlias(ts, $__interval), 1 FROM t WHERE $__timeFilter(ts)"
...     " AND entity = '$entity'",
...     time_from=datetime(2026, 1, 1, tzinfo=UTC),
...     time_to=datetime(2026, 1, 2, tzinfo=UTC),
...     interval_ms=300_000,
...     variables={"entity": "o'brien"},
... )
>>> print(q)  # doctest: +NORMALIZE_WHITESPACE
SELECT floor(extract(epoch from ts)/300)*300 AS "time", 1 FROM t
WHERE ts BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-02T00:00:00Z' AND entity = 'o''brien'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

_MACRO_RE = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
# The frontend's variable syntaxes: $name, ${name}, ${name:format}, [[name]].
_VARIABLE_RE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^\}]+))?\}")
_GO_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


class MacroError(ValueError):
    """A macro Grafana would also reject (unknown name, missing argument, bad interval)."""


def go_float(value: float) -> str:
    """``fmt.Sprintf("%v", float64)``: shortest digits, exponent form from 1e+06 up.

    >>> [go_float(v) for v in (300.0, 0.5, 86400.0, 604800.0, 2592000.0, 1e-05)]
    ['300', '0.5', '86400', '604800', '2.592e+06', '1e-05']
    """
    dec = Decimal(repr(float(value))).normalize()
    sign, digits, exponent = dec.as_tuple()
    assert isinstance(exponent, int)
    exp10 = len(digits) + exponent - 1
    prefix = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        text = "".join(str(d) for d in digits)
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    return format(dec, "f")


def rfc3339nano(moment: datetime) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC time: trailing zero fractions dropped.

    >>> rfc3339nano(datetime(2026, 1, 1, 10, 0, 0, 120000, tzinfo=UTC))
    '2026-01-01T10:00:00.12Z'
    """
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def format_interval(interval_ms: int) -> str:
    """The text ``$__interval`` becomes (``gtime.FormatInterval``): largest whole unit.

    >>> [format_interval(ms) for ms in (20, 1000, 30_000, 300_000, 3_600_000, 86_400_000)]
    ['20ms', '1s', '30s', '5m', '1h', '1d']
    """
    for unit_ms, suffix in (
        (365 * 86_400_000, "y"),
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
        (1, "ms"),
    ):
        if interval_ms >= unit_ms:
            return f"{interval_ms // unit_ms}{suffix}"
    return "1ms"


def parse_interval(text: str) -> timedelta:
    """``gtime.ParseInterval``: ``5m``, ``1h30m``, ``500ms`` and the ``d``/``w``/``M``/``y`` units.

    >>> parse_interval("5m").total_seconds(), parse_interval("2d").total_seconds()
    (300.0, 172800.0)
    """
    calendar = re.fullmatch(r"(\d+)([dwMy])", text)
    if calendar:
        count, unit = int(calendar[1]), calendar[2]
        days = {"d": 1, "w": 7, "M": 30, "y": 365}[unit] * count
        return timedelta(days=days)
    parts = _GO_DURATION_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise MacroError(f"error parsing interval {text}")
    return timedelta(milliseconds=sum(float(n) * _UNITS_MS[u] for n, u in parts))


def interpolate_variables(
    sql: str,
    variables: Mapping[str, str],
    *,
    interval_ms: int,
    time_from: datetime,
    time_to: datetime,
) -> str:
    """The frontend step: template variables (SQL-escaped, unquoted) and built-ins.

    Single-value variables are inserted with ``'`` doubled and no quotes, so
    the query writes ``'$entity'``. Unknown names stay as they are (macros).
    """
    values: dict[str, str] = {
        "__interval": format_interval(interval_ms),
        "__interval_ms": str(interval_ms),
        "__from": str(int(time_from.timestamp() * 1000)),
        "__to": str(int(time_to.timestamp() * 1000)),
    }
    values.update({k: v.replace("'", "''") for k, v in variables.items()})

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[4]
        return values.get(name, match[0])

    return _VARIABLE_RE.sub(replace, sql)


def _evaluate(
    name: str, args: list[str], time_from: datetime, time_to: datetime, tsdb: bool
) -> str:
    if name == "__time":
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN '{rfc3339nano(time_from)}' AND '{rfc3339nano(time_to)}'"
    if name == "__timeFrom":
        return f"'{rfc3339nano(time_from)}'"
    if name == "__timeTo":
        return f"'{rfc3339nano(time_to)}'"
    if name in ("__timeGroup", "__timeGroupAlias"):
        if len(args) < 2:
            raise MacroError(f"macro {name} needs time column and interval")
        seconds = parse_interval(args[1].strip("'")).total_seconds()
        if tsdb:
            group = f"time_bucket('{seconds:.3f}s',{args[0]})"
        else:
            group = f"floor(extract(epoch from {args[0]})/{go_float(seconds)})*{go_float(seconds)}"
        return group + (' AS "time"' if name == "__timeGroupAlias" else "")
    if name == "__unixEpochFilter":
        start, end = int(time_from.timestamp()), int(time_to.timestamp())
        return f"{args[0]} >= {start} AND {args[0]} <= {end}"
    raise MacroError(f"unknown macro {name!r}")


def expand_macros(sql: str, *, time_from: datetime, time_to: datetime, timescaledb: bool) -> str:
    """The backend step (``macros.go``): ``$__name(args)`` to SQL."""
    original = sql

    def replace(match: re.Match[str]) -> str:
        name = match[1]
        if name == "__timeGroup":
            # Grafana looks the macro text up in the whole query: a comma right
            # after its first occurrence turns it into the alias form.
            index = original.find(match[0])
            end = index + len(match[0])
            if index >= 0 and end < len(original) and original[end] == ",":
                name = "__timeGroupAlias"
        args = [a.strip(" ") for a in match[2].split(",")]
        return _evaluate(name, args, time_from, time_to, timescaledb)

    return _MACRO_RE.sub(replace, sql)


def expand(
    sql: str,
    *,
    time_from: datetime,
    time_to: datetime,
    interval_ms: int,
    variables: Mapping[str, str] | None = None,
    timescaledb: bool = False,
) -> str:
    """A panel's ``rawSql`` as the PostgreSQL datasource sends it to the server."""
    text = interpolate_variables(
        sql, variables or {}, interval_ms=interval_ms, time_from=time_from, time_to=time_to
    )
    text = text.replace("$__unixEpochFrom()", str(int(time_from.timestamp())))
    text = text.replace("$__unixEpochTo()", str(int(time_to.timestamp())))
    return expand_macros(text, time_from=time_from, time_to=time_to, timescaledb=timescaledb)
