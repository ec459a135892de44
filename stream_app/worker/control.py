"""Detector rules that change at run time, from a compacted control topic.

The API publishes ``{name: rule}`` records (key = rule name, value = rule
JSON, ``null`` to delete) to ``tsguard.control``. Every worker reads the
whole topic with its own group-less consumer, so each one sees every rule,
rebuilds its :class:`EngineConfig` and hands it to ``on_change``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream_app.core import EngineConfig
from stream_app.settings import Settings

log = logging.getLogger(__name__)


def merge_rules(base: dict[str, Any], dynamic: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Dynamic rules (sorted by name) take precedence over the file's rules.

    >>> merge_rules({"rules": [{"pattern": "*"}]}, {"b": {"pattern": "x/*"}})["rules"]
    [{'pattern': 'x/*'}, {'pattern': '*'}]
    """
    merged = dict(base)
    merged["rules"] = [dynamic[k] for k in sorted(dynamic)] + list(base.get("rules", []))
    return merged


class ControlWatcher:
    """Follows the control topic and rebuilds the engine configuration."""

    def __init__(
        self,
        settings: Settings,
        base: dict[str, Any],
        on_change: Callable[[EngineConfig], None],
    ) -> None:
        self._settings = settings
        self._base = base
        self._on_change = on_change
        self._rules: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self.version = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tsguard-control")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def apply(self, key: bytes | None, value: bytes | None) -> bool:
        """Apply one control record; True when the configuration changed."""
        if key is None:
            return False
        name = key.decode("utf-8", errors="replace")
        if value is None:
            return self._rules.pop(name, None) is not None
        try:
            rule = orjson.loads(value)
            candidate = merge_rules(self._base, {**self._rules, name: rule})
            EngineConfig.from_mapping(candidate)  # reject a rule that does not parse
        except Exception as exc:
            log.warning("control: rule %r ignored: %s", name, exc)
            return False
        if self._rules.get(name) == rule:
            return False
        self._rules[name] = rule
        return True

    def config(self) -> EngineConfig:
        return EngineConfig.from_mapping(merge_rules(self._base, self._rules))

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker hiccup: keep the current rules, retry
                log.warning("control: consumer failed (%s); retrying", exc)
                await asyncio.sleep(2.0)

    async def _follow(self) -> None:
        topic = self._settings.topic_control
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False, group_id=None, **self._settings.kafka_client_kwargs()
        )
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            await consumer.seek_to_beginning(TopicPartition(topic, 0))
            async for record in consumer:
                if self.apply(record.key, record.value):
                    self.version += 1
                    self._on_change(self.config())
        finally:
            await consumer.stop()
