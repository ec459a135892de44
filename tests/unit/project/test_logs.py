"""The Kafka client's repeated log lines held back (a Kafka outage wrote 65 lines a second)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from stream_app.logs import HoldRepeats, hold_repeats


@pytest.fixture
def two_handlers() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    root = logging.getLogger()
    kept = root.handlers[:]
    streams = io.StringIO(), io.StringIO()
    root.handlers[:] = [logging.StreamHandler(s) for s in streams]
    try:
        yield streams
    finally:
        root.handlers[:] = kept


def test_a_kafka_clients_repeats_go_out_once_on_every_handler_and_ours_all(
    two_handlers: tuple[io.StringIO, io.StringIO],
) -> None:
    hold_repeats()
    hold_repeats()  # installed once per handler however often it is called
    conn, ours = logging.getLogger("aiokafka.conn"), logging.getLogger("stream_app.test")
    for _ in range(200):
        conn.error("Unable connect to node with id %s: %s", 1, "refused")
        ours.warning("rebalance: %s", "not saved")
    conn.error("Unable to update metadata from [%s]", 1)  # another message: said at once
    for stream in two_handlers:
        lines = stream.getvalue().splitlines()
        assert lines.count("Unable connect to node with id 1: refused") == 1, lines[:5]
        assert lines.count("rebalance: not saved") == 200
        assert "Unable to update metadata from [1]" in lines


def test_the_next_repeat_after_the_period_says_how_many_were_held() -> None:
    times = iter([0.0, 5.0, 10.0, 29.0, 40.0, 41.0, 75.0]).__next__
    held = HoldRepeats(every_s=30.0, clock=times)

    def seen(level: int = logging.ERROR) -> str | None:
        record = logging.LogRecord("aiokafka.client", level, "", 0, "down: %s", ("x",), None)
        passed = held.filter(record)
        assert held.filter(record) is passed  # a second handler: the same answer
        return record.getMessage() if passed else None

    said = [seen() for _ in range(6)] + [seen(logging.WARNING)]
    assert said == [
        "down: x",
        None,
        None,
        None,
        "down: x [3 more like this held back in 40 s]",
        None,
        "down: x",  # another level is another message
    ]
