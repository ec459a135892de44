"""No offset of an assigned partition may be skipped (faust-streaming 0.15).

See :class:`OffsetGuard`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from stream_app.kafka_batches import passed_over

Key = tuple[str, int]


class OffsetGuard:
    """Makes sure no offset of an assigned partition is skipped.

    faust-streaming 0.15 resumes fetching before it seeks a newly assigned
    partition to its committed offset; records fetched in between are dropped
    while the fetch position and Faust's read offset move past them, so a
    batch of readings silently vanishes (seen after a rebalance with two
    workers, always at the start of a partition). The guard knows, per
    partition, the next offset the worker must see: the committed offset at
    assignment, then one past each record handed over. A record beyond it
    means records were lost; the guard asks to seek back and refuses records
    until the missing one arrives again. A record before it (a replay) is
    admitted: every write downstream is idempotent.
    """

    def __init__(
        self, *, retry_after_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._next: dict[Key, int] = {}
        self._first: dict[Key, int] = {}
        self._seeking: dict[Key, float] = {}
        self._tps: dict[Key, Any] = {}
        self._retry_after_s = retry_after_s
        self._clock = clock

    def assigned(self) -> None:
        """A new assignment: forget everything until :meth:`expect` is told the offsets."""
        self._next = {}
        self._first = {}
        self._seeking.clear()

    def expect(self, committed: dict[Key, int]) -> None:
        """Where the group resumes each assigned partition (committed, else earliest).

        Records admitted before this arrived are checked now: if the first one
        of a partition lies beyond its committed offset, records were skipped (unless
        the fetcher passed over the offsets between as holding none).
        """
        for key, offset in committed.items():
            first = self._first.get(key)
            if first is None:
                self._next[key] = offset
            elif first > offset and not passed_over(key, offset, first - 1):
                self._next[key] = offset
                self._seeking[key] = float("-inf")  # overdue: seek on the next tick

    def overdue(self) -> list[tuple[Any, int]]:
        """Seeks asked for more than ``retry_after_s`` ago with nothing back yet.

        The consumer's fetch loop can still be handing over records of the old
        position when a seek lands, and move its read offset past the seek
        target again; asking again once that loop has drained fixes it.
        """
        now = self._clock()
        due = []
        for key, asked in self._seeking.items():
            if now - asked >= self._retry_after_s and key in self._tps:
                self._seeking[key] = now
                due.append((self._tps[key], self._next[key]))
        return due

    def next_offsets(self) -> dict[Key, int]:
        """The next offset to process of every assigned partition."""
        return dict(self._next)

    def remember(self, key: Key, tp: Any) -> None:
        self._tps[key] = tp

    def check(self, key: Key, offset: int) -> int | None:
        """None to admit the record; else the offset to seek back to (record refused).

        A jump over offsets the fetcher passed over as holding no record it hands over
        (:func:`stream_app.kafka_batches.passed_over`: transaction markers, the batch a
        stand-in stands in for) skips nothing: sought back to, they were passed over
        again, and the partition stood still for good.

        >>> g = OffsetGuard(clock=lambda: 0.0)
        >>> g.assigned()
        >>> g.expect({("r", 0): 5})
        >>> g.check(("r", 0), 5), g.check(("r", 0), 9), g.check(("r", 0), 10), g.check(("r", 0), 6)
        (None, 6, -1, None)
        """
        expected = self._next.get(key)
        if expected is not None and expected < offset and passed_over(key, expected, offset - 1):
            expected = offset  # nothing skipped: offsets that hold no record handed over
        if expected is None:
            self._first.setdefault(key, offset)
        if expected is None or offset <= expected:
            self._seeking.pop(key, None)
            if expected is None or offset == expected:
                self._next[key] = offset + 1
            return None
        asked = self._seeking.get(key)
        now = self._clock()
        if asked is not None and now - asked < self._retry_after_s:
            return -1  # refused; the seek asked for is under way
        self._seeking[key] = now
        return expected
