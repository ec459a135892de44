"""A worker that has work but makes no progress ends itself, to be restarted.

faust-streaming 0.15 can stall after a rebalance: table recovery waits for
changelog records that its fetcher never delivers ("No event received for
active tp ... since recovery start", faust issues #176, #597, #651), and the
worker then sits idle forever while its partitions hold unread readings. A
fresh process recovers fine. So the watchdog compares, every few seconds, the
end of each assigned readings partition with the next offset the worker has
to process; if some partition is behind and no batch has completed for
``stall_timeout_s``, it logs why and exits with :data:`STALL_EXIT_CODE`.
Nothing is lost by that: offsets are committed only after a batch is durable,
and every write is idempotent. The supervisor (compose ``restart:``, systemd,
Kubernetes, the test harness) starts it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

STALL_EXIT_CODE = 75  # EX_TEMPFAIL: try again

Key = tuple[str, int]


class StallWatchdog:
    """Decides when a worker is stalled; the caller owns the clock and the exit."""

    def __init__(
        self,
        stall_timeout_s: float,
        end_offsets: Callable[[list[Key]], Awaitable[dict[Key, int]]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stall_timeout_s = stall_timeout_s
        self._end_offsets = end_offsets
        self._clock = clock
        self.last_progress = clock()

    def progressed(self) -> None:
        """A batch was made durable (or the worker just got its partitions)."""
        self.last_progress = self._clock()

    async def stalled(self, next_offsets: dict[Key, int], waiting: int = 0) -> str | None:
        """Why the worker is stalled, or None when it is fine.

        ``waiting``: fetches handed to the worker and not yet taken into a batch.
        The offsets the worker tracks move when records are handed over, before
        they are scored, so a worker that took every record of its partitions
        and then stopped working would show no lag at all; fetched records that
        wait while nothing completes are a stall too.
        """
        idle = self._clock() - self.last_progress
        if idle < self.stall_timeout_s:
            return None
        if waiting:
            return f"no batch completed for {idle:.0f} s while {waiting} fetches wait"
        if not next_offsets:
            return None
        ends = await self._end_offsets(list(next_offsets))
        behind = {k: ends[k] - n for k, n in next_offsets.items() if ends.get(k, n) > n}
        if not behind:
            self.progressed()  # idle because there is nothing to do
            return None
        parts = ", ".join(f"{t}[{p}] {lag} behind" for (t, p), lag in sorted(behind.items()))
        return f"no batch completed for {idle:.0f} s while {parts}"
