"""Engine configuration: frozen dataclasses built once and passed down.

A configuration file (YAML or JSON, parsed by the caller) maps to
:meth:`EngineConfig.from_mapping`::

    seed: 0
    defaults: {detector: robust_seasonal, policy: {false_episode_days: 7}}
    rules:
      - pattern: "plant-*/temperature"      # fnmatch on "entity/metric"
        detector: ensemble
        params: {members: [robust_seasonal, river_hst], combine: max}
        policy: {direction: up, min_points: 2}
        limits: {lower: -40, upper: 150}
        cleaning: {allowed_lateness_s: 30}
    entities:                               # entity-level scoring, off unless matched
      - pattern: "plant-*/pump-*"           # fnmatch on the entity
        params: {window_size: 250}          # EntityScorer parameters

The first matching rule wins; the fields it leaves out come from ``defaults``.

>>> cfg = EngineConfig.from_mapping({"rules": [
...     {"pattern": "plant-*/temp*", "detector": "ewma_z", "limits": {"upper": 150}}]})
>>> s = cfg.resolve("plant-3/pump-7", "temperature")
>>> s.detector, s.limits.upper, s.policy.false_episode_days
('ewma_z', 150.0, 7.0)
>>> cfg.resolve("bank/fx", "price").detector
'robust_seasonal'
"""

from __future__ import annotations

import fnmatch
import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Literal

DirectionPolicy = Literal["up", "down", "both"]


def _frozen(params: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(params))


def _params_of(raw: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """A rule's ``params``: a mapping, or nothing written (``params:`` alone in YAML is
    null), the detector's own defaults."""
    params = raw["params"]
    if params is None:
        return _frozen({})
    if not isinstance(params, Mapping):
        raise ValueError(f"{where}: params must be a mapping, not {type(params).__name__}")
    return _frozen(params)


# The range of every number a rule's policy, cleaning and limits take (both ends
# included). A rule reaches every series it matches, and an absurd number was taken as it
# came: policy.min_points 1e30 (no episode could ever open), cleaning.warmup_points 1e30
# (no point ever scored), silence_intervals 1e300 (no silence ever seen). The detectors'
# own parameters have theirs (``BOUNDS`` in each detector's module).
POINTS_MAX = 1_000_000
DAYS_MAX = 3650.0  # ten years
POLICY_RANGES: dict[str, tuple[float, float]] = {
    "threshold": (0.0, 1.0),
    "close_threshold": (0.0, 1.0),
    "min_points": (1, 10_000),
    "cooldown_points": (1, 10_000),
    "max_points": (1, POINTS_MAX),
    "false_episode_days": (0.001, DAYS_MAX),
    "false_episode_points": (0, POINTS_MAX),
    "budget_growth_points": (1, 10 * POINTS_MAX),
    "budget_growth_days": (0, DAYS_MAX),
    "budget_growth_max": (1, 100),
}
CLEANING_RANGES: dict[str, tuple[float, float]] = {
    "allowed_lateness_s": (0, 30 * 86400),
    "silence_intervals": (1, 100_000),
    "stuck_min_points": (1, 100_000),
    "stuck_probability": (0.0, 1.0),
    "warmup_points": (0, 100_000),
}
# a value beyond +-1e150 is out_of_limits whatever the limits (cleaning.VALUE_MAX)
LIMITS_RANGES: dict[str, tuple[float, float]] = {"lower": (-1e150, 1e150), "upper": (-1e150, 1e150)}


def check_ranges(config: Any, ranges: Mapping[str, tuple[float, float]]) -> None:
    """A ``ValueError`` naming the first field of ``config`` outside its range in ``ranges``
    (a field that is ``None`` is not set).

    >>> check_ranges(PolicyConfig(), POLICY_RANGES)
    >>> PolicyConfig(min_points=10**30)
    Traceback (most recent call last):
    ...
    ValueError: min_points must be within 1 and 10000, not 1e+30
    """
    for key, (lo, hi) in ranges.items():
        value = getattr(config, key)
        if value is not None and not lo <= value <= hi:  # (NaN too)
            raise ValueError(
                f"{key} must be within {_number(lo)} and {_number(hi)}, not {_number(value)}"
            )


def _number(value: float) -> str:
    """A number in a message, short: ``1e+30``, not 31 digits (an int beyond a float's
    range as its repr, cut short)."""
    try:
        return f"{value:g}"
    except OverflowError:
        return shown_value(value)


@dataclass(frozen=True, slots=True)
class Limits:
    """Physical limits; values outside are rejected as ``out_of_limits`` (as are values
    beyond +-1e150 whatever the limits)."""

    lower: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        check_ranges(self, LIMITS_RANGES)  # finite too: +-inf and NaN are out of range
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"lower {self.lower} is above upper {self.upper}")


