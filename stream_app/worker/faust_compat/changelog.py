"""The state table's changelog, written a checkpoint at a time instead of a key at a time.

A Faust table produces one changelog record per key set: ``Table.__setitem__``
queues it in the producer's ``ProducerBuffer``, whose single task publishes one
record per turn of the event loop (``publish_message``, ``_get_producer``'s
``sleep(0)``, the sensors). That moved about 3,300 records a second on an idle
worker, and far fewer while it scored. A worker holding 20,000 entities saves
each of them every ``worker_checkpoint_s`` (2 s) during a backlog: 10,000
records a second. The buffer grew for as long as the backlog lasted, and every
commit, which first waits for the producer to flush, waited for all of it: the
commit timer ran 15-29 s at a time, offsets fell 250,000 readings behind, and a
SIGTERM after the backlog still had the buffer to flush when its 15 s ran out
(the backstop's hard exit, nothing committed, all of it read again).

:class:`TableChangelog` writes the local store (``Table.data``, as Faust's own
recovery does) and sends the records straight to the app's producer: about
30,000 records a second, and it waits for their delivery, so the checkpointer
acks a partition's records only once the broker has their state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any

from aiokafka.partitioner import murmur2

# Records handed to the producer between two returns to the event loop.
SEND_SLICE = 500


class TableChangelog:
    """Sends a checkpoint's changes to a Faust table's changelog topic, and waits for them.

    Keys are partitioned by the producer's partitioner, as Faust does for a table
    built with ``use_partitioner=True``; None is a tombstone (the key deleted).
    """

    def __init__(self, app: Any, table: Any) -> None:
        self._app = app
        self._table = table

    async def __call__(
        self, changes: list[tuple[bytes, bytes | None]], ours: Callable[[], bool]
    ) -> None:
        """Send ``changes`` and wait for what was sent to be delivered; none is sent once
        ``ours()`` is False (a send waits while the producer's buffer is full)."""
        producer = await self._app.maybe_start_producer()
        topic = self._table.changelog_topic.get_topic_name()
        delivered = []
        for n, (key, value) in enumerate(changes, 1):
            if not ours():
                break
            delivered.append(await producer.send(topic, key, value, None, None, None))
            if n % SEND_SLICE == 0:
                await asyncio.sleep(0)
        await asyncio.gather(*delivered)


def drop_foreign_keys(data: MutableMapping[Any, Any], kept: set[int], partitions: int) -> int:
    """Delete from a memory store the keys of changelog partitions not in ``kept``; how many.

    When its recovery completes, Faust's memory store drops the keys of the partitions no
    longer assigned, but only the keys it read from the changelog itself (it notes their
    partition as it reads them, ``_key_partition``). The keys the worker writes
    (:class:`TableChangelog`, and ``Table.__setitem__`` before it) were never noted: after
    a rebalance the old owner kept the states of the entities it gave away, in memory for
    as long as it ran, and its silence scans went through them. Such a partition taken
    back is recovered over them, which overwrites only the keys the changelog still holds:
    an entity forgotten since, its tombstone compacted away, came back with its old state.
    Keys go to partitions by the producer's partitioner, as :class:`TableChangelog` sends
    them (murmur2, as Kafka's Java client).

    >>> from aiokafka.partitioner import murmur2
    >>> data = {f"dev-{i}".encode(): b"state" for i in range(8)}
    >>> mine = {(murmur2(k) & 0x7FFFFFFF) % 4 for k in list(data)[:1]}
    >>> dropped = drop_foreign_keys(data, mine, 4)
    >>> dropped + len(data) == 8 and all((murmur2(k) & 0x7FFFFFFF) % 4 in mine for k in data)
    True
    """
    foreign = [
        key
        for key in data
        if isinstance(key, bytes) and (murmur2(key) & 0x7FFFFFFF) % partitions not in kept
    ]
    for key in foreign:
        del data[key]
    return len(foreign)
