"""Compressed Kafka batches a consumer cannot, or must not, unpack.

aiokafka unpacks a compressed record batch whole, in memory, before the first of its
records is seen: a gzip batch of 2 MB that the broker took (it checks the compressed
size only) unpacked to 2 GB, and the worker's resident memory went to 4.5 GB before
its decoder refused the reading as too large; 8 MB of zstd unpacks to far more. And a
batch in a codec the client has no library for raised in the fetcher: one lz4 batch
from a Java producer (``compression.type=lz4``, a common setting) stopped the worker,
and every restart stopped again on the same batch.

:func:`install` (idempotent, process-wide) makes every aiokafka consumer of the
process unpack with an output bound, ``TSGUARD_KAFKA_MAX_BATCH_BYTES``, and turns a
batch that cannot be unpacked (beyond the bound, a codec without its library, corrupt
data) into one stand-in record at the batch's last offset: no key, no value, and the
header :data:`UNREADABLE_HEADER` saying what it was and why. The consumer moves past
the batch; the worker dead-letters the stand-in (``unreadable_batch``) and the other
consumers count it as the empty message it is. Nothing else is lost: a batch holds
what one producer sent in one request.

>>> import gzip
>>> _gzip(gzip.compress(b"x" * 1000) + gzip.compress(b"y")) == b"x" * 1000 + b"y"
True
>>> _gzip(gzip.compress(b" " * (2 * 1024 * 1024)), limit=1024 * 1024)
Traceback (most recent call last):
...
stream_app.kafka_batches.BatchTooLarge: unpacks to more than 1,048,576 bytes (TSGUARD_KAFKA_MAX_BATCH_BYTES)
"""

from __future__ import annotations

