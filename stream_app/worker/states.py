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

import math
import struct
import zlib
from collections.abc import Callable, Iterable
from typing import NamedTuple

from stream_app.core import EngineConfig, EntityProcessor, EntityScorer, SeriesProcessor

# (entity, part, metric, error): part is "entity" (the whole blob), "joint", "offset",
# "label" or "series"; metric names the series ("" for the other parts)
OnUnreadable = Callable[[str, str, str, Exception], None]

# Key of an entity's joint-scorer state in its packed blob (no metric name starts with NUL).
ENTITY_KEY = "\x00entity"
# Key of the partition and offset of the last reading its saved state reflects: a replay
# after a crash skips readings up to it in that partition. A reading from another partition
# (a producer that does not hash keys as Kafka's clients do, partitions added) is never
# taken for a replay: offsets of two partitions do not compare, and one such reading far
# ahead made every later one of its entity look replayed, unscored and unstored.
OFFSET_KEY = "\x00offset"
# Key of the partition and offset of the last operator's label (tsguard.feedback) its
# saved state reflects: a label read again after a crash is skipped, never applied twice
# (see stream_app/worker/labels.py). A worker from before it reads it as a series it
# cannot read, counted, and goes on.
LABEL_KEY = "\x00label"
# The part a packed key holds, when it is not a metric's series.
_PARTS = {ENTITY_KEY: "joint", OFFSET_KEY: "offset", LABEL_KEY: "label"}
_OFFSET = struct.Struct("<q")  # the offset alone: states saved before the partition was
_PARTITION_OFFSET = struct.Struct("<qq")
_ANY_PARTITION = -1  # a state saved with its offset alone
_NAME = struct.Struct("<H")
_BLOB = struct.Struct("<I")
# No plain blob starts with these bytes: its first two are a metric name's
# length ("TS" would say 21,332 characters).
_ZLIB_MAGIC = b"TSZ1"
# After the compressed stream, where the silence of an entity not yet heard from since a
# restart is judged from (see ``Follow``): ``zlib.decompress`` stops at the stream's end,
# so readers from before it read such blobs as they did. Ends with _FOLLOW_MAGIC, and is
# taken only where the stream ended exactly before it.
_FOLLOW = struct.Struct("<dq")  # behind, partition
_FOLLOW_MAGIC = b"TSF1"
_FOLLOW_LEN = struct.Struct("<H")
MAX_SOURCE_BYTES = 1024


class Follow(NamedTuple):
    """The clock an entity's silence was judged by when it was saved: its ``source`` and
    ``partition``, and how far ``behind`` that clock its last reading came."""

    source: str
    partition: int
    behind: float


def compress_blob(packed: bytes, follow: Follow | None = None) -> bytes:
    """A packed entity as stored in the state table, with the clock it follows.

    >>> blob = compress_blob(pack_entity({"a": bytes(1000)}), Follow("fleet", 3, 1.5))
    >>> len(blob) < 100, unpack_entity(decompress_blob(blob)) == {"a": bytes(1000)}
    (True, True)
    >>> read_follow(blob)
    Follow(source='fleet', partition=3, behind=1.5)
    """
    blob = _ZLIB_MAGIC + zlib.compress(packed, 1)
    if follow is None:
        return blob
    source = follow.source.encode("utf-8", "replace")[:MAX_SOURCE_BYTES]
    trailer = _FOLLOW.pack(follow.behind, follow.partition) + source
    return blob + trailer + _FOLLOW_LEN.pack(len(trailer)) + _FOLLOW_MAGIC


def decompress_blob(blob: bytes) -> bytes:
    """Inverse of :func:`compress_blob`; a blob stored uncompressed passes through."""
    if blob[:4] == _ZLIB_MAGIC:
        return zlib.decompress(blob[4:])
    return blob


