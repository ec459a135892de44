"""One owner for "the state never leads the database and never lags committed offsets".

A partition's records are acked (so their offsets may be committed) only once
the model state that reflects them is saved, and that state is saved only
once every batch it reflects is durable in the database. So after a crash
the committed offsets are at or behind the saved state, and the saved state
is at or behind the database: the replay re-learns what the state lacks, and
skips (by each entity's saved offset) what it already has.

The :class:`Checkpointer` keeps, per partition, the entities changed since
their last snapshot and the durable records not yet acked. The batcher asks
it whether a partition is due after scoring a batch, takes a
:meth:`~Checkpointer.snapshot` (CPU only, in slices: the event loop runs
between them, no batch is scored), and has it :meth:`~Checkpointer.save`\\ d
once that batch and all before it are durable; saving writes the state table,
waits until its changelog records are delivered, then acks the partition's
held records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from stream_app.metrics import Metrics
from stream_app.worker.feed import Record

log = logging.getLogger(__name__)

# The largest packed state of one entity that is saved: the table's changelog record
# must fit the producer's request limit (Faust's default, 1,000,000 bytes, with room for
# the key). A larger one (a rule's forest of 50 trees of height 12: 3 MB compressed)
# failed the producer, and the worker crashed on it at every restart.
MAX_STATE_BLOB = 900_000

# Entities packed between two returns to the event loop. Packing one took about
# 0.15 ms (pure-Python build): a snapshot of 5,000 entities held the loop 0.6-1.2 s,
# timers and the consumer's heartbeats waiting behind it.
DUMP_SLICE = 200

# The largest share of the worker's time that packing may take. A snapshot's packing
# grows with the entities changed since the last one: in a backlog a fleet of 20,000
# entities changes whole every period, and at the 2 s default the in-memory core spent
# 68 % of its CPU packing (3,728 readings a CPU second, against 11,831 with no
# checkpoint; ``python -m benchmarks.worker_cpu --entities 20000``). So the next
# snapshot waits at least the last one's packing time over this share: the period
# stretches only while packing is that dear, and comes back once the backlog is read.
PACK_SHARE = 0.2

# A changed entity's new packed state, or None: deleted (it was forgotten).
Change = tuple[bytes, bytes | None]
# Sends a save's changes to the changelog and waits for their delivery; it sends no more
# once its second argument says False (the partitions went: the states are not ours).
ChangelogSend = Callable[[list[Change], Callable[[], bool]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Packed model state of one partition's changed entities, as of one batch."""

    partition: int
    blobs: dict[str, bytes]
    generation: int


class StateDump(Protocol):
    def dump(self, entity: str) -> bytes:
        """An entity's packed model state."""

    def deleted(self, entity: str) -> None:
        """An entity's empty dump (it was forgotten) was saved: deleted from the table."""


