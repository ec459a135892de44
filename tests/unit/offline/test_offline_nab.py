"""NAB scoring on hand-made cases and against a literal transcription of the rules."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from stream_app.offline import nab


def _series(n: int = 1000, windows: list[nab.Window] | None = None) -> list[nab.Window]:
    return windows if windows is not None else [(400, 499), (700, 799)]


def _score(
    detections: list[int], n: int = 1000, profile: nab.CostProfile = nab.STANDARD
) -> nab.NabResult:
    scores = np.zeros(n)
    scores[detections] = 1.0
    return nab.score_corpus([nab.NabSeries("s", scores, _series(n))], profile)


@pytest.mark.parametrize("profile", nab.PROFILES, ids=lambda p: p.name)
def test_perfect_detector_scores_100_and_null_scores_0(profile: nab.CostProfile) -> None:
    assert _score([400, 700], profile=profile).score == pytest.approx(100.0)
    assert _score([], profile=profile).score == pytest.approx(0.0)


def test_earlier_detection_in_a_window_earns_more() -> None:
    early, middle, late = _score([410, 700]), _score([450, 700]), _score([495, 700])
    assert early.score > middle.score > late.score > 0.0


def test_only_the_earliest_detection_of_a_window_counts() -> None:
    assert _score([410, 700]).raw == pytest.approx(_score([410, 420, 430, 700]).raw)


def test_false_positives_are_penalised_and_low_fp_profile_penalises_more() -> None:
    clean = _score([400, 700])
    noisy = _score([400, 700, 200, 250, 900])
    assert noisy.raw < clean.raw
    low_fp = _score([400, 700, 200, 250, 900], profile=nab.REWARD_LOW_FP)
    assert clean.raw - noisy.raw == pytest.approx((clean.raw - low_fp.raw) / 2)


def test_fp_just_after_a_window_costs_less_than_one_far_away() -> None:
    near, far = _score([400, 700, 505]), _score([400, 700, 650])
    assert near.raw > far.raw


def test_detections_in_probation_are_ignored() -> None:
    # 15 % of 1000 points: the first 150 are not scored
    assert _score([400, 700, 10, 100]).raw == pytest.approx(_score([400, 700]).raw)


def test_threshold_is_swept_over_scores() -> None:
    scores = np.full(1000, 0.2)
    scores[[400, 700]] = 0.9
    scores[[300, 600]] = 0.5
    result = nab.score_corpus([nab.NabSeries("s", scores, _series())])
    assert result.threshold == 0.9
    assert result.score == pytest.approx(100.0)


def test_windows_from_labels_follow_nab_size_rule() -> None:
    labels = [0] * 1000
    labels[300] = labels[700] = 1
    # 10 % of 1000 points over 2 anomalies: 50-point windows centred on each
    assert nab.nab_windows(labels) == [(275, 325), (675, 725)]
    assert nab.label_runs(labels) == [(300, 300), (700, 700)]


def test_per_series_raw_scores_add_up_to_the_corpus_score() -> None:
    rng = np.random.default_rng(3)
    series = [
        nab.NabSeries(f"s{k}", rng.random(500), [(200 + 20 * k, 240 + 20 * k)]) for k in range(4)
    ]
    result = nab.score_corpus(series)
    assert sum(result.per_series_raw.values()) == pytest.approx(result.raw)


def _reference_raw(
    series: list[tuple[list[float], list[nab.Window]]], profile: nab.CostProfile
) -> float:
    """The rules read straight off the NAB description, one point at a time."""

    def ss(p: float) -> float:
        return -1.0 if p >= 3.0 else 2.0 / (1.0 + math.exp(5.0 * p)) - 1.0

    points: list[tuple[float, float, tuple[int, int] | None]] = []
    for k, (scores, windows) in enumerate(series):
        n, merged = len(scores), nab.merge_windows(windows)
        probation = min(math.floor(0.15 * n), 750)
        prev_end, prev_width = None, 0
        for i in range(n):
            inside = [w for w, (s, e) in enumerate(merged) if s <= i <= e]
            if inside:
                s, e = merged[inside[0]]
                sweep = ss(-(e - i + 1) / (e - s + 1)) * profile.tp_weight / ss(-1.0)
                if i == e:
                    prev_end, prev_width = e, e - s + 1
            else:
                position = 3.0 if prev_end is None else (i - prev_end) / max(prev_width - 1, 1)
                sweep = ss(position) * profile.fp_weight
            if i >= probation:
                points.append((scores[i], sweep, (k, inside[0]) if inside else None))
    windows_seen = {w for _, _, w in points if w is not None}
    best = -math.inf
    for threshold in sorted({p[0] for p in points} | {math.inf}):
        total = sum(sw for sc, sw, w in points if w is None and sc >= threshold)
        for window in windows_seen:
            hits = [sw for sc, sw, w in points if w == window and sc >= threshold]
            total += max(hits) if hits else -profile.fn_weight
        best = max(best, total)
    return best


@pytest.mark.parametrize("seed", range(25))
def test_matches_a_literal_transcription_of_the_rules(seed: int) -> None:
    rng = random.Random(seed)
    corpus = []
    for _ in range(rng.randint(1, 3)):
        n = rng.randint(5, 60)
        windows = [
            (s, min(n - 1, s + rng.randint(0, 6)))
            for s in (rng.randrange(n) for _ in range(rng.randint(0, 3)))
        ]
        corpus.append(([round(rng.random(), 1) for _ in range(n)], windows))
    for profile in nab.PROFILES:
        inputs = [nab.NabSeries(str(k), np.array(s), w) for k, (s, w) in enumerate(corpus)]
        assert nab.score_corpus(inputs, profile).raw == pytest.approx(
            _reference_raw(corpus, profile)
        )


@pytest.mark.parametrize("seed", range(10))
def test_leave_one_group_out_thresholds_are_those_of_the_other_groups_alone(seed: int) -> None:
    """``thresholds_without`` flattens the corpus once (leave-one-family-out was quadratic
    in the families); each threshold must be the one scoring the other groups chooses."""
    rng = random.Random(seed)
    groups = []
    for g in range(rng.randint(2, 7)):
        group = []
        for k in range(rng.randint(1, 3)):
            n = rng.randint(0, 80)
            windows = [
                (s, min(n - 1, s + rng.randint(0, 8)))
                for s in (rng.randrange(n) for _ in range(rng.randint(0, 3) if n else 0))
            ]
            # coarse scores: ties across groups; a NaN is scored as 0, as score_corpus does
            scores = [round(rng.random(), 1) for _ in range(n)]
            if n and rng.random() < 0.3:
                scores[rng.randrange(n)] = math.nan
            group.append(nab.NabSeries(f"g{g}/s{k}", np.array(scores), windows))
        groups.append(group)
    held_out = [g for g in range(len(groups)) if rng.random() < 0.8]
    for profile in nab.PROFILES:
        expected = [
            nab.score_corpus(
                [s for other, group in enumerate(groups) if other != g for s in group], profile
            ).threshold
            for g in held_out
        ]
        assert nab.thresholds_without(groups, held_out, profile) == expected
