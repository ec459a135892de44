"""The detector contract and the registry of detectors.

A detector scores a point against what it learned so far and then learns
from it, in one call (so no look-ahead is possible)::

    score, expected, lower, upper, z = detector.update(ts, value)

``score`` is calibrated in [0, 1] (1 - estimated tail probability),
``expected``/``lower``/``upper`` the forecast and its band, ``z`` the signed
deviation in robust standard deviations (for explanations and direction).
Detectors only see finite, cleaned values. Their state goes to bytes with
``to_bytes()`` and comes back with the registry's ``load``.

>>> reg = DetectorRegistry()
>>> reg.names()
[]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Update = tuple[float, float, float, float, float]


class Detector(Protocol):
    """What every registered detector provides."""

    @property
    def name(self) -> str:
        """The registered name (a class attribute of each detector)."""
        ...

    def update(self, ts: float, value: float) -> Update:
        """Score ``value`` at ``ts`` against the past, then learn from it."""
        ...

    def to_bytes(self) -> bytes:
        """The detector's learned state (parameters come from the config)."""
        ...


Factory = Callable[[Mapping[str, Any], int], Detector]
Loader = Callable[[bytes, Mapping[str, Any], int], Detector]


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """How to build one detector; ``test_params`` keep contract tests fast."""

    name: str
    factory: Factory
    loader: Loader
    test_params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


class DetectorRegistry:
    """Detectors by name. Pass your own to :class:`SeriesProcessor` in tests."""

    __slots__ = ("_specs",)

    def __init__(self) -> None:
        self._specs: dict[str, DetectorSpec] = {}

    def register(self, spec: DetectorSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"detector {spec.name!r} is already registered")
        self._specs[spec.name] = spec

    def names(self) -> list[str]:
        return sorted(self._specs)

    def spec(self, name: str) -> DetectorSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"unknown detector {name!r}; known: {self.names()}") from None

    def create(self, name: str, params: Mapping[str, Any], seed: int) -> Detector:
        return self.spec(name).factory(params, seed)

    def load(self, name: str, blob: bytes, params: Mapping[str, Any], seed: int) -> Detector:
        return self.spec(name).loader(blob, params, seed)


# sigma is never under this share of the expected value's magnitude (the last digits of
# a double, and of a float32 reading, are no signal). It was a millionth: a pressure of
# 101,325 Pa read to 0.01 Pa, a coordinate in degrees, any series far from zero with
# little noise had its sigma raised to the floor, and a shift of ten noise sigmas there
# went unseen; a billionth keeps such a series judged by its own noise (the development
# and generated runs score the same)
RELATIVE_SIGMA_FLOOR = 1e-9

# a numeric parameter's inclusive bounds, and whether it is a whole number
Bounds = tuple[float, float, bool]

# shared by the detectors that have them: a learning rate of the calibrator, and the
# tail probability of the band (the band's width is log10(0.1 / band_p) decades)
CAL_RATE: Bounds = (1e-6, 1.0, False)
BAND_P: Bounds = (1e-12, 0.05, False)
RATE: Bounds = (1e-6, 1.0, False)  # an exponential smoothing weight
CLIP: Bounds = (0.5, 100.0, False)  # a winsorising limit, in sigma


# A forest's nodes (trees x 2 ** height) bound one series' state: 10 trees of height 8
# (River's defaults) pack to about 45 kB compressed, 50 of height 12 to 3 MB, more than a
# Kafka message holds, so the worker could never save it
FOREST_NODES_MAX = 2**14


def check_forest(params: Mapping[str, Any], defaults: Mapping[str, Any], name: str) -> None:
    """Refuse a forest whose trees x 2 ** height passes :data:`FOREST_NODES_MAX`.

    >>> check_forest({"n_trees": 50, "height": 8}, {"n_trees": 10, "height": 8}, "d")
    >>> check_forest({"height": 12}, {"n_trees": 10, "height": 8}, "d")
    Traceback (most recent call last):
    ...
    ValueError: d: n_trees x 2 ** height must be at most 16384 (the state one series keeps), not 10 x 2 ** 12 = 40960
    """
    trees = int(params.get("n_trees", defaults["n_trees"]))
    height = int(params.get("height", defaults["height"]))
    if trees * 2**height > FOREST_NODES_MAX:
        raise ValueError(
            f"{name}: n_trees x 2 ** height must be at most {FOREST_NODES_MAX} (the state one "
            f"series keeps), not {trees} x 2 ** {height} = {trees * 2**height}"
        )


def check_params(
    params: Mapping[str, Any],
    allowed: set[str],
    name: str,
    bounds: Mapping[str, Bounds] | None = None,
) -> None:
    """Reject unknown parameter names, and values out of ``bounds``, with a clear message.

    A rule's parameters reach every series it matches: a NaN smoothing weight made every
    score NaN, and a forest of 10^8 trees a worker that never answered.

    >>> check_params({"alpha": 0.5}, {"alpha"}, "d", {"alpha": RATE})
    >>> check_params({"alpha": float("nan")}, {"alpha"}, "d", {"alpha": RATE})
    Traceback (most recent call last):
    ...
    ValueError: d: alpha must be within 1e-06 and 1, not nan
    >>> check_params({"n": 2.5}, {"n"}, "d", {"n": (1.0, 10.0, True)})
    Traceback (most recent call last):
    ...
    ValueError: d: n must be a whole number, not 2.5
    """
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"{name}: unknown parameters {sorted(unknown)}; allowed {sorted(allowed)}")
    if bounds is None:
        return
    for key, value in params.items():
        limits = bounds.get(key)
        if limits is None:
            continue
        lo, hi, whole = limits
        if isinstance(value, bool) or not isinstance(value, int | float):
            from stream_app.core.config import shown_value  # (config imports this lazily)

            raise ValueError(f"{name}: {key} must be a number, not {shown_value(value)}")
        if not lo <= value <= hi:  # (NaN too)
            raise ValueError(f"{name}: {key} must be within {lo:g} and {hi:g}, not {value!r}")
        if whole and value != int(value):
            raise ValueError(f"{name}: {key} must be a whole number, not {value!r}")