@dataclass(frozen=True, slots=True)
class CleaningConfig:
    """Per-series cleaning.

    ``allowed_lateness_s``: a point older than the newest accepted one by at most
    this much is accepted (scored on arrival, not reordered); older is ``late``.
    ``silence_intervals``: silence episode after this many typical intervals
    without data (checked by ``advance``). ``stuck_probability``: a run of
    identical values opens a ``stuck`` episode once a run that long has at most
    this probability given the runs of one value the series ended lately (and is
    at least ``stuck_min_points`` long; see :mod:`stream_app.core.cleaning`).
    ``warmup_points``: points scored 0 with status ``warmup`` while a new series
    is learned. ``schedule``: when the series is expected to send data, e.g.
    ``"mon-fri 09:30-16:00"`` (UTC; days, hours or both); only time inside it
    counts towards silence. Without one, the series'
    own activity pattern (times of day and weekdays it has been live) is learned
    once it has a day of history, and forgets a time or weekday not seen for one to
    two weeks of its readings.
    """

    allowed_lateness_s: float = 0.0
    silence_intervals: float = 10.0
    stuck_min_points: int = 20
    stuck_probability: float = 1e-4
    warmup_points: int = 30
    schedule: str = ""

    def __post_init__(self) -> None:
        if not 0.0 < self.stuck_probability < 1.0:  # both ends out, unlike the range's
            raise ValueError("stuck_probability must be between 0 and 1")
        check_ranges(self, CLEANING_RANGES)
        parse_schedule(self.schedule)  # fail at start-up, not on the first silence


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# the longest period a false-alarm budget in points stretches to (daily or monthly data)
BUDGET_MAX_DAYS = 90.0


def parse_schedule(text: str) -> tuple[int, float, float] | None:
    """``"mon-fri 09:30-16:00"`` -> (weekday bits, Monday = bit 0; open s; close s), UTC.

    >>> parse_schedule("mon-fri 09:30-16:00")
    (31, 34200.0, 57600.0)
    >>> parse_schedule("sat,sun"), parse_schedule("")
    ((96, 0.0, 86400.0), None)
    """
    if not text.strip():
        return None
    days, start, end = 0, 0.0, 86400.0
    for part in text.lower().split():
        if ":" in part:
            first, _, last = part.partition("-")
            start, end = _clock(first), _clock(last)
            if not 0.0 <= start < end <= 86400.0:
                raise ValueError(f"schedule hours {part!r}: need 00:00 <= open < close <= 24:00")
            continue
        for item in part.split(","):
            first, _, last = item.partition("-")
            if first not in _DAYS or (last and last not in _DAYS):
                raise ValueError(f"schedule days {item!r}: use mon..sun, ranges and commas")
            a, b = _DAYS.index(first), _DAYS.index(last or first)
            for d in range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)]:
                days |= 1 << d
    return (days or 0x7F, start, end)


