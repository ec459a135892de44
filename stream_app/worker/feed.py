"""The consumed message and the hand-over of fetched messages to the batcher."""

from __future__ import annotations

import asyncio
from typing import Any


class Record:
    """One consumed message: what the scorer reads, and what acking it needs.

    The fields the scorer reads (value, key, topic, partition, offset), the
    consumer's topic-partition object and the group generation it was fetched
    in, and the ``acked`` flag Faust's ``Consumer.ack`` sets; ``note`` is what the
    stand-in of a batch that could not be unpacked says (:mod:`stream_app.kafka_batches`),
    None for every other record. A slots class: one is made per reading.
    """

    __slots__ = (
        "__weakref__",  # Faust keeps unacked messages in a WeakSet
        "acked",
        "generation_id",
        "key",
        "note",
        "offset",
        "partition",
        "topic",
        "tp",
        "value",
    )

    def __init__(
        self,
        value: bytes | None,
        key: bytes | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        tp: Any = None,
        generation_id: int | None = None,
        note: str | None = None,
    ) -> None:
        self.value = value
        self.key = key
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.tp = tp
        self.generation_id = generation_id
        self.note = note
        self.acked = False


class RecordFeed:
    """Bounded hand-over of fetched record lists from the fetch loop to the batcher.

    Bounded in lists, so a batcher that falls behind stops the fetch loop
    (backpressure) instead of letting records pile up in memory.

    >>> import asyncio
    >>> feed = RecordFeed({"r"}, max_lists=2)
    >>> asyncio.run(feed.put([1, 2])); asyncio.run(feed.put([3]))
    >>> feed.take_nowait(10)
    [1, 2, 3]
    """

    def __init__(self, topics: set[str] | frozenset[str], *, max_lists: int = 8) -> None:
        self.topics = frozenset(topics)
        self._queue: asyncio.Queue[list[Any]] = asyncio.Queue(max_lists)

    async def put(self, records: list[Any]) -> None:
        await self._queue.put(records)

    async def get(self) -> list[Any]:
        return await self._queue.get()

    def waiting(self) -> int:
        """Fetches handed over and not yet taken."""
        return self._queue.qsize()

    def take_nowait(self, limit: int) -> list[Any]:
        """Whatever is queued, whole lists, until ``limit`` records are reached."""
        out: list[Any] = []
        while len(out) < limit and not self._queue.empty():
            out.extend(self._queue.get_nowait())
        return out

    def clear(self) -> int:
        """Drop everything queued (partitions were revoked); returns the records dropped."""
        dropped = 0
        while not self._queue.empty():
            dropped += len(self._queue.get_nowait())
        return dropped