class Checkpointer:
    """Per partition: snapshot the changed entities, save them, then ack what they cover.

    Partitions take turns, one every ``every_s`` / (partitions with changes or
    held records), so each is checkpointed about every ``every_s`` and the work
    (and the pause it makes) is spread out; while packing is dear (a backlog of a
    large fleet) the turns are spaced so that it takes at most ``PACK_SHARE`` of
    the time (:meth:`spacing`). Entities changed outside any
    partition's records (partition -1: operator feedback) go with whichever
    snapshot comes next; that is safe because each entity's blob carries the
    offset of the last reading it reflects.

    ``table`` is the local copy of the state; ``changelog``, when given, makes
    each save's changes durable before its records are acked, and stops sending them
    when the models are dropped meanwhile (the Faust worker
    writes its table's changelog there, see
    :class:`~stream_app.worker.faust_compat.TableChangelog`).
    """

    def __init__(
        self,
        states: StateDump,
        table: MutableMapping[bytes, bytes] | None,
        metrics: Metrics,
        *,
        every_s: float,
        ack: Callable[[Record], Any],
        generation: Callable[[], int],
        clock: Callable[[], float] = time.time,
        changelog: ChangelogSend | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._states = states
        self._table = table
        self._changelog = changelog
        self._metrics = metrics
        self._every_s = every_s
        self._ack = ack
        self._group_generation = generation
        self._clock = clock
        self._dirty: dict[int, set[str]] = {}  # partition -> entities changed since its snapshot
        self._held: dict[int, list[Record]] = {}  # partition -> durable records, not yet acked
        self._checkpointed_at: dict[int, float] = {}
        self._last = 0.0
        self._timer = timer  # what packing takes is timed by this clock
        self._packed_s = 0.0  # the packing time of the last snapshot (the event loop's)
        # Bumped whenever the live models are dropped: snapshots taken before
        # are not saved (the entities may not be ours any more).
        self._models = 0
        self._sizes: dict[str, int] = {}
        self._total = 0
        # entity -> snapshots taken and not yet saved that hold it
        self._unsaved: dict[str, int] = {}
        self._too_large: set[str] = set()  # entities whose state was too large (said once)

    def touched(self, changed: Iterable[tuple[int, str]]) -> None:
        """(partition, entity) pairs whose models changed."""
        for partition, entity in changed:
            self._dirty.setdefault(partition, set()).add(entity)

    def hold(self, records: Iterable[Record]) -> None:
        """These records' batch is durable; they are acked with their partition's next save."""
        for record in records:
            self._held.setdefault(-1 if record.partition is None else record.partition, []).append(
                record
            )

    def due(self) -> int | None:
        """The partition to checkpoint now, if any (-1: only partition-less changes)."""
        parts = {p for p in self._dirty if p >= 0} | set(self._held)
        if not parts and -1 not in self._dirty:
            return None
        if self._clock() - self._last < self.spacing(len(parts)):
            return None
        return min(parts, key=lambda p: self._checkpointed_at.get(p, 0.0)) if parts else -1

    def spacing(self, partitions: int) -> float:
        """The time from one snapshot to the next, with ``partitions`` taking turns:
        ``every_s`` shared among them, or longer while packing the last snapshot took
        more than ``PACK_SHARE`` of that.

        >>> c = Checkpointer(None, None, None, every_s=2.0, ack=print, generation=int)
        >>> c.spacing(4)
        0.5
        >>> c._packed_s = 0.4  # the last snapshot packed for 0.4 s
        >>> c.spacing(4), c.spacing(1)
        (2.0, 2.0)
        >>> Checkpointer(None, None, None, every_s=0.0, ack=print, generation=int).spacing(1)
        0.0
        """
        if self._every_s <= 0.0:  # a snapshot after every batch, as asked
            return 0.0
        return max(self._every_s / max(partitions, 1), self._packed_s / PACK_SHARE)

    def pending(self) -> list[int]:
        """Every partition with changes not yet in a snapshot or records not yet acked."""
        return sorted(set(self._dirty) | set(self._held))

    async def snapshot(self, partition: int) -> Snapshot:
        """The state, as of now, of every entity of ``partition`` changed since its last one.

        Packed ``DUMP_SLICE`` entities at a time, the event loop running in between:
        the caller holds off scoring until it returns (the batcher's lock), so every
        entity is packed as of the same batch. Given up (a snapshot nothing saves)
        when the live models are dropped meanwhile (a revoke): packing would load
        the dropped entities again.
        """
        dirty = self._dirty.pop(partition, set()) | self._dirty.pop(-1, set())
        self._last = self._checkpointed_at[partition] = self._clock()
        models = self._models
        unsaved = self._unsaved
        for entity in dirty:  # busy from now on: the table lags their live state
            unsaved[entity] = unsaved.get(entity, 0) + 1
        blobs: dict[str, bytes] = {}
        self._packed_s = 0.0
        started = self._timer()
        try:
            for n, entity in enumerate(dirty, 1):
                blob = self._states.dump(entity)
                if len(blob) <= MAX_STATE_BLOB:
                    blobs[entity] = blob
                else:
                    self._not_saved(entity, len(blob))
                if n % DUMP_SLICE == 0:
                    self._packed_s += self._timer() - started
                    await asyncio.sleep(0)
                    started = self._timer()
                    if self._models != models:
                        break  # reset() cleared ``unsaved`` already
            self._packed_s += self._timer() - started
        except BaseException:
            # A pack failed (the idle tick logs it and goes on): the entities are still
            # changed since their last save, and this snapshot holds none of them.
            if self._models == models:
                self._dirty.setdefault(partition, set()).update(dirty)
                for entity in dirty:
                    self._release(entity)
            raise
        if self._models == models:
            for entity in dirty.difference(blobs):
                self._release(entity)
        return Snapshot(partition, blobs, models)

    def _not_saved(self, entity: str, size: int) -> None:
        # not saved: the entity goes on scoring, and re-learns after a restart from
        # its last saved state (counted and said once per entity, not per checkpoint)
        self._metrics.state_unsaved.inc()
        if entity not in self._too_large:
            self._too_large.add(entity)
            log.warning(
                "the state of entity %r is %d bytes packed, over the %d that can be "
                "saved: it is not checkpointed (its models re-learn after a restart); "
                "smaller detector parameters for its series keep it",
                entity[:200],
                size,
                MAX_STATE_BLOB,
            )

    def _release(self, entity: str) -> None:
        """One snapshot holding ``entity`` is saved (or was given up)."""
        left = self._unsaved.get(entity, 0) - 1
        if left > 0:
            self._unsaved[entity] = left
        else:
            self._unsaved.pop(entity, None)

    @property
    def models(self) -> int:
        """Bumped whenever the live models are dropped (:meth:`reset`): a batch scored
        under one value and written under another was scored by models that are gone."""
        return self._models

    def busy(self, entity: str) -> bool:
        """Whether the table may not hold ``entity``'s live state yet (changed, or not saved)."""
        return entity in self._unsaved or any(entity in d for d in self._dirty.values())

    async def save(self, snapshot: Snapshot) -> bool:
        """Write a snapshot to the table and ack its partition's held records.

        Call only once the batch the snapshot was taken after, and every batch
        before it, is durable. The records are acked once the changelog has the
        snapshot's states (a failed delivery raises, and nothing is acked). False
        (nothing saved or acked) when the models were dropped since the snapshot
        was taken, or while its changelog records were on their way.
        """
        if snapshot.generation != self._models:
            return False
        for entity in snapshot.blobs:
            self._release(entity)
        changes: list[Change] = []
        if self._table is not None:
            table = self._table
            for entity, blob in snapshot.blobs.items():
                key = entity.encode()
                if not blob:  # forgotten: deleted (a tombstone in the changelog)
                    if key in table:
                        del table[key]
                        changes.append((key, None))
                    self._total -= self._sizes.pop(entity, 0)
                    self._states.deleted(entity)
                    continue
                table[key] = blob
                changes.append((key, blob))
                self._total += len(blob) - self._sizes.get(entity, 0)
                self._sizes[entity] = len(blob)
            self._metrics.state_bytes.set(self._total)
        if changes and self._changelog is not None:
            # The partitions can go while the states are handed over (a revoke whose
            # bound ran out with this batch mid-save): the rest are not sent, since
            # landing after their next owner's they would be what the changelog holds
            # last, and what the next recovery loads.
            await self._changelog(changes, lambda: snapshot.generation == self._models)
            if snapshot.generation != self._models:
                return False  # the partitions went meanwhile: their acks are not ours
        current = self._group_generation()
        for record in self._held.pop(snapshot.partition, ()):
            if record.generation_id in (None, current):
                self._ack(record)
        return True

    def reset(self) -> None:
        """The live models were dropped: nothing changed or held so far is saved or acked."""
        self._dirty.clear()
        self._held.clear()
        self._unsaved.clear()
        self._models += 1

    def revoked(self) -> None:
        """Partitions were taken away: also forget what the table held of ours."""
        self.reset()
        self._sizes.clear()
        self._total = 0
