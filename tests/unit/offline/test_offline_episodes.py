"""Episode precision, recall, F1 and delay."""

from __future__ import annotations

from stream_app.offline.episodes import episode_counts, summarise


def test_episode_overlapping_a_window_is_a_true_positive_with_its_delay() -> None:
    flags = [0] * 20
    flags[12:15] = [1, 1, 1]
    counts = episode_counts(flags, [(10, 16)])
    assert (counts.episodes, counts.true_episodes, counts.found_windows) == (1, 1, 1)
    assert counts.delays == [2]


def test_episode_open_before_the_window_has_zero_delay() -> None:
    flags = [0] * 20
    flags[8:12] = [1] * 4
    assert episode_counts(flags, [(10, 16)]).delays == [0]


def test_false_episodes_lower_precision_and_missed_windows_lower_recall() -> None:
    flags = [0] * 40
    flags[2] = flags[12] = 1
    summary = summarise([episode_counts(flags, [(10, 14), (30, 35)])])
    assert summary["episode_precision"] == 0.5
    assert summary["episode_recall"] == 0.5
    assert summary["episode_f1"] == 0.5


def test_points_before_start_are_ignored() -> None:
    flags = [1, 1, 0, 0, 0, 0]
    assert episode_counts(flags, [(0, 1)], start=2).episodes == 0
    assert episode_counts(flags, [(0, 1)], start=2).windows == 0


def test_no_window_gives_no_recall() -> None:
    summary = summarise([episode_counts([0, 1, 0], [])])
    assert summary["episode_recall"] is None
    assert summary["episode_precision"] == 0.0
