"""The noise-shapes benchmark counts false episodes, and those of a young series apart."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import noise_shapes


def test_false_episodes_early_after_the_probation_are_counted_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def spikes(rng: np.random.Generator, t: noise_shapes.FloatArray) -> noise_shapes.FloatArray:
        values = 10.0 + rng.normal(0.0, 1.0, t.size)
        values[[100, 450, 1500]] += 200.0  # in the probation, right after it, later
        return values

    monkeypatch.setattr(noise_shapes, "RUNS", (("spikes", 300.0, 2000),))
    monkeypatch.setattr(noise_shapes, "shapes", lambda: {"spikes": spikes})
    (row,) = noise_shapes.run(2)
    # the probation is the first 300 points; the early stretch the next 300
    assert (row["false_episodes"], row["false_early"]) == (4, 2)
    assert "(early   2)" in noise_shapes._line(row)
