"""Operators' labels (topic ``tsguard.feedback``), applied within the readings' batches.

A label is not idempotent: a ``false_positive`` doubles the series' margin, so applied
twice it quadruples it. It must change the saved state exactly once, whatever happens
to the worker. So a label travels as a reading does: it is taken from the feed in a
batch, applied under the batch's models, and its record is acked only once a snapshot
that reflects it is saved (:class:`~stream_app.worker.checkpoint.Checkpointer`); a kill -9
before that save reads it again, onto the state saved before it. And the entity's saved
state records the offset of the last label it took (``EntityStates.admit_label``), so a
label read again after that save (a kill -9 before the commit) is skipped.

Before (until 2026-12-06) a Faust agent applied each label at once and Faust committed
its offset within a second, while the state holding it was saved only at the next
checkpoint: a kill -9 in between lost the label. And a label waiting at a restart was
now and then lost: Faust's recovery resumes flow control after its seek to the
committed offsets, which empties every stream's input queue (mode's
``FlowControlEvent.resume`` clears them), and Faust's commit passed over the one
offset missing at the head of the partition.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from stream_app.core.processor import check_feedback_label
from stream_app.wire.reading import Rejection
from stream_app.worker.feed import Record
from stream_app.worker.keys import wrong_key
from stream_app.worker.states import EntityStates


@dataclass(frozen=True, slots=True)
class Applied:
    """A label taken by the series' model."""

    entity: str
    label: str


def apply_label(states: EntityStates, msg: Record) -> Applied | Rejection | None:
    """Apply the label ``msg`` carries to its series' model.

    A :class:`Rejection` (to dead-letter) when it is no label, is not keyed by its
    entity, or names a series this worker has no model of (never scored here, live or
    saved: a label must not make one); None when the entity's models already reflect it
    (read again after a crash).
    """
    if msg.value is None and msg.note is not None:
        # the stand-in of a compressed batch the consumer could not unpack: what it was,
        # as on the readings' topic (it was taken for a label that is "not JSON")
        return Rejection("unreadable_batch", msg.note)
    try:
        doc = orjson.loads(msg.value or b"")
    except orjson.JSONDecodeError as exc:
        return _bad(f"not JSON: {exc}")
    if not isinstance(doc, dict):
        return _bad("not a JSON object")
    missing = [k for k in ("entity", "metric", "label") if k not in doc]
    if missing:
        return _bad(f"no {', '.join(missing)}")
    entity, metric, label = doc["entity"], doc["metric"], doc["label"]
    if not (isinstance(entity, str) and isinstance(metric, str) and isinstance(label, str)):
        # str() of another type named a series: a null metric was the series "None"
        return _bad("entity, metric and label must be strings")
    try:
        check_feedback_label(label)
    except ValueError as exc:
        return _bad(str(exc))
    if msg.key != entity.encode("utf-8", "surrogatepass"):
        return wrong_key(msg.key, entity, "label", "labels")
    proc = states.scored(entity, metric)
    if proc is None:
        return _bad(f"no model of {entity[:100]!r} {metric[:100]!r} here")
    if not states.admit_label(entity, msg.offset, msg.partition):
        return None
    proc.apply_feedback(label=label)
    return Applied(entity, label)


def _bad(detail: str) -> Rejection:
    return Rejection("bad_payload", f"feedback: {detail}"[:300])
