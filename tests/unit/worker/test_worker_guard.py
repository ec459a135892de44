"""The offset guard and the stall watchdog, driven by a fake clock."""

from __future__ import annotations

import asyncio

from stream_app.kafka_batches import _note_hole
from stream_app.worker.faust_compat import OffsetGuard, StallWatchdog

KEY = ("readings", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_guard_admits_contiguous_and_replayed_records() -> None:
    guard = OffsetGuard(clock=Clock())
    guard.assigned()
    guard.expect({KEY: 10})
    assert [guard.check(KEY, o) for o in (10, 11, 12, 11, 12, 13)] == [None] * 6


def test_guard_asks_to_seek_back_over_a_gap_and_retries_when_overdue() -> None:
    clock = Clock()
    guard = OffsetGuard(retry_after_s=2.0, clock=clock)
    guard.assigned()
    guard.expect({KEY: 0})
    guard.remember(KEY, "tp")
    assert guard.check(KEY, 48) == 0
    assert guard.check(KEY, 49) == -1  # refused while the seek is under way
    assert guard.overdue() == []
    clock.now = 2.5
    assert guard.overdue() == [("tp", 0)]
    assert guard.check(KEY, 0) is None  # the missing record came back
    assert guard.overdue() == []


def test_guard_detects_a_skip_seen_before_the_offsets_were_known() -> None:
    guard = OffsetGuard(clock=Clock())
    guard.assigned()
    guard.remember(KEY, "tp")
    assert guard.check(KEY, 95) is None  # nothing known yet: admitted
    guard.expect({KEY: 0})
    assert guard.overdue() == [("tp", 0)]


def test_guard_keeps_progress_when_the_first_record_was_the_committed_one() -> None:
    guard = OffsetGuard(clock=Clock())
    guard.assigned()
    guard.remember(KEY, "tp")
    assert guard.check(KEY, 5) is None
    assert guard.check(KEY, 6) is None
    guard.expect({KEY: 5})
    assert guard.overdue() == []
    assert guard.check(KEY, 7) is None


def test_guard_admits_the_stand_in_of_an_unreadable_batch_over_its_offsets() -> None:
    # the stand-in sits at its batch's last offset; the batch's first offset is where the
    # partition had come to, so nothing was skipped (sought back to, it came again)
    key = ("readings-stand-in", 0)
    guard = OffsetGuard(clock=Clock())
    guard.assigned()
    guard.expect({key: 10})
    guard.remember(key, "tp")
    assert guard.check(key, 10) is None
    _note_hole(key, 11, 13)  # what the fetcher notes of a stand-in at 14 from 11
    assert guard.check(key, 14) is None
    assert guard.check(key, 15) is None
    assert guard.overdue() == []
    # one that begins past where the partition had come to: records were skipped
    _note_hole(key, 20, 29)
    assert guard.check(key, 30) == 16


def test_guard_takes_a_first_stand_in_before_the_offsets_are_known_from_its_batch() -> None:
    key = ("readings-stand-in", 1)
    guard = OffsetGuard(clock=Clock())
    guard.assigned()
    guard.remember(key, "tp")
    _note_hole(key, 5, 8)
    assert guard.check(key, 9) is None
    guard.expect({key: 5})
    assert guard.overdue() == []


def test_watchdog_reports_a_stall_only_with_unread_records() -> None:
    clock = Clock()
    ends = {KEY: 100}

    async def end_offsets(keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return {k: ends[k] for k in keys}

    dog = StallWatchdog(30.0, end_offsets, clock=clock)
    assert asyncio.run(dog.stalled({KEY: 40})) is None  # not idle long enough
    clock.now = 31.0
    reason = asyncio.run(dog.stalled({KEY: 40}))
    assert reason is not None and "60 behind" in reason
    dog.progressed()
    clock.now = 70.0
    ends[KEY] = 40
    assert asyncio.run(dog.stalled({KEY: 40})) is None  # idle, but nothing to do


def test_watchdog_reports_fetched_records_that_wait_while_nothing_completes() -> None:
    # every record was handed over (no lag by the tracked offsets), but nothing is
    # taken any more: e.g. the batch loop died after taking the first fetch
    clock = Clock()

    async def end_offsets(keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return {k: 100 for k in keys}

    dog = StallWatchdog(30.0, end_offsets, clock=clock)
    clock.now = 31.0
    reason = asyncio.run(dog.stalled({KEY: 100}, waiting=3))
    assert reason is not None and "3 fetches wait" in reason
    dog.progressed()
    assert asyncio.run(dog.stalled({KEY: 100}, waiting=3)) is None  # progress was just made
    clock.now = 62.0
    assert asyncio.run(dog.stalled({KEY: 100})) is None  # nothing waits, no lag: just idle


def test_guard_admits_the_jump_over_a_transaction_marker_the_fetcher_passed_over() -> None:
    # Each committed transaction leaves a marker at one offset, which the fetcher passes
    # over: the guard sought back to it, the marker was passed over again, and the
    # partition stood still until the watchdog's exit (review s68e).
    key = ("readings-txn", 3)
    guard = OffsetGuard(clock=Clock())
    guard.assigned()
    guard.expect({key: 0})
    assert [guard.check(key, o) for o in range(10)] == [None] * 10
    _note_hole(key, 10, 10)
    assert guard.check(key, 11) is None
    assert guard.check(key, 13) == 12  # offset 12 is no marker: sought back to