def read_follow(blob: bytes) -> Follow | None:
    """The clock a stored blob says its entity followed; None when it says none (saved
    before it was recorded, uncompressed) or cannot be read.

    >>> read_follow(compress_blob(b"x")) is None, read_follow(b"TSZ1 garbage") is None
    (True, True)
    """
    if blob[:4] != _ZLIB_MAGIC or blob[-4:] != _FOLLOW_MAGIC:
        return None
    try:
        stream = zlib.decompressobj()
        stream.decompress(blob[4:])
        rest = stream.unused_data
        if not stream.eof or len(rest) < _FOLLOW.size + 6:
            return None
        (n,) = _FOLLOW_LEN.unpack_from(rest, len(rest) - 6)
        if len(rest) != n + 6:
            return None
        behind, partition = _FOLLOW.unpack_from(rest)
        source = rest[_FOLLOW.size : n].decode()
    except (zlib.error, struct.error, UnicodeDecodeError):
        return None
    if not math.isfinite(behind) or partition < 0:
        return None
    return Follow(source, partition, behind)


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
        # live entities whose rules changed since they were loaded: each goes on under
        # the new rules at its next use (see ``reconfigure``)
        self._stale: set[str] = set()
        # (partition, offset) of the last reading each live entity's models reflect.
        self._offsets: dict[str, tuple[int, int]] = {}
        # (partition, offset) of the last operator's label each live entity's models took.
        self._labels: dict[str, tuple[int, int]] = {}
        # Entities loaded from the table (or created, with nothing in it) whose first
        # reading has not been scored yet, with the episodes their models have open.
        # An episode stored open that they do not know has lost its model (a state
        # unreadable, too large to save, older than the episode, or gone): nothing
        # would ever resolve it (see ``ReadingScorer.process`` and the sink's orphans).
        self.restored: dict[str, tuple[str, ...]] = {}
        # the clock each live entity follows, saved with its state (set by the scorer)
        self.follows: Callable[[str], Follow | None] | None = None
        # Entities forgotten (see ``forget_entity``) and not heard from since: their
        # next checkpoint deletes them from the table, and until then the table's copy
        # is not theirs any more (a reading starts them afresh)
        self._forgotten: set[str] = set()

    def __len__(self) -> int:
        return sum(len(e.series) for e in self._live.values())

    def entities(self) -> Iterable[str]:
        return self._live.keys()

    def is_live(self, entity: str) -> bool:
        return entity in self._live

    def wake(
        self, entity: str, partitions: set[int] | None = None, *, legacy: bool = False
    ) -> tuple[EntityProcessor, Follow] | None:
        """``entity``, saved and not live, made live for its silence to be judged, with
        the clock it followed (the caller lets it go again with :meth:`drop`); None when
        its state says no clock (saved before the clock was recorded), or one of a
        partition not in ``partitions`` (None: any).

        ``legacy``: one saved with no clock is woken too, with the partition of its last
        reading, no source and a NaN ``behind`` (its clock is not known)."""
        if entity in self._live or entity in self._forgotten:
            return None
        blob = self._load(entity)
        if not blob:
            return None
        follow = read_follow(blob)
        if follow is None:
            if not legacy:
                return None
            proc = self._woken(entity, blob)
            seen = self._offsets.get(entity)
            if seen is None or seen[0] == _ANY_PARTITION:
                self.drop(entity)
                return None
            follow = Follow("", seen[0], math.nan)
        else:
            proc = None
        if partitions is not None and follow.partition not in partitions:
            if proc is not None:
                self.drop(entity)
            return None
        return (proc or self._woken(entity, blob)), follow

    def saved_follow(self, entity: str, partitions: set[int] | None = None) -> Follow | None:
        """The clock ``entity``'s saved state says it followed; None when it says none
        (saved before the clock was recorded), it was forgotten, or the clock is of a
        partition not in ``partitions`` (None: any)."""
        if entity in self._forgotten:
            return None
        blob = self._load(entity)
        follow = read_follow(blob) if blob else None
        if follow is None or (partitions is not None and follow.partition not in partitions):
            return None
        return follow

    def _woken(self, entity: str, blob: bytes) -> EntityProcessor:
        """``_loaded`` without reporting a part it cannot read: the scans load saved
        entities again at every sweep, and each counted the same broken state again (its
        next reading reports it)."""
        report, self._on_unreadable = self._on_unreadable, None
        try:
            return self._loaded(entity, blob)
        finally:
            self._on_unreadable = report

    def drop(self, entity: str) -> None:
        """``entity`` out of memory (the table holds it as it is)."""
        self._live.pop(entity, None)
        self._stale.discard(entity)
        self._offsets.pop(entity, None)
        self._labels.pop(entity, None)
        self.restored.pop(entity, None)  # loaded again, it is looked at again

    def forget_entity(self, entity: str) -> None:
        """``entity`` forgotten: out of memory, and deleted from the table by its next
        checkpoint (its ``dump`` is then empty); a later reading starts it afresh."""
        self.drop(entity)
        self._forgotten.add(entity)

    def deleted(self, entity: str) -> None:
        """The table's copy of ``entity`` was deleted (its forgetting was saved): the name
        need not be kept any more (kept, every entity forgotten stayed in memory until the
        next rebalance)."""
        self._forgotten.discard(entity)

    def entity(self, entity: str) -> EntityProcessor:
        live = self._live.get(entity)
        if live is None:
            if self._forgotten and entity in self._forgotten:
                self._forgotten.discard(entity)
                return self._loaded(entity, None)
            live = self._loaded(entity, self._load(entity))
        elif self._stale and entity in self._stale:
            # the rules changed: on under the new ones with all it learned, as if
            # restored from a checkpoint taken just now
            self._stale.discard(entity)
            live = self._live[entity] = self._restore(entity, self._pack(entity, live))
        return live

    def _loaded(self, entity: str, blob: bytes | None) -> EntityProcessor:
        """``entity`` made live from its saved ``blob`` (None: none saved)."""
        live = self._live[entity] = self._restore(entity, blob)
        self.restored[entity] = live.open_episode_ids()
        return live

    def is_stale(self, entity: str) -> bool:
        """Whether ``entity`` is live and its rules changed since it was loaded: its next
        use (:meth:`entity`) restores it under them (see :meth:`reconfigure`)."""
        return entity in self._stale

    def stale(self) -> int:
        """Live entities not yet restored under the rules changed since they were loaded."""
        return len(self._stale)

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
                    self._offsets[entity] = (
                        (_ANY_PARTITION, _OFFSET.unpack(state)[0])
                        if len(state) == _OFFSET.size
                        else _PARTITION_OFFSET.unpack(state)
                    )
                elif metric == LABEL_KEY:
                    self._labels[entity] = _PARTITION_OFFSET.unpack(state)
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
                self.drop(entity)
                gone.append(entity)
        return gone

    def processor(self, entity: str, metric: str) -> SeriesProcessor:
        return self.entity(entity).processor(metric)

    def scored(self, entity: str, metric: str) -> SeriesProcessor | None:
        """``entity``'s model of ``metric`` where this worker has one (live or saved);
        None otherwise, without making one: an operator's label concerns an episode a
        model opened, and one naming a series never scored must not become a live
        series (any message on the feedback topic did, its state saved for good)."""
        if entity in self._live:
            return self.entity(entity).series.get(metric)
        if entity in self._forgotten:
            return None
        blob = self._load(entity)
        return self._loaded(entity, blob).series.get(metric) if blob else None

    def admit(
        self, entity: str, offset: int | None, partition: int | None = None
    ) -> EntityProcessor | None:
        """``entity``'s processor for its reading at ``offset`` of ``partition``, now
        counted as learned; None when its models already reflect that offset of that
        partition (a replayed reading)."""
        live = self.entity(entity)
        if offset is not None:
            where = _ANY_PARTITION if partition is None else partition
            seen = self._offsets.get(entity)
            if (
                seen is not None
                and offset <= seen[1]
                and (seen[0] == where or _ANY_PARTITION in (seen[0], where))
            ):
                return None
            self._offsets[entity] = (where, offset)
        return live

    def admit_label(self, entity: str, offset: int | None, partition: int | None) -> bool:
        """Whether ``entity``'s live models may take its operator's label at ``offset`` of
        ``partition`` (of the feedback topic), now counted as taken; False when they
        already reflect it (a label read again after a crash: its state was saved, its
        offset not yet committed). Labels of one entity come in order through one
        partition; one from another partition is never taken for one read again."""
        if offset is None or partition is None:
            return True
        seen = self._labels.get(entity)
        if seen is not None and seen[0] == partition and offset <= seen[1]:
            return False
        self._labels[entity] = (partition, offset)
        return True

    def entity_scorer(self, entity: str) -> EntityScorer | None:
        """The joint (multivariate) scorer of ``entity``, when a config rule enables one."""
        return self.entity(entity).joint

    def dump(self, entity: str) -> bytes:
        """``entity``'s state as the table keeps it; empty when it was forgotten (the
        checkpoint deletes it)."""
        if self._forgotten and entity in self._forgotten:
            return b""
        live = self.entity(entity)
        follows = self.follows
        return compress_blob(self._pack(entity, live), follows(entity) if follows else None)

    def _pack(self, entity: str, live: EntityProcessor) -> bytes:
        states = {m: p.to_bytes() for m, p in live.series.items()}
        if live.joint is not None:
            states[ENTITY_KEY] = live.joint.to_bytes()
        seen = self._offsets.get(entity)
        if seen is not None:
            states[OFFSET_KEY] = _PARTITION_OFFSET.pack(*seen)
        label = self._labels.get(entity)
        if label is not None:
            states[LABEL_KEY] = _PARTITION_OFFSET.pack(*label)
        return pack_entity(states)

    def forget(self) -> None:
        """Drop the live cache (after a rebalance the table is the truth)."""
        self._forgotten.clear()
        self._live.clear()
        self._stale.clear()
        self._offsets.clear()
        self._labels.clear()
        self.restored.clear()

    def reconfigure(self, config: EngineConfig) -> None:
        """Rules changed (the control topic): every live entity goes on under ``config``
        with all it has learned, as if restored from a checkpoint taken just now (a
        series whose detector changed starts that model afresh, as after a restart).

        Dropping the live models instead (as before) reloaded them from the table's last
        checkpoint: the readings learned since were never learned again (they are not
        read again), their open episodes were resolved as "model lost" and later ones
        opened from models that had missed points; any rule published mid-stream, even
        one matching none of the series, did it to every live entity.

        Each live entity is restored under ``config`` at its next use (its next
        reading, a label, a checkpoint of it, the silence scan, which spreads them over
        its scans), not all at once: packing and restoring 20,000 entities held the
        event loop 8-11 s in the pure-Python build, past the 10 s in which the consumer
        must send a heartbeat.
        """
        self.config = config
        self._stale.update(self._live)