import importlib
import logging
import mmap
import secrets
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# The stand-in's header carries a name no producer can know (drawn per process): a
# record from the wire with the plain name is an ordinary record, not a lost batch.
UNREADABLE_HEADER = f"tsguard-unreadable-batch-{secrets.token_hex(8)}"
CODECS = {1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
# aiokafka's record modules and the names they call to unpack (module globals, so
# that a replacement is seen by the compiled module as well)
_RECORD_MODULES = (
    "aiokafka.record._crecords.default_records",
    "aiokafka.record.default_records",
    "aiokafka.record._crecords.legacy_records",
    "aiokafka.record.legacy_records",
)
_XERIAL = b"\x82SNAPPY\x00"  # the block framing of Java's snappy streams
# an unpacked batch larger than this gives its pages back to the system afterwards
_RELEASE_ABOVE = 8 * 1024 * 1024

_lock = threading.Lock()
_limit = 128 * 1024 * 1024
_installed = False
_scratch = threading.local()


class BatchTooLarge(Exception):
    """A compressed batch unpacks beyond the bound."""


def install(max_batch_bytes: int) -> None:
    """Bound unpacking at ``max_batch_bytes`` and guard every consumer of the process."""
    global _limit, _installed
    with _lock:
        _limit = int(max_batch_bytes)
        if _installed:
            return
        decoders: dict[str, Callable[[Any], bytes]] = {
            "gzip_decode": _gzip,
            "snappy_decode": _snappy,
            "lz4_decode": _lz4,
            "zstd_decode": _zstd,
        }
        for name in _RECORD_MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:  # the pure-Python build of aiokafka has no _crecords
                continue
            for attr, decoder in decoders.items():
                if attr in vars(module):
                    setattr(module, attr, decoder)
        from aiokafka.consumer import fetcher

        fetcher.PartitionRecords.__init__ = _guarded_init(fetcher.PartitionRecords.__init__)
        _installed = True


def unreadable_detail(headers: Any) -> str | None:
    """What the stand-in record of an unreadable batch says, or None for any other."""
    for key, value in headers or ():
        if key == UNREADABLE_HEADER:
            return bytes(value or b"").decode("utf-8", errors="replace")
    return None


# Offsets the fetcher passed over without a record, per topic and partition, the newest
# kept: control batches (a transaction's commit or abort marker) and the offsets a
# stand-in stands in for below its own (where the batch, or what was left of it unread,
# began). The worker's offset guard took such a jump for records the consumer skipped and
# sought back, and the same offsets were passed over again: the partition stood still
# until the watchdog's exit, and again after each restart (review s68e).
_HOLES_KEPT = 256
_holes: dict[tuple[str, int], deque[tuple[int, int]]] = {}


def passed_over(key: tuple[str, int], first: int, last: int) -> bool:
    """Whether every offset from ``first`` to ``last`` of ``key`` (topic, partition) was
    passed over by the fetcher as holding no record it hands over (a transaction marker,
    the offsets a stand-in stands in for).

    >>> _note_hole(("t", 0), 10, 10); _note_hole(("t", 0), 14, 15)
    >>> passed_over(("t", 0), 10, 10), passed_over(("t", 0), 14, 15), passed_over(("t", 0), 10, 11)
    (True, True, False)
    """
    holes = _holes.get(key)
    if not holes:
        return False
    at = first
    for low, high in sorted(list(holes)):  # a copy: the consumer's thread appends
        if low <= at <= high:
            at = high + 1
        if at > last:
            return True
    return False


def _note_hole(key: tuple[str, int], first: int, last: int) -> None:
    holes = _holes.get(key)
    if holes is None:
        holes = _holes.setdefault(key, deque(maxlen=_HOLES_KEPT))
    holes.append((first, last))


# --- bounded decoders ------------------------------------------------------------


def _too_large(limit: int) -> BatchTooLarge:
    return BatchTooLarge(f"unpacks to more than {limit:,} bytes (TSGUARD_KAFKA_MAX_BATCH_BYTES)")


def _gzip(payload: Any, limit: int | None = None) -> bytes:
    """gzip members one after another, unpacked a bounded piece at a time."""
    limit = _limit if limit is None else limit
    parts: list[bytes] = []
    total = 0
    data = bytes(payload)
    while data:
        unpacker = zlib.decompressobj(wbits=31)
        while True:
            part = unpacker.decompress(data, limit - total + 1)
            total += len(part)
            if total > limit:
                raise _too_large(limit)
            parts.append(part)
            data = unpacker.unconsumed_tail
            if unpacker.eof or not data:
                break
        if not unpacker.eof:
            raise EOFError("gzip data ends before its end marker")
        data = unpacker.unused_data
    return b"".join(parts)


def _into(unpack_into: Callable[[Any, Any], int], payload: Any, limit: int | None) -> bytes:
    """A codec that unpacks into a buffer: one of the bound's size (plus one byte) per
    thread, mapped lazily, so only what a batch fills is ever resident."""
    limit = _limit if limit is None else limit
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or len(buffer) != limit + 1:
        buffer = _scratch.buffer = mmap.mmap(-1, limit + 1)
    try:
        size = unpack_into(payload, buffer)
    except Exception as exc:
        # what it wrote before it failed goes back too: a bomb fills the whole buffer,
        # and its pages stayed resident (64 MiB of a 64 MiB bound) until a large batch
        buffer.madvise(mmap.MADV_DONTNEED)
        if "failed to write whole buffer" in str(exc):
            raise _too_large(limit) from None
        raise
    if size > limit:
        buffer.madvise(mmap.MADV_DONTNEED)
        raise _too_large(limit)
    out = buffer[:size]
    if size > _RELEASE_ABOVE:
        buffer.madvise(mmap.MADV_DONTNEED)
    return out


def _cramjam() -> Any:
    try:
        import cramjam
    except ImportError as exc:  # pragma: no cover - a dependency of tsguard
        raise RuntimeError("this codec needs the cramjam package") from exc
    return cramjam


def _lz4(payload: Any, limit: int | None = None) -> bytes:
    return _into(_cramjam().lz4.decompress_into, payload, limit)


def _zstd(payload: Any, limit: int | None = None) -> bytes:
    return _into(_cramjam().zstd.decompress_into, payload, limit)


def _snappy(payload: Any, limit: int | None = None) -> bytes:
    """Raw snappy, or Java's framing of raw blocks; each block states its own size."""
    limit = _limit if limit is None else limit
    snappy = _cramjam().snappy
    data = memoryview(bytes(payload))
    blocks: list[memoryview] = []
    if len(data) > 16 and bytes(data[:8]) == _XERIAL:
        at = 16
        while at < len(data):
            (size,) = struct.unpack_from(">i", data, at)
            if size < 0 or at + 4 + size > len(data):
                raise ValueError("snappy block runs past the end of the batch")
            blocks.append(data[at + 4 : at + 4 + size])
            at += 4 + size
    else:
        blocks.append(data)
    if sum(snappy.decompress_raw_len(block) for block in blocks) > limit:
        raise _too_large(limit)
    return b"".join(bytes(snappy.decompress_raw(block)) for block in blocks)


# --- the guard around aiokafka's batches ---------------------------------------------


@dataclass(frozen=True, slots=True)
class _StandIn:
    """What aiokafka's fetcher reads of a record, for a batch it could not unpack."""

    offset: int
    timestamp: int
    timestamp_type: int
    headers: tuple[tuple[str, bytes], ...]
    key: None = None
    value: None = None
    checksum: None = None


class _GuardedBatch:
    """A compressed batch whose unpacking failure becomes one stand-in record."""

    __slots__ = ("_batch", "_tp")

    def __init__(self, batch: Any, tp: Any) -> None:
        self._batch = batch
        self._tp = tp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __iter__(self) -> Iterator[Any]:
        try:
            records = iter(self._batch)  # unpacks
        except Exception as exc:
            return iter((self._stand_in(exc, None),))
        return self._read(records)

    def __next__(self) -> Any:
        return next(self._batch)

    def _read(self, records: Iterator[Any]) -> Iterator[Any]:
        """The batch's records; a record that cannot be read ends it with a stand-in."""
        last = self._batch.next_offset - 1
        seen = None
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except Exception as exc:
                if seen is None or seen < last:
                    yield self._stand_in(exc, seen)
                else:  # every record read: only what follows them was wrong
                    log.warning("%s: a batch ends in bytes that are no record: %s", self._tp, exc)
                return
            seen = record.offset
            yield record

    def _stand_in(self, exc: Exception, seen: int | None) -> _StandIn:
        batch = self._batch
        first, last = getattr(batch, "base_offset", "?"), batch.next_offset - 1
        codec_id = getattr(batch, "compression_type", None)
        codec = "old-format" if codec_id is None else CODECS.get(codec_id, f"codec {codec_id}")
        why = str(exc) or type(exc).__name__
        after = "" if seen is None else f" after offset {seen}"
        detail = (
            f"a {codec} batch of offsets {first}..{last} could not be read{after} "
            f"({type(exc).__name__}: {why}); its records were skipped"
        )[:1000]
        log.warning("%s: %s", self._tp, detail)
        # at the batch's last offset: acking it commits past the whole batch
        timestamp = getattr(batch, "max_timestamp", None)
        since = seen + 1 if seen is not None else first
        if isinstance(since, int) and since < last:  # the old formats do not say
            tp = self._tp
            _note_hole((tp.topic, tp.partition), since, last - 1)
        return _StandIn(
            offset=last,
            timestamp=-1 if timestamp is None else timestamp,
            timestamp_type=getattr(batch, "timestamp_type", 0) or 0,
            headers=((UNREADABLE_HEADER, detail.encode()),),
        )


class _GuardedRecords:
    """aiokafka's fetched records, handing out compressed batches guarded."""

    __slots__ = ("_records", "_tp")

    def __init__(self, records: Any, tp: Any) -> None:
        self._records = records
        self._tp = tp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> Any:
        batch: Any = self._records.next_batch()
        if batch is not None and batch.is_control_batch:  # passed over: no record in it
            tp = self._tp
            _note_hole((tp.topic, tp.partition), batch.base_offset, batch.next_offset - 1)
        # compressed, or of the old formats (v0, v1), which do not say
        codec: int | None = getattr(batch, "compression_type", None)
        if batch is not None and codec != 0:
            return _GuardedBatch(batch, self._tp)
        return batch


def _guarded_init(init: Callable[..., None]) -> Callable[..., None]:
    if getattr(init, "_tsguard_guarded", False):
        return init

    def guarded(self: Any, tp: Any, records: Any, *args: Any, **kwargs: Any) -> None:
        init(self, tp, _GuardedRecords(records, tp), *args, **kwargs)

    guarded._tsguard_guarded = True  # type: ignore[attr-defined]
    return guarded