def _clock(text: str) -> float:
    hours, _, minutes = text.partition(":")
    try:
        return int(hours) * 3600.0 + int(minutes or 0) * 60.0
    except ValueError:
        raise ValueError(f"schedule time {text!r}: use HH:MM") from None


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Episode policy; thresholds are on the calibrated score.

    **The budget.** By default the opening threshold follows from a false-alarm
    budget, not a fixed score: at most about one false episode per series per
    ``false_episode_days`` days of data *at the series' own interval*, and per
    ``false_episode_points`` of its points where that is longer (a coarse
    series: 672 points are four weeks of hourly data), though never per more
    than ``BUDGET_MAX_DAYS`` days (daily or monthly data). That period is
    :meth:`budget_period`. A score is ``1 - p`` with ``p`` the estimated tail
    probability of the point, so a series with interval ``dt`` opens at
    ``p <= dt / period``: 0.9995 for 5-minute data, 0.99999835 for 1-second
    data, 0.99851 for hourly data. Setting ``threshold`` fixes the score instead.
    The interval is the series' *pace*, its mean interval while live (see
    :mod:`stream_app.core.cleaning`): for readings on a grid, the grid's step; for
    readings at irregular times, the time they take on average, so the budget is
    per unit of time whether the points come evenly or not.

    Why a floor in points: the false alarms of a series come per point, the
    anomalies per incident. An hourly series paging once a week falsely has
    one false alarm in 168 readings; most of its alarms are then false, and its
    few real incidents are lost among them.

    The same holds over a series' life: false alarms add up with every week it
    is watched, its incidents do not come faster. So once a series has seen
    both ``budget_growth_points`` points and ``budget_growth_days`` days of them
    (two weeks at 5 minutes), its period grows in proportion to the points seen,
    up to ``budget_growth_max`` times (at 5 minutes: one false episode per two
    weeks four weeks in, per three weeks from six weeks on): :meth:`budget_growth`.
    Points, so that a slow series (hourly, daily, monthly) whose history is a few
    hundred or thousand points keeps its period however many years they span;
    days, so that a fast one (seconds, minutes) first sees its weekly cycle twice.

    An episode opens after ``min_points`` consecutive points at or above the
    opening threshold (in ``direction``), stays open while points reach
    ``close_threshold`` (hysteresis), and resolves as soon as the series is
    back to normal: ``cooldown_points`` consecutive points below it. A level
    that stays shifted is learned by the detector, so its episode resolves once
    the new level is normal. ``max_points`` is a last safety valve: a longer
    episode is force-resolved and can only reopen after a normal point.
    """

    threshold: float | None = None
    close_threshold: float = 0.99
    direction: DirectionPolicy = "both"
    min_points: int = 1
    cooldown_points: int = 1
    max_points: int = 1440
    false_episode_days: float = 7.0
    false_episode_points: float = 672.0
    budget_growth_points: float = 4032.0
    budget_growth_days: float = 14.0
    budget_growth_max: float = 3.0

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 < self.close_threshold <= self.threshold < 1.0:
            raise ValueError("need 0 < close_threshold <= threshold < 1")
        if not 0.0 < self.close_threshold < 1.0:
            raise ValueError("need 0 < close_threshold < 1")
        if self.direction not in ("up", "down", "both"):
            raise ValueError(
                f"direction must be up, down or both, not {shown_value(self.direction)}"
            )
        check_ranges(self, POLICY_RANGES)

    def budget_growth(self, points: float, interval_s: float) -> float:
        """How many times longer the budget period is once a series sampled every
        ``interval_s`` seconds has seen ``points`` points.

        >>> cfg = PolicyConfig()
        >>> [cfg.budget_growth(p, 300.0) for p in (4032, 6048, 12096, 1e6)]  # 5 min: 2, 3, 6 weeks
        [1.0, 1.5, 3.0, 3.0]
        >>> cfg.budget_growth(6048, 60.0), cfg.budget_growth(30240, 60.0)  # 1 min: 4.2, 21 days
        (1.0, 1.5)
        """
        # from the later of budget_growth_points points and budget_growth_days days
        per_day = 86400.0 / (interval_s if interval_s > 1e-3 else 1e-3)
        start = self.budget_growth_days * per_day
        if start < self.budget_growth_points:
            start = self.budget_growth_points
        growth = points / start
        if growth <= 1.0:
            return 1.0
        return growth if growth < self.budget_growth_max else self.budget_growth_max

    def budget_period(self, interval_s: float, points: float = 0.0) -> float:
        """Seconds of data per false episode allowed, for a series sampled every ``interval_s``
        that has seen ``points`` points (see :meth:`budget_growth`).

        >>> PolicyConfig().budget_period(300.0) / 86400  # 5-minute data: the 7 days
        7.0
        >>> PolicyConfig().budget_period(3600.0) / 86400  # hourly: 672 points
        28.0
        >>> PolicyConfig().budget_period(86400.0) / 86400  # daily: at most 90 days
        90.0
        >>> PolicyConfig().budget_period(300.0, 8064) / 86400  # 5 minutes, four weeks in
        14.0
        """
        days = self.false_episode_days * 86400.0
        # an interval that is not a number or not positive counts as 1 ms
        floor = self.false_episode_points * (interval_s if interval_s > 1e-3 else 1e-3)
        if floor > BUDGET_MAX_DAYS * 86400.0:
            floor = BUDGET_MAX_DAYS * 86400.0
        period = days if days >= floor else floor
        return period * self.budget_growth(points, interval_s) if points else period

    def open_threshold(self, interval_s: float, points: float = 0.0) -> float:
        """The opening score for a series sampled every ``interval_s`` seconds that has
        seen ``points`` points.

        >>> round(PolicyConfig().open_threshold(300.0), 6)
        0.999504
        >>> round(PolicyConfig().open_threshold(3600.0), 6)
        0.998512
        >>> PolicyConfig(threshold=0.999).open_threshold(300.0)
        0.999
        """
        if self.threshold is not None:
            return self.threshold
        p = max(interval_s, 1e-3) / self.budget_period(interval_s, points)
        return max(self.close_threshold, 1.0 - min(p, 0.5))


@dataclass(frozen=True, slots=True)
class SeriesConfig:
    """The effective settings of one series (defaults merged with its rule)."""

    detector: str = "robust_seasonal"
    params: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))
    policy: PolicyConfig = PolicyConfig()
    limits: Limits = Limits()
    cleaning: CleaningConfig = CleaningConfig()


@dataclass(frozen=True, slots=True)
class Rule:
    """Settings for every series whose ``entity/metric`` matches ``pattern``."""

    pattern: str
    detector: str | None = None
    params: Mapping[str, Any] | None = None
    policy: PolicyConfig | None = None
    limits: Limits | None = None
    cleaning: CleaningConfig | None = None


@dataclass(frozen=True, slots=True)
class EntityRule:
    """Entity-level scoring (``EntityScorer``) for entities matching ``pattern``.

    Off unless a rule matches: it costs about one more series per reading in
    time and a few KB of state per entity.
    """

    pattern: str
    params: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Defaults, per-pattern rules and the seed of every random choice."""

    defaults: SeriesConfig = SeriesConfig()
    rules: tuple[Rule, ...] = ()
    seed: int = 0
    entities: tuple[EntityRule, ...] = ()

    @classmethod
    def default(cls) -> EngineConfig:
        """One configuration for every series: ``robust_seasonal`` and the default policy."""
        return cls()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> EngineConfig:
        """Build from a parsed YAML/JSON mapping; unknown keys raise ``ValueError``."""
        _check_keys(data, {"seed", "defaults", "rules", "entities"}, "config")
        defaults = _series_from(data.get("defaults", {}), SeriesConfig(), "defaults")
        _check_detector(defaults.detector, defaults.params, "defaults")
        rules = []
        for i, raw in enumerate(_listed(data, "rules")):
            where = f"rules[{i}]"
            if not isinstance(raw, Mapping) or "pattern" not in raw:
                raise ValueError(f"{where}: a rule needs a 'pattern'")
            _check_keys(raw, {"pattern", *_SERIES_KEYS}, where)
            # the parameters the rule's series will get: its own, else the defaults'
            own = _params_of(raw, where) if "params" in raw else None
            params = defaults.params if own is None else own
            _check_detector(raw.get("detector", defaults.detector), params, where)
            rules.append(
                Rule(
                    pattern=str(raw["pattern"]),
                    detector=str(raw["detector"]) if "detector" in raw else None,
                    params=own,
                    policy=_sub(PolicyConfig, raw.get("policy"), defaults.policy, where),
                    limits=_sub(Limits, raw.get("limits"), defaults.limits, where),
                    cleaning=_sub(CleaningConfig, raw.get("cleaning"), defaults.cleaning, where),
                )
            )
        entities = []
        for i, raw in enumerate(_listed(data, "entities")):
            where = f"entities[{i}]"
            if not isinstance(raw, Mapping) or "pattern" not in raw:
                raise ValueError(f"{where}: an entity rule needs a 'pattern'")
            _check_keys(raw, {"pattern", "params"}, where)
            params = _params_of(raw, where) if "params" in raw else _frozen({})
            _check_entity(params, where)
            entities.append(EntityRule(str(raw["pattern"]), params))
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"config: seed must be a whole number, not {shown_value(seed)}")
        return cls(
            defaults=defaults,
            rules=tuple(rules),
            seed=seed,
            entities=tuple(entities),
        )

    def entity_params(self, entity: str) -> Mapping[str, Any] | None:
        """Parameters of entity-level scoring for ``entity``, ``None`` when it is off.

        >>> cfg = EngineConfig.from_mapping({"entities": [{"pattern": "plant-*"}]})
        >>> dict(cfg.entity_params("plant-3/pump-7") or {}), cfg.entity_params("bank/fx")
        ({}, None)
        """
        for rule in self.entities:
            if fnmatch.fnmatchcase(entity, rule.pattern):
                return rule.params
        return None

    def resolve(self, entity: str, metric: str) -> SeriesConfig:
        """The settings of series ``(entity, metric)``: first matching rule wins."""
        key = f"{entity}/{metric}"
        for rule in self.rules:
            if fnmatch.fnmatchcase(key, rule.pattern):
                d = self.defaults
                return SeriesConfig(
                    detector=rule.detector or d.detector,
                    params=rule.params if rule.params is not None else d.params,
                    policy=rule.policy or d.policy,
                    limits=rule.limits or d.limits,
                    cleaning=rule.cleaning or d.cleaning,
                )
        return self.defaults


