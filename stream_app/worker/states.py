"""Live model state per entity, and its packed form in the state table.

All series of an entity (and its joint scorer) are packed into one blob,
because the entity is the Kafka key: the state then sits in the changelog
partition that matches the readings partition, and a rebalanced worker finds
it there. The blob also records the offset of the last reading it reflects.

A stored state that cannot be read (corrupt bytes in the changelog, a layout
no reader knows) is reported and that part of the models starts afresh: the
entity's other series keep theirs, and its readings are scored on, never
stuck behind a state nobody can load.

Blobs are stored zlib-compressed (level 1) behind a magic prefix: the packed
state of the bench's entities (three series) shrinks from about 6.9 KB to
0.8 KB for some 50 us, and every checkpoint writes each changed entity to
the changelog (3.4 MB/s at 1,000 entities every 2 s, which the worker,
the broker and a restarting worker's table recovery all paid for). Blobs
without the prefix, written before, are read as they are.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable

from stream_app.core import EngineConfig, EntityProcessor, EntityScorer, SeriesProcessor

# (entity, part, metric, error): part is "entity" (the whole blob), "joint", "offset" or
# "series"; metric names the series ("" for the other parts)
OnUnreadable = Callable[[str, str, str, Exception], None]

# Key of an entity's joint-scorer state in its packed blob (no metric name starts with NUL).
ENTITY_KEY = "\x00entity"
# Key of the offset (in the entity's readings partition) of the last reading
# its saved state reflects: a replay after a crash skips readings up to it.
OFFSET_KEY = "\x00offset"
# The part a packed key holds, when it is not a metric's series.
_PARTS = {ENTITY_KEY: "joint", OFFSET_KEY: "offset"}
_OFFSET = struct.Struct("<q")
_NAME = struct.Struct("<H")
_BLOB = struct.Struct("<I")
# No plain blob starts with these bytes: its first two are a metric name's
# length ("TS" would say 21,332 characters).
_ZLIB_MAGIC = b"TSZ1"


def compress_blob(packed: bytes) -> bytes:
    """A packed entity as stored in the state table.

    >>> blob = compress_blob(pack_entity({"a": bytes(1000)}))
    >>> len(blob) < 100, unpack_entity(decompress_blob(blob)) == {"a": bytes(1000)}
    (True, True)
    """
    return _ZLIB_MAGIC + zlib.compress(packed, 1)


def decompress_blob(blob: bytes) -> bytes:
    """Inverse of :func:`compress_blob`; a blob stored uncompressed passes through."""
    if blob[:4] == _ZLIB_MAGIC:
        return zlib.decompress(blob[4:])
    return blob


def pack_entity(states: dict[str, bytes]) -> bytes:
    """All series states of one entity as one blob (metric name, state bytes)*."""
    parts: list[bytes] = []
    for metric, blob in sorted(states.items()):
        name = metric.encode()
        parts += (_NAME.pack(len(name)), name, _BLOB.pack(len(blob)), blob)
    return b"".join(parts)


def unpack_entity(data: bytes) -> dict[str, bytes]:
    """Inverse of :func:`pack_entity`.

    >>> unpack_entity(pack_entity({"a": b"xy", "b": b""}))
    {'a': b'xy', 'b': b''}
    """
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        (n,) = _NAME.unpack_from(data, pos)
        pos += _NAME.size
        name = data[pos : pos + n].decode()
        pos += n
        (m,) = _BLOB.unpack_from(data, pos)
        pos += _BLOB.size
        out[name] = data[pos : pos + m]
        pos += m
    return out


class EntityStates:
    """Live :class:`EntityProcessor`\\ s of the entities this worker owns, loaded on first use."""

    def __init__(
        self,
        config: EngineConfig,
        load: Callable[[str], bytes | None],
        on_unreadable: OnUnreadable | None = None,
    ) -> None:
        self.config = config
        self._load = load
        self._on_unreadable = on_unreadable
        self._live: dict[str, EntityProcessor] = {}
        # Offset of the last reading each live entity's models reflect.
        self._offsets: dict[str, int] = {}

    def __len__(self) -> int:
        return sum(len(e.series) for e in self._live.values())

    def entities(self) -> Iterable[str]:
        return self._live.keys()

    def entity(self, entity: str) -> EntityProcessor:
        live = self._live.get(entity)
        if live is None:
            live = self._restore(entity, self._load(entity))
            self._live[entity] = live
        return live

    def _restore(self, entity: str, blob: bytes | None) -> EntityProcessor:
        if not blob:
            return EntityProcessor.create(entity, self.config)
        series: dict[str, SeriesProcessor] = {}
        joint: EntityScorer | None = None
        try:
            parts = unpack_entity(decompress_blob(blob))
        except Exception as exc:  # any bytes can sit in the table: never let them wedge it
            self._unreadable(entity, "entity", "", exc)
            parts = {}
        for metric, state in parts.items():
            try:
                if metric == OFFSET_KEY:
                    self._offsets[entity] = _OFFSET.unpack(state)[0]
                elif metric == ENTITY_KEY:
                    params = self.config.entity_params(entity)
                    if params is not None:
                        joint = EntityScorer.from_bytes(state, params=params)
                else:
                    series[metric] = SeriesProcessor.from_bytes(state, config=self.config)
            except Exception as exc:
                part = _PARTS.get(metric)
                if part is None:
                    self._unreadable(entity, "series", metric, exc)
                else:
                    self._unreadable(entity, part, "", exc)
        joint = joint or EntityScorer.for_entity(entity, self.config)
        return EntityProcessor(entity, self.config, series, joint)

    def _unreadable(self, entity: str, part: str, metric: str, exc: Exception) -> None:
        if self._on_unreadable is not None:
            self._on_unreadable(entity, part, metric, exc)

    def evict(self, limit: int, busy: Callable[[str], bool]) -> list[str]:
        """Drop live entities beyond ``limit`` that the table holds as they are.

        Only entities that are not ``busy`` (changed since their state was saved)
        and have no silence left to watch (every series silent already, or too
        young to judge) go, oldest loaded first, down to nine tenths of
        ``limit``; their next reading loads them again from the table. Active
        entities stay whatever the limit, so it bounds what idle, dead and
        one-off entities cost, not what a worker's live series need. A scan
        costs a look at each live entity; the caller spaces them.
        """
        live = self._live
        if not limit or len(live) <= limit:
            return []
        keep = limit - limit // 10
        gone: list[str] = []
        for entity, proc in list(live.items()):
            if len(live) <= keep:
                break
            if not busy(entity) and not proc.watched():
                del live[entity]
                self._offsets.pop(entity, None)
                gone.append(entity)
        return gone

    def processor(self, entity: str, metric: str) -> SeriesProcessor:
        return self.entity(entity).processor(metric)

    def admit(self, entity: str, offset: int | None) -> EntityProcessor | None:
        """``entity``'s processor for its reading at ``offset``, now counted as learned;
        None when its models already reflect that offset (a replayed reading)."""
        live = self.entity(entity)
        if offset is not None:
            if offset <= self._offsets.get(entity, -1):
                return None
            self._offsets[entity] = offset
        return live

    def entity_scorer(self, entity: str) -> EntityScorer | None:
        """The joint (multivariate) scorer of ``entity``, when a config rule enables one."""
        return self.entity(entity).joint

    def dump(self, entity: str) -> bytes:
        live = self.entity(entity)
        states = {m: p.to_bytes() for m, p in live.series.items()}
        if live.joint is not None:
            states[ENTITY_KEY] = live.joint.to_bytes()
        offset = self._offsets.get(entity)
        if offset is not None:
            states[OFFSET_KEY] = _OFFSET.pack(offset)
        return compress_blob(pack_entity(states))

    def forget(self) -> None:
        """Drop the live cache (after a rebalance the table is the truth)."""
        self._live.clear()
        self._offsets.clear()

    def reconfigure(self, config: EngineConfig) -> None:
        self.config = config
        self.forget()
