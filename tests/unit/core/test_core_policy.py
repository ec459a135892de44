"""The episode policy: threshold, direction, minimum duration, hysteresis,
cool-down and maximum length."""

from __future__ import annotations

import pytest

from stream_app.core import EpisodePolicy, PolicyConfig
from stream_app.core.records import EpisodeEvent

HIGH, MID, LOW = 0.9999, 0.995, 0.1


def drive(
    cfg: PolicyConfig, scores: list[float], z: float = 5.0
) -> tuple[list[bool], list[EpisodeEvent]]:
    pol = EpisodePolicy("pump-1", "temp", cfg, "robust_seasonal")
    flags, events = [], []
    for i, s in enumerate(scores):
        flag, evs = pol.step(float(i), 10.0 + z, s, 10.0, 9.0, 11.0, z)
        flags.append(flag)
        events.extend(evs)
    return flags, events


def kinds(events: list[EpisodeEvent]) -> list[str]:
    return [e.event for e in events]


def test_opens_and_resolves_with_stable_id() -> None:
    flags, events = drive(
        PolicyConfig(threshold=0.999, cooldown_points=2), [LOW, HIGH, HIGH, LOW, LOW, LOW]
    )
    assert kinds(events) == ["opened", "resolved"]
    assert events[0].episode_id == events[1].episode_id
    assert events[0].started_at == 1.0 and events[1].ended_at == 2.0
    assert flags == [False, True, True, True, False, False]
    assert "above expected" in events[0].explanation and "robust_seasonal" in events[0].explanation


def test_min_duration_ignores_short_bursts() -> None:
    cfg = PolicyConfig(threshold=0.999, min_points=3, cooldown_points=2)
    _, events = drive(cfg, [HIGH, HIGH, LOW, HIGH, HIGH, LOW])
    assert events == []
    flags, events = drive(cfg, [HIGH, HIGH, HIGH, LOW])
    assert kinds(events) == ["opened"] and flags[:3] == [False, False, True]
    assert events[0].started_at == 0.0  # the episode starts at its first point


def test_hysteresis_keeps_episode_open_between_thresholds() -> None:
    cfg = PolicyConfig(threshold=0.999, close_threshold=0.99, cooldown_points=1)
    flags, events = drive(cfg, [HIGH, MID, MID, MID, LOW])
    assert kinds(events) == ["opened", "resolved"]
    assert flags == [True, True, True, True, False]
    # MID alone never opens an episode
    assert drive(cfg, [MID] * 5)[1] == []


def test_cool_down_merges_nearby_bursts() -> None:
    scores = [HIGH, LOW, LOW, HIGH, LOW, LOW, LOW, LOW]
    _, merged = drive(PolicyConfig(threshold=0.999, cooldown_points=3), scores)
    assert kinds(merged) == ["opened", "resolved"]
    _, split = drive(PolicyConfig(threshold=0.999, cooldown_points=1), scores)
    assert kinds(split) == ["opened", "resolved", "opened", "resolved"]


def test_max_length_resolves_and_waits_for_normal() -> None:
    flags, events = drive(
        PolicyConfig(threshold=0.999, cooldown_points=2, max_points=3), [HIGH] * 6 + [LOW, HIGH]
    )
    assert kinds(events) == ["opened", "resolved", "opened"]
    assert "maximum" in events[1].explanation
    assert flags[3:6] == [False, False, False]


def test_direction_filters_spikes_or_dips() -> None:
    _, up_only = drive(PolicyConfig(threshold=0.999, direction="up"), [HIGH, HIGH], z=-5.0)
    assert up_only == []
    _, down = drive(PolicyConfig(threshold=0.999, direction="down"), [HIGH], z=-5.0)
    assert kinds(down) == ["opened"] and down[0].direction == "down"


def test_severity_rises_with_updated_events() -> None:
    _, events = drive(PolicyConfig(threshold=0.999), [0.9991, 0.99998, 0.9999999])
    assert kinds(events) == ["opened", "updated", "updated"]
    assert [e.severity for e in events] == ["low", "medium", "critical"]
    assert events[-1].to_dict()["peak_score"] == 0.9999999


