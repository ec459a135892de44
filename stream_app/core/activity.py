"""When a source reports: the five-minute slots of the (UTC) day and the weekdays it
was live in, as bit masks that add up over a week (an OR), and are forgotten after one
to two weeks unseen.

The worker marks the span its source's clock moved through between two writes (the
whole span when the clock moved in usual steps, only where it landed when it jumped:
a market's night or an outage is not time it reported in), and the database ORs the
masks of every write within a week, keeping the week before's beside them (migration
011: a fleet moved to nights stops paging at its old day hours). The wall-clock alert on a source that stopped sending
(``dashboards/alerting/rules.yaml``, ``tsguard_usual_at`` in the migrations) pages
only in slots and on weekdays the source usually reports in, so a market closed at
night or at the weekend is no outage. Slot ``i`` is ``[i * 300, (i + 1) * 300)``
seconds after midnight UTC; weekday bit 0 is Monday.

>>> tod, dow = live_slots(9.5 * 3600, 9.5 * 3600 + 900)  # 1970-01-01 (a Thursday) 09:30-09:45
>>> [i for i in range(SLOTS) if tod >> i & 1], dow
([114, 115, 116, 117], 8)
>>> live_slots(0.0, 30 * 86400.0) == (ALL_SLOTS, 0x7F)
True
"""

from __future__ import annotations

import math

SLOT = 300.0
DAY = 86400.0
SLOTS = int(DAY / SLOT)  # 288
ALL_SLOTS = (1 << SLOTS) - 1


def live_slots(start: float, end: float) -> tuple[int, int]:
    """The slots of the day and the weekdays that ``[start, end]`` (epoch seconds) touches."""
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        return 0, 0
    if end - start >= 7 * DAY:
        return ALL_SLOTS, 0x7F
    tod = dow = 0
    t = start
    while True:
        day = math.floor(t / DAY)
        slot = int((t - day * DAY) / SLOT)
        tod |= 1 << slot
        dow |= 1 << (day + 3) % 7  # 1970-01-01 was a Thursday
        t = day * DAY + (slot + 1) * SLOT
        if t > end:
            return tod, dow
