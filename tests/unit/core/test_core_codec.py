"""The state codec: what it writes comes back exactly, and what it cannot read is a
``ValueError`` (a detector that restarts), never another exception."""

from __future__ import annotations

import math
import struct

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
