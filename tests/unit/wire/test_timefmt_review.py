"""Times on the wire written with more than six fraction digits, or with no offset
(review rev66d)."""

from __future__ import annotations

import pytest

from stream_app.wire.timefmt import parse_timestamp


def test_the_same_instant_as_text_and_as_a_number_is_one_microsecond() -> None:
    """to_microsecond says a number is read 'as RFC 3339 text is read': text truncates
    digits past the microsecond, a number rounds them, so one instant is two points."""
    assert parse_timestamp("2026-12-05T10:00:00.0000009Z") == parse_timestamp(1796464800.0000009)
    assert parse_timestamp("2026-12-05T10:00:00.9999996Z") == parse_timestamp(1796464800.9999996)


def test_digits_past_the_microsecond_round_as_a_number_does() -> None:
    assert parse_timestamp("2026-12-05T12:00:00.1234564+02:00") == 1796464800.123456
    assert parse_timestamp("2026-12-05t10:00:00.0000009z") == 1796464800.000001
    assert parse_timestamp("2026-12-05T10:00:00.1234560000Z") == 1796464800.123456


def test_a_local_time_without_an_offset_is_refused_for_what_it_lacks() -> None:
    for text in ("2026-10-25T02:30:00", "2026-10-25 02:30:00", "2026-10-25T02:30:00.5"):
        with pytest.raises(ValueError, match="no time zone"):
            parse_timestamp(text)
    with pytest.raises(ValueError, match="not RFC 3339"):
        parse_timestamp("2026-10-25T02:30:00+0100")