_SERIES_KEYS = {"detector", "params", "policy", "limits", "cleaning"}


def _check_entity(params: Mapping[str, Any], where: str) -> None:
    """An entity rule's parameters are the entity scorer's, within their bounds."""
    from .entity import check_entity_params

    try:
        check_entity_params(params)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _check_detector(name: Any, params: Any, where: str) -> None:
    """The detector is registered and accepts ``params`` (built once to know)."""
    from .detectors import REGISTRY

    if params is not None and not isinstance(params, Mapping):
        raise ValueError(f"{where}: params must be a mapping")
    if str(name) not in REGISTRY.names():
        raise ValueError(f"{where}: unknown detector {str(name)[:64]!r}; one of {REGISTRY.names()}")
    if params:
        try:
            REGISTRY.create(str(name), params, 0)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{where}: {exc}") from exc


def _listed(data: Mapping[str, Any], key: str) -> list[Any]:
    """``data[key]``, a list (absent or empty: none); a ``ValueError`` if it is not one."""
    items = data.get(key) or []
    if not isinstance(items, list):
        raise ValueError(f"config: {key} must be a list, not {type(items).__name__}")
    return items


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 2, 80, 80
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 4


def shown_value(value: Any) -> str:
    """A configured value in an error message, cut short: YAML's aliases let 300 bytes
    of file make a list of 387 million items, whose whole repr (``seed: [&a [...], ...]``)
    took gigabytes before the message was printed.

    >>> shown_value([[[1]]]), shown_value("x" * 100)[-5:], shown_value(list(range(100)))
    ('[[[...]]]', "xxxx'", '[0, 1, 2, 3, ...]')
    """
    return _SHOWN.repr(value)


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed {sorted(allowed)}")


