"""Micro-batches of stream events, acked only after the batch is durable.

Faust's ``Stream.take_events`` was seen to stop delivering after a
rebalance that followed a killed worker (the long-standing take()/rebalance
hangs of faust issues #262 and #532), so batches are built here instead:
events are read one by one with acks disabled, a batch is handed over when it
is full or, by a small timer task, when its oldest event has waited
``within`` seconds; only after the handler returns are its events acked, and
so only then can their offsets be committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from stream_app.worker.scoring import Message

log = logging.getLogger(__name__)

Handler = Callable[[list[Message]], Awaitable[Any]]


class EventBatcher:
    """Collects events of one stream and feeds them to ``handler`` in batches."""

    def __init__(
        self,
        handler: Handler,
        *,
        size: int,
        within: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._handler = handler
        self._size = size
        self._within = within
        self._clock = clock
        self._pending: list[Any] = []
        self._first_at = 0.0
        self._lock = asyncio.Lock()

    async def run(self, stream: Any) -> None:
        """Consume ``stream`` until it ends; the caller is a Faust agent."""
        quiet = stream.noack()
        ticker = asyncio.create_task(self._tick(quiet))
        try:
            async for event in quiet.events():
                log.warning("DBG event p=%s o=%s", event.message.partition, event.message.offset)
                async with self._lock:
                    if not self._pending:
                        self._first_at = self._clock()
                    self._pending.append(event)
                    if len(self._pending) >= self._size:
                        await self._flush(quiet)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    async def _tick(self, stream: Any) -> None:
        while True:
            await asyncio.sleep(self._within / 2)
            try:
                async with self._lock:
                    if self._pending and self._clock() - self._first_at >= self._within:
                        await self._flush(stream)
            except asyncio.CancelledError:
                raise
            except Exception:  # the next tick retries the same events
                log.exception("batch flush failed; retrying")

    async def _flush(self, stream: Any) -> None:
        events = self._pending
        messages = [
            Message(e.value, e.key, e.message.topic, e.message.partition, e.message.offset)
            for e in events
        ]
        await self._handler(messages)
        self._pending = []
        for event in events:
            await stream.ack(event)
