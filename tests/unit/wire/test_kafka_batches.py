"""Compressed Kafka batches unpacked within a bound, and the stand-in for one that is not.

Built with aiokafka's own batch builder and read through its own fetcher class, so what
is tested is what a consumer of the process does.
"""

from __future__ import annotations

import gzip
import os
import struct
import threading
from collections.abc import Iterator

import cramjam
import pytest
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, PartitionRecords
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition

from stream_app import kafka_batches
from stream_app.kafka_batches import UNREADABLE_HEADER, passed_over, unreadable_detail

MIB = 1024 * 1024
TP = TopicPartition("tsguard.readings", 0)
PAYLOAD = os.urandom(50_000) + b'{"entity": "e", "ts": 1, "metrics": {"v": 1}}' * 20_000


@pytest.fixture
def bound() -> Iterator[None]:
    """The process-wide bound at 1 MiB for a test, the default after it."""
    kafka_batches.install(MIB)
    yield
    kafka_batches.install(128 * MIB)


def _lz4(data: bytes) -> bytes:
    frame = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
    frame.compress(data)
    return bytes(frame.finish())


def _xerial(data: bytes) -> bytes:
    """Java's snappy stream: a header, then raw blocks each after its length."""
    out = kafka_batches._XERIAL + struct.pack(">ii", 1, 1)
    for at in range(0, len(data), 32_768):
        block = bytes(cramjam.snappy.compress_raw(data[at : at + 32_768]))
        out += struct.pack(">i", len(block)) + block
    return out


CODECS = {
    "gzip": (kafka_batches._gzip, gzip.compress),
    "lz4": (kafka_batches._lz4, _lz4),
    "zstd": (kafka_batches._zstd, lambda d: bytes(cramjam.zstd.compress(d))),
    "snappy": (kafka_batches._snappy, lambda d: bytes(cramjam.snappy.compress_raw(d))),
    "snappy-java": (kafka_batches._snappy, _xerial),
}


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_every_codec_unpacks_up_to_the_bound_and_not_a_byte_past_it(codec: str) -> None:
    unpack, pack = CODECS[codec]
    packed = pack(PAYLOAD)
    assert unpack(packed, limit=len(PAYLOAD)) == PAYLOAD
    assert unpack(memoryview(packed), limit=len(PAYLOAD)) == PAYLOAD
    with pytest.raises(kafka_batches.BatchTooLarge, match="TSGUARD_KAFKA_MAX_BATCH_BYTES"):
        unpack(packed, limit=len(PAYLOAD) - 1)


@pytest.mark.parametrize("codec", ["gzip", "lz4", "zstd"])
def test_a_bomb_is_refused_without_unpacking_it(codec: str) -> None:
    # 256 MiB of spaces: 256 kB of gzip, 1 MB of lz4, 8 kB of zstd
    unpack, pack = CODECS[codec]
    bomb = pack(b" " * (256 * MIB))
    with pytest.raises(kafka_batches.BatchTooLarge):
        unpack(bomb, limit=MIB)


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_a_bomb_leaves_no_pages_of_the_scratch_buffer_behind(codec: str) -> None:
    # lz4 and zstd unpack into a per-thread buffer of the bound's size: a bomb fills it
    # all before it is refused, and those pages must go back, as a large batch's do
    unpack, pack = CODECS[codec]
    bomb = pack(b" " * (256 * MIB))
    grown: list[int] = []

    def read_bomb() -> None:  # in a thread of its own: a buffer of its own, new
        before = _resident_bytes()
        with pytest.raises(kafka_batches.BatchTooLarge):
            unpack(bomb, limit=64 * MIB)
        grown.append(_resident_bytes() - before)

    thread = threading.Thread(target=read_bomb)
    thread.start()
    thread.join()
    assert len(grown) == 1 and grown[0] < 16 * MIB, f"{grown[0] / MIB:.0f} MiB kept"


def test_gzip_members_one_after_another_and_a_cut_one() -> None:
    assert kafka_batches._gzip(gzip.compress(b"ab") + gzip.compress(b"cd")) == b"abcd"
    with pytest.raises(EOFError):
        kafka_batches._gzip(gzip.compress(PAYLOAD)[:-100])


def _batch(values: list[bytes], codec: int, base_offset: int = 0) -> bytearray:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 30,
    )
    for i, value in enumerate(values):
        builder.append(i, timestamp=1_790_000_000_000, key=b"e", value=value, headers=[])
    built = bytearray(builder.build())
    built[0:8] = struct.pack(">q", base_offset)  # outside the CRC, as the broker sets it
    return built


