"""The dead letter of a record not keyed by its entity: a reading or an operator's label.

An entity's readings, its labels, its saved state and the offsets that state reflects
all live in the partition its key hashes to (the labels' topic has as many partitions as
the readings'). A record that arrives through another partition (no key, or another key)
would be taken by a worker that does not hold the entity's state: a reading would be
scored against a second state saved over the first and make later readings look
replayed; a label would be applied to a copy the worker does not own, or refused as of
no model, and the entity's record of the last label it took (one partition and offset)
would switch partitions, so a label read again after a crash was applied twice.
"""

from __future__ import annotations

from stream_app.wire.reading import Rejection


def wrong_key(key: bytes | None, entity: str, record: str, records: str) -> Rejection:
    """Why ``record`` (keyed ``key``) is refused: its key is not ``entity``.

    >>> wrong_key(None, "site-1/dev-1", "label", "labels").detail
    "label has no key, not its entity 'site-1/dev-1': labels must be keyed by entity"
    """
    got = "no key" if key is None else f"key {key[:80]!r}"
    return Rejection(
        "wrong_key",
        f"{record} has {got}, not its entity {entity[:80]!r}: {records} must be keyed by entity",
    )