def _sub(cls: Any, raw: Any, base: Any, where: str) -> Any:
    """``base`` with the fields in ``raw`` replaced (``None`` when ``raw`` is absent)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: {cls.__name__} must be a mapping")
    types = {f.name: str(f.type) for f in fields(cls)}
    _check_keys(raw, set(types), f"{where}.{cls.__name__}")
    try:
        return replace(base, **{k: _coerce(types[k], k, v) for k, v in raw.items()})
    except (TypeError, ValueError) as exc:
        # the section named: "lower must be within ..." alone does not say which lower
        raise ValueError(f"{where}.{_SECTIONS.get(cls.__name__, cls.__name__)}: {exc}") from exc


_SECTIONS = {"PolicyConfig": "policy", "CleaningConfig": "cleaning", "Limits": "limits"}


def _coerce(kind: str, key: str, value: Any) -> Any:
    """A value from YAML/JSON as the field's type (``kind``, its annotation): a number for
    a float, a whole number for an int; a ``ValueError`` naming ``key`` otherwise (the
    string "nan" for a threshold failed in a comparison, 1.5 points ran as 1).

    >>> _coerce("float | None", "threshold", 1), _coerce("int", "min_points", "2")
    (1.0, 2)
    >>> _coerce("int", "min_points", 1.5)
    Traceback (most recent call last):
    ...
    ValueError: min_points must be a whole number, not 1.5
    """
    names = {part.strip() for part in kind.split("|")}
    if value is None:
        if "None" in names:
            return None
        # null (``warmup_points:`` alone in YAML) failed later in a comparison
        raise ValueError(f"{key} needs a value, not null")
    if isinstance(value, str) and names & {"float", "int"}:
        # a quoted number ("0.999") is still the number; "nan" or "abc" is not one
        try:
            parsed = float(value)
        except ValueError:
            parsed = math.nan
        if math.isfinite(parsed):
            value = parsed
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if "float" in names:
        if not number:
            raise ValueError(f"{key} must be a number, not {shown_value(value)}")
        try:
            return float(value)
        except OverflowError:  # a whole number of 400 digits in YAML
            raise ValueError(f"{key} is too large: {shown_value(value)}") from None
    if "int" in names:
        if not number or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{key} must be a whole number, not {shown_value(value)}")
        return int(value)
    if "str" in names and not isinstance(value, str):
        raise ValueError(f"{key} must be text, not {shown_value(value)}")
    return value


def _series_from(raw: Any, base: SeriesConfig, where: str) -> SeriesConfig:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a mapping")
    _check_keys(raw, _SERIES_KEYS, where)
    return SeriesConfig(
        detector=str(raw.get("detector", base.detector)),
        params=_params_of(raw, where) if "params" in raw else base.params,
        policy=_sub(PolicyConfig, raw.get("policy"), base.policy, where) or base.policy,
        limits=_sub(Limits, raw.get("limits"), base.limits, where) or base.limits,
        cleaning=_sub(CleaningConfig, raw.get("cleaning"), base.cleaning, where) or base.cleaning,
    )
