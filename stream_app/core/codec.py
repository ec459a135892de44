"""Compact byte packing for detector state (struct/array, never pickle).

>>> w = Writer()
>>> w.floats([1.0, 2.5]); w.text("pump"); w.u32(7)
>>> r = Reader(w.getvalue())
>>> r.floats(), r.text(), r.u32()
([1.0, 2.5], 'pump', 7)
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Iterable

_U32 = struct.Struct("<I")
_I16 = struct.Struct("<h")
# the count of a float list with this bit set: its values follow as float32 (see
# Writer.compact_floats)
_NARROW = 1 << 31
# ... and with this one too: a power of two (a signed 16-bit exponent) comes first, and
# each float32 is scaled by it (values beyond float32's range, at one scale)
_SCALED = 1 << 30
# the largest shift a double's range leaves (2**1024 over float32's 2**-149)
_SHIFT_MAX = 1173
# Compiled formats of Writer.raw/Reader.raw by their field string (a state uses a few
# fixed ones; every checkpoint packs each changed series with about ten of them).
_FORMATS: dict[str, struct.Struct] = {}


def _format(fmt: str) -> struct.Struct:
    compiled = _FORMATS.get(fmt)
    if compiled is None:
        compiled = struct.Struct("<" + fmt)
        if len(_FORMATS) < 64:  # the code's own formats; anything else is not kept
            _FORMATS[fmt] = compiled
    return compiled


class Writer:
    """Appends length-prefixed fields to a buffer."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def u32(self, value: int) -> None:
        self._buf += _U32.pack(value)

    def raw(self, fmt: str, *values: float | int | bool) -> None:
        self._buf += _format(fmt).pack(*values)

    def floats(self, values: Iterable[float]) -> None:
        data = array("d", values)
        self._buf += _U32.pack(len(data))
        self._buf += data.tobytes()

    def compact_floats(self, values: Iterable[float]) -> None:
        """``values`` as float32 when every one of them is exactly a float32 (or NaN), or
        exactly a float32 times one power of two (values of 24 significant bits beyond
        float32's range, within 2**250 of each other), else as doubles (:meth:`floats`):
        half the bytes, and never a value lost.

        >>> w = Writer()
        >>> w.compact_floats([0.5, float("nan")]); w.compact_floats([0.1]); w.compact_floats([1e39])
        >>> w.compact_floats([2.0**200, -3 * 2.0**150, 0.0]); w.compact_floats([2.0**300, 1.0])
        >>> len(w.getvalue())
        74
        >>> r = Reader(w.getvalue())
        >>> r.compact_floats()[0], r.compact_floats(), r.compact_floats()
        (0.5, [0.1], [1e+39])
        >>> r.compact_floats() == [2.0**200, -3 * 2.0**150, 0.0], r.compact_floats()[1]
        (True, 1.0)
        """
        data = values if isinstance(values, list) else list(values)
        n = len(data)
        doubles = _format(f"{n}d")
        wide = doubles.pack(*data)
        narrow = _format(f"{n}f")
        try:
            packed = narrow.pack(*data)
        except OverflowError:  # beyond float32's range
            packed = b""
        # exact when the doubles come back bit for bit (NaN too); a rounded value, a
        # denormal or a NaN with a payload keeps the list in doubles
        if packed and doubles.pack(*narrow.unpack(packed)) == wide:
            self._buf += _U32.pack(n | _NARROW)
            self._buf += packed
            return
        shift = _shared_shift(data)
        if shift is not None:
            # within what the reader takes: a list whose largest value is a denormal
            # (5e-324) asked for 2**-1201, and its series lost its model at every restore
            shift = -_SHIFT_MAX if shift < -_SHIFT_MAX else min(shift, _SHIFT_MAX)
            try:
                packed = narrow.pack(*[math.ldexp(x, -shift) for x in data])
            except OverflowError:
                packed = b""
            if packed and doubles.pack(*_scaled(narrow.unpack(packed), shift)) == wide:
                self._buf += _U32.pack(n | _NARROW | _SCALED)
                self._buf += _I16.pack(shift)
                self._buf += packed
                return
        self._buf += _U32.pack(n)
        self._buf += wide

    def blob(self, data: bytes) -> None:
        self._buf += _U32.pack(len(data))
        self._buf += data

    def text(self, value: str) -> None:
        self.blob(value.encode())

    def getvalue(self) -> bytes:
        return bytes(self._buf)


def _shared_shift(data: list[float]) -> int | None:
    """The power of two that brings the largest finite, nonzero value of ``data`` just
    under float32's largest binade (None: there is none)."""
    top = max((math.frexp(x)[1] for x in data if x and math.isfinite(x)), default=None)
    return None if top is None else top - 128


def _scaled(values: Iterable[float], shift: int) -> list[float]:
    return [math.ldexp(x, shift) for x in values]


class Reader:
    """Reads fields back in the order a :class:`Writer` wrote them."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def u32(self) -> int:
        try:
            (value,) = _U32.unpack_from(self._data, self._pos)
        except struct.error:  # cut short: a ValueError, as every other truncated field
            raise ValueError("truncated state") from None
        self._pos += 4
        return int(value)

    def raw(self, fmt: str) -> tuple[float | int | bool, ...]:
        compiled = _format(fmt)
        try:
            values = compiled.unpack_from(self._data, self._pos)
        except struct.error:
            raise ValueError("truncated state") from None
        self._pos += compiled.size
        return tuple(values)

    def floats(self) -> list[float]:
        n = self.u32()
        end = self._pos + 8 * n
        if end > len(self._data):
            raise ValueError("truncated state")
        data = array("d")
        data.frombytes(self._data[self._pos : end])
        self._pos = end
        return data.tolist()

    def compact_floats(self) -> list[float]:
        """A list that :meth:`Writer.compact_floats` wrote."""
        n = self.u32()
        size, data = (4, array("f")) if n & _NARROW else (8, array("d"))
        shift = None
        if n & _NARROW and n & _SCALED:
            if self._pos + _I16.size > len(self._data):
                raise ValueError("truncated state")
            (shift,) = self.raw("h")
            if not -_SHIFT_MAX <= shift <= _SHIFT_MAX:  # no float32 times it is a double
                raise ValueError(f"state: a float list scaled by 2**{shift}")
        n &= _SCALED - 1
        end = self._pos + size * n
        if end > len(self._data):
            raise ValueError("truncated state")
        data.frombytes(self._data[self._pos : end])
        self._pos = end
        if shift is None:
            return data.tolist()
        try:
            return _scaled(data, int(shift))
        except OverflowError:
            raise ValueError(f"state: a float list scaled by 2**{shift} overflows") from None

    def blob(self) -> bytes:
        n = self.u32()
        out = bytes(self._data[self._pos : self._pos + n])
        if len(out) != n:
            raise ValueError("truncated state")
        self._pos += n
        return out

    def text(self) -> str:
        return self.blob().decode()

    def done(self) -> bool:
        return self._pos >= len(self._data)