def _weekly_openings(cfg: PolicyConfig, weeks: list[int], seed: int = 5) -> list[int]:
    """Episodes opened per week at 5-minute steps, where ``weeks[k]`` points of week ``k``
    (at random) have a tail probability between a fifth of the default budget's (one
    false episode a week) and all of it, and every other point is quiet: a series whose
    tail its detector underrates by up to five times, as bursts that are its normal
    behaviour were before the detector learned its far tail."""
    import numpy as np

    pol = EpisodePolicy("e", "m", cfg, "robust_seasonal")
    pol.set_interval(300.0)
    rng = np.random.default_rng(seed)
    room = 300.0 / (7 * 86400.0)  # 1 - the default opening score before any growth
    opened = []
    for k, count in enumerate(weeks):
        hits = set(rng.choice(2016, count, replace=False).tolist())
        tails = np.exp(rng.uniform(np.log(room / 5.0), np.log(room), 2016))
        events = []
        for i in range(2016):
            score = 1.0 - float(tails[i]) if i in hits else LOW
            events.extend(
                pol.step(1.7e9 + 300.0 * (2016 * k + i), 30.0, score, 10.0, 9.0, 11.0, 5.0)[1]
            )
        opened.append(sum(e.event == "opened" for e in events))
    return opened


def test_a_series_that_keeps_overrunning_its_budget_gets_stricter() -> None:
    # ten such points a week for eight weeks, then four quiet weeks and one more
    weeks = [10] * 8 + [0] * 4 + [1]
    budget = _weekly_openings(PolicyConfig(budget_growth_max=1), weeks)  # growth held off
    fixed = _weekly_openings(PolicyConfig(threshold=1.0 - 300.0 / (7 * 86400.0)), weeks)
    assert fixed[:8] == [10] * 8  # each opens at the same score, fixed
    assert budget[0] == 10  # the first week: no evidence yet
    assert sum(budget[4:8]) * 2 <= sum(fixed[4:8])  # weeks 5-8: at most half as many
    assert min(budget[4:8]) >= 1  # stricter, not deaf: the most surprising still page
    assert budget[12] == 1  # its rate fell back in the quiet weeks: the rule lets go