def _read(*batches: bytearray) -> tuple[list[tuple[int, bytes | None, str | None]], int]:
    records = PartitionRecords(
        TP,
        MemoryRecords(bytes(b"".join(batches))),
        [],
        0,
        None,
        None,
        True,
        READ_UNCOMMITTED,
    )
    got = [(r.offset, r.value, unreadable_detail(r.headers)) for r in records]
    return got, records.next_fetch_offset


def test_a_batch_within_the_bound_reads_as_it_did(bound: None) -> None:
    values = [b"one", b"two", b"three"]
    got, next_offset = _read(_batch(values, codec=1))
    assert got == [(0, b"one", None), (1, b"two", None), (2, b"three", None)]
    assert next_offset == 3


def test_a_batch_beyond_the_bound_is_one_stand_in_at_its_last_offset(bound: None) -> None:
    bomb = _batch([b" " * MIB, b" " * MIB, b"{}"], codec=1)
    after = _batch([b"next"], codec=0, base_offset=3)
    got, next_offset = _read(bomb, after)
    assert [(offset, value) for offset, value, _ in got] == [(2, None), (3, b"next")]
    detail = got[0][2]
    assert detail is not None and detail.startswith(
        "a gzip batch of offsets 0..2 could not be read"
    )
    assert "BatchTooLarge" in detail and "1,048,576" in detail
    assert next_offset == 4


def test_the_offsets_a_stand_in_stands_in_for_are_passed_over(bound: None) -> None:
    # the worker's offset guard admits the jump to the stand-in from there only
    key = ("tsguard.readings.stand-in", 0)
    tp = TopicPartition(*key)
    bomb = _batch([b" " * MIB, b" " * MIB, b"{}"], codec=1, base_offset=40)
    records = PartitionRecords(
        tp, MemoryRecords(bytes(bomb)), [], 41, None, None, True, READ_UNCOMMITTED
    )
    (stand_in,) = records
    assert stand_in.offset == 42
    assert passed_over(key, 40, 41) and not passed_over(key, 39, 41)
    broken = _corrupt(_batch([b"a", b"b", b"c"], codec=4, base_offset=7), at=-8)
    records = PartitionRecords(
        tp, MemoryRecords(bytes(broken)), [], 7, None, None, True, READ_UNCOMMITTED
    )
    got = [r.offset for r in records]
    # after the last record read (8): no offset between it and the stand-in's
    assert got == [7, 8, 9] and not passed_over(key, 8, 8)


def _corrupt(batch: bytearray, at: int) -> bytearray:
    """Bytes of the compressed data overwritten, the batch's CRC made right again."""
    at = at % len(batch)
    batch[at : at + 8] = b"\xff" * 8
    struct.pack_into(">I", batch, 17, calc_crc32c(bytes(batch[21:])))
    return batch


def test_corrupt_compressed_data_under_a_valid_crc_is_a_stand_in(bound: None) -> None:
    # The broker checks a batch's CRC when it takes it; a consumer finds the data
    # inside unreadable only when it unpacks it (or lacks the codec's library).
    broken = _corrupt(_batch([b"a" * 100, b"b" * 100], codec=1), at=70)  # gzip
    got, next_offset = _read(broken, _batch([b"c"], codec=0, base_offset=2))
    assert [(offset, value) for offset, value, _ in got] == [(1, None), (2, b"c")]
    assert got[0][2] is not None and got[0][2].startswith("a gzip batch of offsets 0..1 could")
    assert next_offset == 3


def test_a_record_that_cannot_be_read_ends_its_batch_with_a_stand_in(bound: None) -> None:
    # zstd data cut short unpacks (to less): the first record reads, the second does not
    broken = _corrupt(_batch([b"a", b"b"], codec=4), at=-8)
    got, next_offset = _read(broken, _batch([b"c"], codec=0, base_offset=2))
    assert [(offset, value) for offset, value, _ in got] == [(0, b"a"), (1, None), (2, b"c")]
    assert got[1][2] is not None and "0..1 could not be read after offset 0" in got[1][2]
    assert next_offset == 3


def test_install_twice_wraps_once() -> None:
    kafka_batches.install(128 * MIB)
    init = PartitionRecords.__init__
    kafka_batches.install(128 * MIB)
    assert PartitionRecords.__init__ is init


def test_only_our_header_makes_a_stand_in() -> None:
    assert unreadable_detail(()) is None
    assert unreadable_detail([("other", b"x")]) is None
    assert unreadable_detail([(UNREADABLE_HEADER, b"why")]) == "why"
    # a producer that writes the header it saw on a dead letter or in the code makes no
    # stand-in: its record reads as the ordinary record it is, not as a batch lost
    assert unreadable_detail([("tsguard-unreadable-batch", b"forged")]) is None
