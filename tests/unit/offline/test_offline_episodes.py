"""Episode precision, recall, F1 and delay, judged by where an episode opens."""

from __future__ import annotations

from stream_app.offline.episodes import episode_counts, summarise


def test_episode_overlapping_a_window_is_a_true_positive_with_its_delay() -> None:
    flags = [0] * 20
    flags[12:15] = [1, 1, 1]
    counts = episode_counts(flags, [(10, 16)])
    assert (counts.episodes, counts.true_episodes, counts.found_windows) == (1, 1, 1)
    assert counts.delays == [2]


def test_episode_opening_less_than_a_window_early_counts_with_negative_delay() -> None:
    flags = [0] * 20
    flags[8:12] = [1] * 4
    assert episode_counts(flags, [(10, 16)]).delays == [-2]


def test_episode_opening_long_before_a_window_is_false_however_long_it_overlaps() -> None:
    flags = [0] * 40
    flags[2:30] = [1] * 28  # open from 2 to 29: covers the whole window (20, 24)
    counts = episode_counts(flags, [(20, 24)])
    assert (counts.true_episodes, counts.found_windows) == (0, 0)
    assert counts.outside_points == 28 - 5


def test_one_long_episode_finds_one_window_only() -> None:
    flags = [0] * 60
    flags[10:50] = [1] * 40
    counts = episode_counts(flags, [(10, 14), (30, 34)])
    assert (counts.episodes, counts.true_episodes, counts.found_windows) == (1, 1, 1)
    assert counts.length_ratios == [8.0]


def test_alarm_time_outside_windows_is_reported_as_a_share() -> None:
    flags = [0] * 100
    flags[50:60] = [1] * 10
    summary = summarise([episode_counts(flags, [(0, 4)])])
    assert summary["outside_share"] == 0.1
    assert summary["false_per_10k"] == 100.0


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


def test_no_episode_gives_no_precision() -> None:
    """With no episode, precision is undefined as recall is with no window: it read 0,
    as if every episode had been false."""
    missed = summarise([episode_counts([0, 0, 0, 0], [(1, 2)])])
    assert missed["episode_precision"] is None
    assert missed["episode_recall"] == 0.0 and missed["episode_f1"] == 0.0
    quiet = summarise([episode_counts([0, 0, 0], [])])
    assert quiet["episode_precision"] is None and quiet["episode_f1"] is None
    # summed with a series that has episodes, one without leaves its precision alone
    both = [episode_counts([0, 1, 0], [(1, 1)]), episode_counts([0, 0, 0], [])]
    assert summarise(both)["episode_precision"] == 1.0
