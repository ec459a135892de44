"""The state codec: what it writes comes back exactly, and what it cannot read is a
``ValueError`` (a detector that restarts), never another exception."""

from __future__ import annotations

import contextlib
import math
import struct
from pathlib import Path
from typing import Any

import pytest

from stream_app.core.codec import _NARROW, _SCALED, Reader, Writer


def _scaled(n: int, shift: bytes, payload: bytes) -> bytes:
    return struct.pack("<I", n | _NARROW | _SCALED) + shift + payload


@pytest.mark.parametrize(
    ("blob", "what"),
    [
        (_scaled(2, b"", b""), "truncated state"),  # the shift cut off
        (_scaled(2, b"\x05", b""), "truncated state"),  # half of it
        (_scaled(1, struct.pack("<h", 32767), struct.pack("<f", 1.0)), "scaled by 2\\*\\*32767"),
        (_scaled(1, struct.pack("<h", -32768), struct.pack("<f", 1.0)), "scaled by 2\\*\\*-32768"),
        (_scaled(1, struct.pack("<h", 1100), struct.pack("<f", 3e38)), "overflows"),
        (_scaled(3, struct.pack("<h", 7), struct.pack("<f", 1.0)), "truncated state"),
    ],
)
def test_a_crafted_scaled_list_is_a_value_error(blob: bytes, what: str) -> None:
    """A shift of 2**32767 raised OverflowError, and a header cut inside its shift
    struct.error, out of ``from_bytes``: the worker then dropped the whole entity's
    state instead of that one model's (the session's review)."""
    with pytest.raises(ValueError, match=what):
        Reader(blob).compact_floats()


@pytest.mark.parametrize(
    "values",
    [
        [1e39, -3e40, 0.0, math.nan],
        [2.0**-1000, -(2.0**-1010), 0.0],
        [1e300, 1.5e300, -1e299],
        [1e-300, 1.0, 1e300],  # more than 2**250 apart: doubles
    ],
)
def test_lists_beyond_float32_come_back_exactly(values: list[float]) -> None:
    rounded = [x if not math.isfinite(x) or not x else _round24(x) for x in values]
    w = Writer()
    w.compact_floats(rounded)
    back = Reader(w.getvalue()).compact_floats()
    assert struct.pack(f"<{len(back)}d", *back) == struct.pack(f"<{len(rounded)}d", *rounded)


def _round24(x: float) -> float:
    m, e = math.frexp(x)
    return math.ldexp(round(m * 2**24) / 2**24, e)


@pytest.mark.parametrize(
    "values",
    [[5e-324, 0.0, math.nan], [-5e-324], [1e-320, 2e-321, 0.0], [2.0**-1060, 0.0]],
)
def test_a_list_of_denormals_comes_back(values: list[float]) -> None:
    """A list whose largest value was a denormal was written scaled by 2**-1201, which the
    reader refuses: a profile whose bins were 0 and 5e-324 lost its series' whole model at
    every restore (found by the property test of counts at any magnitude)."""
    w = Writer()
    w.compact_floats(values)
    back = Reader(w.getvalue()).compact_floats()
    assert struct.pack(f"<{len(back)}d", *back) == struct.pack(f"<{len(values)}d", *values)


def test_a_state_cut_anywhere_is_a_value_error_or_loads() -> None:
    """A series state cut short inside a fixed field (the cleaner's, the policy's) raised
    ``struct.error``, and a float list cut at a whole float came back shorter without a
    word; an ensemble whose members grew found its next member's blob missing the same way,
    and ``from_bytes`` raised instead of restarting that model (review, rev65b)."""
    from stream_app.core import EngineConfig, SeriesProcessor

    cfg = EngineConfig.default()
    proc = SeriesProcessor.create("e", "m", cfg)
    for i in range(400):
        proc.process(60.0 * i, 10.0 + math.sin(i / 7.0))
    blob = proc.to_bytes()
    for cut in range(len(blob)):
        with contextlib.suppress(ValueError):
            SeriesProcessor.from_bytes(blob[:cut], cfg)
    with pytest.raises(ValueError, match="truncated state"):
        Reader(struct.pack("<I", 3) + struct.pack("<2d", 1.0, 2.0)).floats()


def test_an_ensemble_given_another_member_restarts_its_model() -> None:
    from stream_app.core import EngineConfig, SeriesProcessor

    def ensemble(*members: str) -> EngineConfig:
        return EngineConfig.from_mapping(
            {"defaults": {"detector": "ensemble", "params": {"members": list(members)}}}
        )

    before = ensemble("robust_seasonal")
    proc = SeriesProcessor.create("e", "m", before)
    for i in range(200):
        proc.process(60.0 * i, float(i % 7))
    after = ensemble("robust_seasonal", "ewma_z")
    again = SeriesProcessor.from_bytes(proc.to_bytes(), after)
    assert again.cleaner.n == 200  # the series goes on, its model afresh
    assert again.detector.to_bytes() == SeriesProcessor.create("e", "m", after).detector.to_bytes()


class _Runs:
    """A pickle that runs a command when loaded (what a hostile state would hold)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("detector", ["river_sad", "river_hst"])
def test_a_river_state_that_names_a_command_runs_nothing(detector: str, tmp_path: Path) -> None:
    """``river_sad`` and ``river_hst`` read their state with ``pickle.loads``: a state
    written into a worker's table or changelog ran any command in the worker (review
    rev65b: it made a file). It is now refused as an unreadable state, and the states
    those detectors write still come back whole."""
    import pickle

    from stream_app.core import EngineConfig, SeriesProcessor

    cfg = EngineConfig.from_mapping({"defaults": {"detector": detector}})
    proc = SeriesProcessor.create("e", "m", cfg)
    for i in range(300):
        proc.process(60.0 * i, 10.0 + math.sin(i / 7.0))
    again = SeriesProcessor.from_bytes(proc.to_bytes(), cfg)
    for i in range(300, 340):  # (a reloaded HST pickles with other bytes, as before)
        value = 10.0 + math.sin(i / 7.0) + (9.0 if i == 330 else 0.0)
        assert again.process(60.0 * i, value) == proc.process(60.0 * i, value)
    marker = tmp_path / "ran"
    hostile = pickle.dumps((_Runs(str(marker)), 0, (0.0, 0.0, 0.0)), protocol=5)
    with pytest.raises(ValueError, match=r"may not name posix\.system"):
        type(proc.detector).load(hostile, {}, 0)  # type: ignore[attr-defined]
    assert not marker.exists()
