"""A Kafka client's repeated log lines held back while a service is away.

aiokafka logs each failed reconnect, metadata refresh, fetch and coordinator lookup:
through a 30 s Kafka outage the Alertmanager forwarder wrote 1,943 lines, 65 a
second, four messages over and over, and a day's outage would write millions. The
first line of each message (per logger and level) goes out as it comes; the same
message again within ``every_s`` is held back, and the next one let through after
that says how many were:

>>> clock = iter([0.0, 1.0, 2.0, 31.0, 32.0]).__next__
>>> held = HoldRepeats(every_s=30.0, clock=clock)
>>> def record(msg):
...     return logging.LogRecord("aiokafka.conn", logging.ERROR, "", 0, msg, ("1",), None)
>>> records = [record("Unable connect to %s") for _ in range(5)]
>>> [r.getMessage() for r in records if held.filter(r)]
['Unable connect to 1', 'Unable connect to 1 [2 more like this held back in 31 s]']
>>> held.filter(logging.LogRecord("tsguard", logging.ERROR, "", 0, "ours", (), None))
True
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

HELD_EVERY_S = 30.0
# the loggers whose repeats are held back: the Kafka client's (the lines of tsguard's own
# loggers are each written to be said when they are, and held back they would hide one)
HELD_LOGGERS = ("aiokafka",)
_MAX_MESSAGES = 1024  # messages remembered at once (a client's are a few dozen)
_DECIDED = "_tsguard_held"  # set on a record once judged: every handler agrees on it


class HoldRepeats(logging.Filter):
    """A handler filter: the repeats of a message of the ``loggers`` within ``every_s``
    held back (one instance may sit on several handlers: a record is judged once)."""

    def __init__(
        self,
        every_s: float = HELD_EVERY_S,
        loggers: tuple[str, ...] = HELD_LOGGERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._every_s = every_s
        self._loggers = loggers
        self._clock = clock
        # (logger, level, message template) -> [when last let through, held since]
        self._seen: dict[tuple[str, int, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, _DECIDED, None)
        if decided is not None:
            return bool(decided)
        passed = self._judge(record)
        setattr(record, _DECIDED, passed)
        return passed

    def _judge(self, record: logging.LogRecord) -> bool:
        name = record.name
        if not any(name == p or name.startswith(p + ".") for p in self._loggers):
            return True
        key = (name, record.levelno, str(record.msg))
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self._every_s:
            seen[1] += 1
            return False
        if seen is None and len(self._seen) >= _MAX_MESSAGES:
            self._seen.clear()
        if seen is not None and seen[1]:
            # (no % in the note: the record's arguments still go into its message)
            record.msg = (
                f"{record.msg} [{int(seen[1])} more like this held back in {now - seen[0]:.0f} s]"
            )
        self._seen[key] = [now, 0]
        return True


def hold_repeats(every_s: float = HELD_EVERY_S) -> None:
    """Hold back the Kafka client's repeats on every handler of the root logger (given
    one, with the level and format of :func:`logging.basicConfig`, if it has none)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    held = HoldRepeats(every_s)
    for handler in root.handlers:
        if not any(isinstance(f, HoldRepeats) for f in handler.filters):
            handler.addFilter(held)
