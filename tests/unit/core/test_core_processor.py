"""Processor-level behaviour: config rules, state size, feedback, book, events."""

from __future__ import annotations

import math
import struct

import numpy as np
import orjson
import pytest

from stream_app.core import EngineConfig, SeriesProcessor


def seasonal(n: int, step: float = 300.0, seed: int = 0) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    return [
        (
            step * i,
            50.0 + 10.0 * math.sin(2 * math.pi * step * i / 86400.0) + float(rng.normal(0, 1)),
        )
        for i in range(n)
    ]


def test_rules_choose_detector_and_policy_by_pattern() -> None:
    cfg = EngineConfig.from_mapping(
        {
            "seed": 3,
            "rules": [
                {
                    "pattern": "plant-*/temp*",
                    "detector": "ewma_z",
                    "policy": {"direction": "up", "min_points": 2},
                }
            ],
        }
    )
    proc = SeriesProcessor.create("plant-3", "temperature", cfg)
    assert proc.detector_name == "ewma_z"
    assert proc.settings.policy.direction == "up" and proc.settings.policy.min_points == 2
    assert SeriesProcessor.create("bank", "fx", cfg).detector_name == "robust_seasonal"


@pytest.mark.parametrize(
    "bad",
    [
        {"rules": [{"detector": "x"}]},
        {"rulez": []},
        {"defaults": {"policy": {"threshold": 2.0}}},
        {"defaults": {"policy": {"treshold": 0.9}}},
        # these raised TypeError (a traceback at the worker's start, not an error)
        {"rules": 5},
        {"entities": {"pattern": "a"}},
        {"entities": [{"pattern": "a", "params": 5}]},
        {"seed": [1]},
        # ... and these were taken: a seed of 1.5 ran as 1
        {"seed": 1.5},
        {"seed": True},
        {"seed": "7"},
    ],
)
def test_bad_config_is_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EngineConfig.from_mapping(bad)


NAN = float("nan")