def test_the_budget_period_grows_with_the_points_a_series_has_seen() -> None:
    from stream_app.core import EngineConfig

    cfg, week = PolicyConfig(), 7 * 86400.0
    assert cfg.budget_period(300.0) == cfg.budget_period(300.0, 4032) == week  # two weeks in
    assert cfg.budget_period(300.0, 6048) == pytest.approx(1.5 * week)  # three weeks
    assert cfg.budget_period(300.0, 8064) == 2 * week  # four weeks
    assert cfg.budget_period(300.0, 12096) == cfg.budget_period(300.0, 1e9) == 3 * week  # six
    assert cfg.open_threshold(300.0, 8064) == pytest.approx(1.0 - 300.0 / (2 * week), abs=1e-12)
    # counted in points: an hourly series eight weeks in (1,344 points) keeps its floor
    assert cfg.budget_period(3600.0, 1344) == cfg.budget_period(3600.0) == 672 * 3600.0
    # one-minute data: from two weeks on (20,160 points), not from 4,032 (2.8 days)
    assert cfg.budget_period(60.0, 20_160) == week
    assert cfg.budget_period(60.0, 30_240) == pytest.approx(1.5 * week)  # three weeks
    off = EngineConfig.from_mapping({"defaults": {"policy": {"budget_growth_max": 1}}})
    assert off.defaults.policy.budget_period(300.0, 1e9) == week
    for bad in (
        {"budget_growth_points": 0},
        {"budget_growth_points": float("nan")},
        {"budget_growth_days": -1},
        {"budget_growth_max": 0.5},
        {"budget_growth_max": float("nan")},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PolicyConfig(**bad)  # type: ignore[arg-type]


def test_a_series_weeks_old_needs_a_rarer_point_to_open_an_episode() -> None:
    # a tail probability between the budgets of one false episode a week and one per
    # two weeks, at 5 minutes
    score = 1.0 - 300.0 / (10 * 86400.0)

    def opens(points: int) -> bool:
        pol = EpisodePolicy("e", "m", PolicyConfig(), "robust_seasonal")
        pol.set_interval(300.0)
        pol.set_history(points)
        return bool(pol.step(0.0, 30.0, score, 10.0, 9.0, 11.0, 5.0)[1])

    assert opens(0) and opens(4032)  # up to two weeks of points: one a week
    assert not opens(8064)  # four weeks: one per two weeks (three weeks from six on)
    assert opens(5056)  # in between: the period grows with the points (1.25 weeks)


def test_an_onset_publishes_the_same_score_whatever_the_series_age() -> None:
    from stream_app.core.policy import ONSET_SCORE

    def published(points: int, score: float) -> float:
        pol = EpisodePolicy("e", "m", PolicyConfig(), "robust_seasonal")
        pol.set_interval(300.0)
        pol.set_history(points)
        assert pol.step(0.0, 30.0, score, 10.0, 9.0, 11.0, 5.0)[1], "no onset"
        return pol.onset_score(score)

    # one threshold ranks every series' onsets by their tail probability: a series six
    # weeks old, whose budget grew three-fold, publishes an onset like a young series
    for score in (1.0 - 1e-5, 1.0 - 1e-4, 1.0 - 1.6e-4):
        assert published(12096, score) == published(0, score)
    # its onsets all have a tail within a third of the young budget's: the top of the band
    assert published(12096, 1.0 - 1.6e-4) > 1.0 - (1.0 - ONSET_SCORE) / 3.0 - 1e-12


def test_the_processor_passes_the_points_seen_and_a_restored_series_keeps_them() -> None:
    import numpy as np

    from stream_app.core import EngineConfig, SeriesProcessor

    rng = np.random.default_rng(5)
    values = 20.0 + rng.normal(0.0, 1.0, 8400)
    proc = SeriesProcessor.create("e", "m", EngineConfig.default())
    for i in range(8200):
        proc.process(1_700_000_000.0 + 300.0 * i, float(values[i]))
    assert proc.policy.history == 8192  # the points seen, in steps of 64
    week = 7 * 86400.0  # grown by 8192 / 4032 points
    assert 1.0 - proc.policy.open_thr == pytest.approx(300.0 / (week * 8192 / 4032), rel=1e-6)
    again = SeriesProcessor.from_bytes(proc.to_bytes(), EngineConfig.default())
    assert (again.policy.history, again.policy.open_thr) == (8192, proc.policy.open_thr)
    for i in range(8200, 8400):
        ts, value = 1_700_000_000.0 + 300.0 * i, float(values[i])
        assert again.process(ts, value) == proc.process(ts, value)


def test_the_budget_is_per_days_and_at_least_per_672_points() -> None:
    from stream_app.core import EngineConfig

    cfg = PolicyConfig()
    # 5-minute and finer series: one false episode per 7 days of data
    assert cfg.open_threshold(300.0) == pytest.approx(1.0 - 300.0 / (7 * 86400.0), abs=1e-12)
    assert cfg.open_threshold(1.0) == pytest.approx(1.0 - 1.0 / (7 * 86400.0), abs=1e-12)
    # coarser: per 672 points (an hourly series would otherwise page falsely once in
    # 168 readings), but never per more than 90 days (daily data: not once in 2 years)
    assert cfg.open_threshold(3600.0) == pytest.approx(1.0 - 1.0 / 672.0, abs=1e-12)
    assert cfg.open_threshold(1800.0) == pytest.approx(1.0 - 1.0 / 672.0, abs=1e-12)
    assert cfg.budget_period(86400.0) == 90 * 86400.0
    assert cfg.open_threshold(86400.0) == cfg.close_threshold  # 1 - 1/90 is below it
    for odd in (float("nan"), float("inf"), 0.0, -5.0):  # never a non-finite period
        assert 0.0 < cfg.budget_period(odd) < float("inf")
        assert cfg.close_threshold <= cfg.open_threshold(odd) < 1.0
    # the floor can be switched off, and is read from a configuration file
    off = EngineConfig.from_mapping({"defaults": {"policy": {"false_episode_points": 0}}})
    assert off.defaults.policy.open_threshold(3600.0) == pytest.approx(1.0 - 1.0 / 168.0)
    for bad in (-1, "many"):
        try:
            EngineConfig.from_mapping({"defaults": {"policy": {"false_episode_points": bad}}})
        except ValueError as exc:
            assert "false_episode_points" in str(exc) or "many" in str(exc)
        else:
            raise AssertionError(f"false_episode_points={bad!r} was accepted")


def is_near(pol: EpisodePolicy, ts: float, score: float, z: float = 5.0) -> bool:
    """One step; True when it is a near onset, as the processor reads it: the run at or
    above the closing threshold began and nothing was decided."""
    before = pol.above
    _, events = pol.step(ts, 10.0 + z, score, 10.0, 9.0, 11.0, z)
    return not events and pol.above and not before


def nears(cfg: PolicyConfig, scores: list[float], zs: list[float] | None = None) -> list[int]:
    """The indices of the near onsets."""
    pol = EpisodePolicy("pump-1", "temp", cfg, "robust_seasonal")
    return [i for i, s in enumerate(scores) if is_near(pol, float(i), s, zs[i] if zs else 5.0)]


def test_the_first_point_of_an_excursion_that_opens_nothing_is_a_near_onset() -> None:
    cfg = PolicyConfig(threshold=0.999)  # closes at 0.99: MID is between the two
    # one near onset per run at or above the closing threshold, none for its later points
    assert nears(cfg, [LOW, MID, MID, MID, LOW, MID, LOW]) == [1, 5]
    # an onset is no near onset, nor is any point of its episode; after it resolves the
    # next excursion is one
    assert nears(cfg, [LOW, HIGH, MID, HIGH, LOW, MID, MID, LOW]) == [5]
    # a run that starts below the opening threshold and then opens: its first point
    assert nears(cfg, [LOW, MID, HIGH, LOW]) == [1]
    # only in a direction the policy watches
    up = PolicyConfig(threshold=0.999, direction="up")
    assert nears(up, [LOW, MID, LOW, MID, LOW], zs=[0.0, -5.0, 0.0, 5.0, 0.0]) == [3]
    # with min_points 2 the first point of a run that opens is one too (min_points 1
    # would have opened there); the run's second point opens
    two = PolicyConfig(threshold=0.999, min_points=2)
    assert nears(two, [LOW, HIGH, LOW, HIGH, HIGH, LOW]) == [1, 3]
    # a forced resolve (maximum length) holds the series back until a normal point: the
    # first point it held back is one
    short = PolicyConfig(threshold=0.999, max_points=3)
    assert nears(short, [LOW, HIGH, HIGH, HIGH, HIGH, HIGH, LOW]) == [4]


def test_a_point_the_recent_episodes_held_back_is_a_near_onset() -> None:
    pol = EpisodePolicy("e", "m", PolicyConfig(), "robust_seasonal")
    pol.set_interval(300.0)
    opened = held = 0
    for i in range(40):  # a spike an hour at a tail a tenth of the budget's
        ts = 3600.0 * i
        before = pol.above
        _, events = pol.step(ts, 30.0, 1.0 - 5e-5, 10.0, 9.0, 11.0, 5.0)
        opened += bool(events and events[0].event == "opened")
        held += not events and pol.above and not before
        pol.step(ts + 300.0, 10.0, 0.5, 10.0, 9.0, 11.0, 0.0)
    # every spike is one or the other; from the third or so the budget holds a third back
    assert opened + held == 40 and held >= 10


def test_near_onsets_publish_between_the_other_points_and_the_onsets() -> None:
    from stream_app.core.policy import NEAR_SCORE, ONSET_SCORE, OTHER_SCALE

    for interval in (1.0, 300.0, 3600.0):
        pol = EpisodePolicy("e", "m", PolicyConfig(), "robust_seasonal")
        pol.set_interval(interval)
        scores = [0.99, 0.999, 0.9999, 1.0 - 1e-7, 1.0 - 1e-12, 1.0, float("nan")]
        published = [pol.near_score(s) for s in scores]
        assert all(NEAR_SCORE <= p < ONSET_SCORE for p in published)
        assert published[:6] == sorted(published[:6]) and len(set(published[:6])) == 6
        assert pol.onset_score(pol.open_thr) >= ONSET_SCORE > max(published)
    assert 1.0 * OTHER_SCALE < NEAR_SCORE  # every other point stays below the band