@pytest.mark.parametrize(
    ("detector", "params", "says"),
    [
        # a NaN weight made every score of every matching series NaN
        ("robust_seasonal", {"alpha_fast": NAN}, "alpha_fast must be within"),
        ("robust_seasonal", {"clip": -1.0}, "clip must be within"),
        ("robust_seasonal", {"band_p": 2.0}, "band_p must be within"),
        ("robust_seasonal", {"jump_points": 2.5}, "jump_points must be a whole number"),
        ("ewma_z", {"alpha": 5.0}, "alpha must be within"),
        ("river_sad", {"band_p": 0.0}, "band_p must be within"),
        # a forest of 10^8 trees was accepted, and built for every series it matched
        ("river_hst", {"n_trees": 100_000_000}, "n_trees must be within 1 and 50"),
        ("river_hst", {"height": 64}, "height must be within"),
        ("river_hst", {"n_trees": "abc"}, "n_trees must be a number"),
        ("river_hst", {"shingle": True}, "shingle must be a number"),
        # each bound alone, but a state of 13 MB (3 MB compressed) per series: more than a
        # Kafka message, and the worker crashed on its checkpoint at every restart
        ("river_hst", {"n_trees": 50, "height": 12}, "n_trees x 2 \\*\\* height must be at most"),
    ],
)
def test_detector_parameters_out_of_bounds_are_rejected_by_name(
    detector: str, params: dict[str, object], says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        EngineConfig.from_mapping(
            {"rules": [{"pattern": "*", "detector": detector, "params": params}]}
        )
    members = {"members": [{"detector": detector, "params": params}]}
    with pytest.raises(ValueError, match=says):  # ... and inside an ensemble
        EngineConfig.from_mapping({"defaults": {"detector": "ensemble", "params": members}})


@pytest.mark.parametrize(
    ("section", "values", "says"),
    [
        # "nan" failed in a comparison ("'<=' not supported between ... 'str'")
        ("policy", {"threshold": "nan"}, "threshold must be a number, not 'nan'"),
        ("policy", {"max_points": 1.5}, "max_points must be a whole number"),  # ran as 1
        ("policy", {"min_points": True}, "min_points must be a whole number"),
        ("limits", {"lower": "low"}, "lower must be a number"),
        # an AttributeError traceback
        ("cleaning", {"schedule": 5}, "schedule must be text"),
        ("cleaning", {"stuck_min_points": 2.5}, "stuck_min_points must be a whole number"),
    ],
)
def test_settings_of_the_wrong_type_are_named(
    section: str, values: dict[str, object], says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        EngineConfig.from_mapping({"defaults": {section: values}})


def _ranged() -> list[tuple[str, str, float, float]]:
    from stream_app.core.config import CLEANING_RANGES, LIMITS_RANGES, POLICY_RANGES

    tables = {"policy": POLICY_RANGES, "cleaning": CLEANING_RANGES, "limits": LIMITS_RANGES}
    return [(s, k, lo, hi) for s, table in tables.items() for k, (lo, hi) in table.items()]


def test_every_number_a_rule_sets_has_a_range() -> None:
    """A field added without one would take 1e30 again."""
    from dataclasses import fields

    from stream_app.core.config import CleaningConfig, Limits, PolicyConfig

    ranged = {(s, k) for s, k, _, _ in _ranged()}
    for section, cls in (
        ("policy", PolicyConfig),
        ("cleaning", CleaningConfig),
        ("limits", Limits),
    ):
        numbers = {f.name for f in fields(cls) if {"int", "float"} & set(str(f.type).split(" "))}
        assert numbers and {(section, n) for n in numbers} <= ranged, (section, numbers)


# where an end is excluded, its field says so in a message of its own ("need 0 <
# close_threshold < 1")
_OPEN_ENDED = {"threshold", "close_threshold", "stuck_probability"}


@pytest.mark.parametrize(("section", "key", "lo", "hi"), _ranged())
def test_a_rule_number_beyond_its_range_is_refused_by_name(
    section: str, key: str, lo: float, hi: float
) -> None:
    """policy.min_points 1e30, cleaning.warmup_points 1e30 and the like were taken: no episode
    could open, no point was ever scored, on every series the rule matched."""

    def rule(value: float) -> dict[str, object]:
        return {"rules": [{"pattern": "*", section: {key: value}}]}

    if key not in _OPEN_ENDED:
        for edge in (lo, hi):  # both ends are settings of their own
            assert (
                getattr(getattr(EngineConfig.from_mapping(rule(edge)).rules[0], section), key)
                == edge
            )
    beyond = 10**30 if isinstance(hi, int) else (hi * 10 if hi > 0 else 10.0)
    says = key if key in _OPEN_ENDED else f"{key} must be within"
    with pytest.raises(ValueError, match=says):
        EngineConfig.from_mapping(rule(beyond))


def test_a_whole_number_beyond_a_float_is_refused_not_a_traceback() -> None:
    """YAML reads 400 digits as an int, and float() of it raised OverflowError."""
    with pytest.raises(ValueError, match="false_episode_days is too large"):
        EngineConfig.from_mapping({"defaults": {"policy": {"false_episode_days": 10**400}}})
    with pytest.raises(ValueError, match="min_points must be within 1 and 10000, not 10"):
        EngineConfig.from_mapping({"defaults": {"policy": {"min_points": 10**400}}})


def test_a_quoted_number_is_the_number() -> None:
    cfg = EngineConfig.from_mapping(
        {"defaults": {"policy": {"threshold": "0.999", "max_points": "12"}}}
    )
    assert cfg.defaults.policy.threshold == 0.999 and cfg.defaults.policy.max_points == 12


def test_every_default_parameter_is_within_its_bounds() -> None:
    from stream_app.core.detectors import ewma_z, river_hst, river_sad, robust_seasonal

    for module in (ewma_z, river_hst, river_sad, robust_seasonal):
        assert set(module.BOUNDS) <= set(module.DEFAULTS), module.__name__
        # the defaults given explicitly pass their own bounds
        name = module.__name__.rsplit(".", 1)[1]
        EngineConfig.from_mapping({"defaults": {"detector": name, "params": module.DEFAULTS}})


def test_empty_lists_and_a_whole_seed_are_a_config() -> None:
    cfg = EngineConfig.from_mapping({"seed": 7, "rules": None, "entities": []})
    assert cfg.seed == 7 and cfg.rules == () and cfg.entities == ()


def test_state_is_compact_with_seasonal_profiles() -> None:
    proc = SeriesProcessor.create("site-1/meter-2", "power", EngineConfig.default())
    for ts, v in seasonal(4000):  # two weeks at 5 min: daily and weekly profiles
        proc.process(ts, v)
    assert proc.detector.week is not None  # type: ignore[attr-defined]
    assert proc.state_size() <= 3072  # 2,908 B: the weekly profile in float32 (4,123 in doubles)


@pytest.mark.parametrize("scale", [1e39, 1e148, 1e-300])
def test_state_is_compact_at_any_scale(scale: float) -> None:
    """Values beyond float32's range kept the weekly profile in doubles: 4,188 B at 1e39
    and 4,222 B at 1e300 here (4,273 B after five weeks), over the 4 KB a series may hold.
    Its bins are now float32 scaled by one power of two, and a restored series goes on
    exactly."""
    config = EngineConfig.default()
    proc = SeriesProcessor.create("site-1/meter-2", "power", config)
    for ts, v in seasonal(4100):
        proc.process(ts, scale * v)
    assert proc.detector.week is not None  # type: ignore[attr-defined]
    assert proc.state_size() <= 3072
    copy = SeriesProcessor.from_bytes(proc.to_bytes(), config=config)
    for ts, v in seasonal(300, seed=1):
        t = ts + 4100 * 300.0
        assert copy.process(t, scale * v) == proc.process(t, scale * v)


def test_detects_a_spike_and_explains_it() -> None:
    proc = SeriesProcessor.create("site-1/meter-2", "power", EngineConfig.default())
    data = seasonal(1500)
    for ts, v in data:
        proc.process(ts, v)
    point, events = proc.process(data[-1][0] + 300.0, data[-1][1] + 25.0)
    assert point.is_anomaly and point.score is not None and point.score > 0.999
    assert point.lower is not None and point.upper is not None
    assert not point.lower <= point.value <= point.upper  # type: ignore[operator]
    (opened,) = events
    assert opened.kind == "value" and opened.direction == "up"
    assert "above expected" in opened.explanation
    assert orjson.loads(orjson.dumps(opened.to_dict()))["episode_id"] == opened.episode_id


def test_a_series_near_the_bound_is_scored_and_values_beyond_it_are_out_of_limits() -> None:
    """The wire's schema refuses values beyond +-1e150; the core did not, and a series
    living beyond 1e300 was clipped there and scored 0 for ever (a +60 % spike opened
    nothing). Now such values are ``out_of_limits`` (replay says so), they teach the
    series nothing, and a series just inside the range still pages."""
    proc = SeriesProcessor.create("site-1/meter-2", "power", EngineConfig.default())
    data = seasonal(1500)
    for i, (ts, v) in enumerate(data):
        point, _ = proc.process(ts, 1e148 * v)
        assert point.status in ("ok", "warmup")
        if i % 100 == 50:
            point, events = proc.process(ts + 150.0, (-4e301, 2e150)[i % 200 == 50])
            assert point.status == "out_of_limits" and point.score is None and not events
    point, events = proc.process(data[-1][0] + 300.0, 1e148 * (data[-1][1] + 25.0))
    assert point.is_anomaly and point.score is not None and point.score > 0.999
    assert [e.direction for e in events] == ["up"]
    assert point.expected is not None and 4e149 < point.expected < 7e149
    point, _ = proc.process(data[-1][0] + 600.0, -1e150)  # the bound itself is a value
    assert point.status == "ok"


def test_the_policy_asks_the_detector_it_runs_what_spoke_also_after_a_restore() -> None:
    # an episode's explanation names the detector's evidence (see policy.explain): the
    # policy must ask the restored detector, not the one created before the restore
    proc = SeriesProcessor.create("e", "m", EngineConfig.default())
    for ts, v in seasonal(300):
        proc.process(ts, v)
    assert proc.policy.source is proc.detector
    again = SeriesProcessor.from_bytes(proc.to_bytes(), EngineConfig.default())
    assert again.policy.source is again.detector and again.detector is not proc.detector


def test_false_positive_feedback_widens_tolerance_boundedly() -> None:
    proc = SeriesProcessor.create("e", "m", EngineConfig.default())
    margins = [proc.apply_feedback("false_positive") for _ in range(10)]
    assert margins[:3] == [2.0, 4.0, 8.0] and margins[-1] == 64.0
    assert proc.policy.open_thr == pytest.approx(1.0 - 0.0001 / 64.0)
    assert proc.apply_feedback("true_positive") == 32.0
    again = SeriesProcessor.from_bytes(proc.to_bytes(), EngineConfig.default())
    assert again.policy.margin == 32.0
    with pytest.raises(ValueError):
        proc.apply_feedback("meh")


def test_from_bytes_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        SeriesProcessor.from_bytes(b"\x04\x00\x00\x00nope")


@pytest.mark.parametrize("step", [1.0, 300.0, 3600.0])
def test_published_score_ranks_episode_onsets_above_every_other_point(step: float) -> None:
    """One threshold (ONSET_SCORE) selects exactly the onsets, at any sampling interval."""
    from stream_app.core.policy import ONSET_SCORE

    proc = SeriesProcessor.create("site-1", "load", EngineConfig.default())
    rng = np.random.default_rng(5)
    opened, high, other_max = 0, 0, 0.0
    for i in range(3000):
        value = 20.0 + float(rng.normal(0.0, 1.0))
        if i % 400 == 399:
            value += 12.0  # a spike
        elif 1500 <= i < 1530:
            value += 6.0  # a short shift
        point, events = proc.process(1_700_000_000.0 + step * i, value)
        assert point.score is not None and 0.0 <= point.score <= 1.0
        if any(e.event == "opened" and e.kind == "value" for e in events):
            opened += 1
            assert point.score >= ONSET_SCORE
        else:
            other_max = max(other_max, point.score)
        high += point.score >= ONSET_SCORE
    assert opened >= 4  # most spikes were found (1-second steps have the strictest budget)
    assert high == opened
    assert other_max < ONSET_SCORE


@pytest.mark.parametrize("step", [1.0, 300.0, 3600.0])
def test_near_onsets_rank_between_the_onsets_and_every_other_point(step: float) -> None:
    """A threshold in the near band adds one point per excursion that opened nothing."""
    from stream_app.core.policy import NEAR_SCORE, ONSET_SCORE

    proc = SeriesProcessor.create("site-1", "load", EngineConfig.default())
    rng = np.random.default_rng(7)
    onsets = nears = 0
    previous_near = False
    for i in range(3000):
        value = 20.0 + float(rng.normal(0.0, 1.0))
        if i % 40 == 39:
            value += 4.0  # moderate bumps: surprising, more often than the budget allows
        point, events = proc.process(1_700_000_000.0 + step * i, value)
        assert point.score is not None
        if any(e.event == "opened" for e in events):
            onsets += 1
            assert point.score >= ONSET_SCORE
            previous_near = False
        elif point.score >= NEAR_SCORE:
            nears += 1
            assert point.score < ONSET_SCORE
            assert not point.is_anomaly  # no episode was open, nor did one open
            assert not previous_near  # one per excursion
            previous_near = True
        else:
            previous_near = False
    assert nears >= 10


def test_a_restart_inside_an_excursion_publishes_no_second_near_onset() -> None:
    """The run at or above the closing threshold is state: a restart continues it."""
    proc = SeriesProcessor.create("site-1", "load", EngineConfig.default())
    restarted = SeriesProcessor.create("site-1", "load", EngineConfig.default())
    rng = np.random.default_rng(3)
    values = 20.0 + rng.normal(0.0, 1.0, 2400)
    values[1000::60] += 3.5  # two-point bumps from point 1000 on
    values[1001::60] += 3.5
    inside = 0
    for i, value in enumerate(values.tolist()):
        ts = 1_700_000_000.0 + 300.0 * i
        a, _ = proc.process(ts, value)
        b, _ = restarted.process(ts, value)
        assert a == b
        if restarted.policy.above and not restarted.policy.episode:
            inside += 1
            restarted = SeriesProcessor.from_bytes(restarted.to_bytes(), EngineConfig.default())
        assert a.score is not None
    assert inside >= 5  # restarted inside excursions
    # and a state written before the flag existed still loads, outside any run
    generations = struct.calcsize("<QBd")  # the usual hours' generations, kept after it
    blob = proc.to_bytes()[:-generations]
    old = SeriesProcessor.from_bytes(blob[:-1], EngineConfig.default())
    assert not old.policy.above and old.to_bytes()[: -1 - generations] == blob[:-1]


def test_a_profile_holding_a_denormal_restores_its_model() -> None:
    """Counts near 0.1 (mostly 0), a run of zeros, then 5e-324: the state written then
    could not be read back, and the restored series started its model afresh (age 0)."""
    rng = np.random.default_rng(0)
    level = 0.1 * (1.2 + np.sin(np.arange(400) / 20.0))
    values = [*np.round(level * np.exp(rng.normal(0.0, 0.2, 400))).tolist(), 0.0, 0.0, 5e-324]
    proc = SeriesProcessor.create("site-1/meter-2", "power", EngineConfig.default())
    for i, v in enumerate(values):
        proc.process(1767571200.0 + 300.0 * i, v)
    copy = SeriesProcessor.from_bytes(proc.to_bytes(), config=EngineConfig.default())
    assert copy.detector.age == proc.detector.age == len(values)  # type: ignore[attr-defined]
    assert copy.to_bytes() == proc.to_bytes()


def test_a_restore_within_a_long_warm_up_keeps_the_budget_it_had() -> None:
    """With ``warmup_points`` over 64, a live series passes its count to the policy only
    at the first multiple of 64 past its warm-up, while ``from_bytes`` passed ``n & ~63``
    at once: restored at 202 points, a grown budget opened nothing where the uninterrupted
    series opened an episode (review, rev65b)."""
    import random

    cfg = EngineConfig.from_mapping(
        {
            "defaults": {
                "cleaning": {"warmup_points": 200},
                "policy": {
                    "budget_growth_points": 1,
                    "budget_growth_days": 0,
                    "budget_growth_max": 3,
                },
            }
        }
    )
    rng = random.Random(3)
    points = [(300.0 * i, 10 + rng.gauss(0, 1)) for i in range(260)]
    points[210] = (points[210][0], 14.7)

    def run(restore_at: int | None) -> list[tuple[float | None, bool]]:
        proc = SeriesProcessor.create("e", "m", cfg)
        out = []
        for i, (ts, value) in enumerate(points):
            if i == restore_at:
                proc = SeriesProcessor.from_bytes(proc.to_bytes(), cfg)
            point, _ = proc.process(ts, value)
            out.append((point.score, point.is_anomaly))
        return out

    assert run(None)[210][1]
    assert run(202) == run(None)
