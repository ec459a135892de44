"""Anomaly events to Alertmanager alerts (pure: no HTTP, no Kafka, time passed in).

An alert's identity in Alertmanager is its label set. Severity is a label (so
routes can page on critical only), which means a severity change makes a new
alert; the `AlertBook` remembers what was last posted per episode and
resolves the old label set when it changes. Alertmanager also expires an
alert that is not re-sent within its ``resolve_timeout``, so firing alerts are
re-posted periodically, the way Prometheus does. Alertmanager keeps its alerts
in memory only: a forwarder that starts takes over those it still has
(:meth:`AlertBook.adopt`) and fires again the episodes the database still has
open (:meth:`AlertBook.restore`), which is all that is left of them when both
restarted together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ALERTNAME = "TsguardAnomaly"
_REQUIRED = (
    "event",
    "episode_id",
    "entity",
    "metric",
    "kind",
    "started_at",
    "severity",
    "detector",
)
_EVENTS = ("opened", "updated", "resolved")


def iso(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def epoch(text: str) -> float:
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def check_event(doc: Any) -> str | None:
    """Why ``doc`` is not a usable anomaly event, or None (the fields the forwarder relies on)."""
    if not isinstance(doc, dict):
        return f"an anomaly event must be a JSON object, got {type(doc).__name__}"
    missing = [k for k in _REQUIRED if not isinstance(doc.get(k), str) or not doc.get(k)]
    if missing:
        return f"missing or non-string field(s): {', '.join(missing)}"
    if doc["event"] not in _EVENTS:
        return f"/event: {doc['event']!r} is not one of {_EVENTS}"
    for key in ("started_at", "ended_at", "ts"):
        value = doc.get(key)
        if value is None:
            continue
        try:
            if not isinstance(value, str):  # 20240101 read as a date, then failed to_alert
                raise ValueError
            iso(epoch(value))  # a time an alert can carry (year 1 failed in iso)
        except (ValueError, OverflowError, OSError):
            return f"/{key}: {str(value)[:64]!r} is not an RFC 3339 time"
    return None


def labels_of(event: dict[str, Any]) -> dict[str, str]:
    return {
        "alertname": ALERTNAME,
        "entity": event["entity"],
        "metric": event["metric"],
        "severity": event["severity"],
        "detector": event["detector"],
        "kind": event["kind"],
        "episode_id": event["episode_id"],
    }


def _num(value: Any) -> str | None:
    return None if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


def to_alert(event: dict[str, Any], now: float) -> dict[str, Any]:
    """The Alertmanager v2 alert for one event; resolved events carry ``endsAt``."""
    annotations = {
        "summary": f"{event['severity']} {event['kind']} anomaly on {event['entity']} {event['metric']}",
        "explanation": str(event.get("explanation", "")),
    }
    for key in ("value", "expected"):
        text = _num(event.get(key))
        if text is not None:
            annotations[key] = text
    started = epoch(event["started_at"])
    alert: dict[str, Any] = {"labels": labels_of(event), "annotations": annotations}
    if event["event"] == "resolved":
        # Event time can run ahead of the wall clock (an accelerated simulator): never
        # resolve in the future, and never end before the start.
        ended = min(epoch(event.get("ended_at") or event.get("ts") or iso(now)), now)
        started = min(started, ended)
        alert["endsAt"] = iso(ended)
    alert["startsAt"] = iso(min(started, now))
    return alert


@dataclass(slots=True)
class _Firing:
    alert: dict[str, Any]
    posted_at: float
    # the event time (``ts``) of the state fired, when known: an event older than it is
    # a repeat (a worker publishing again since its checkpoint, a backlog read after the
    # database was), which would take the alert back to an older label set and page again
    ts: float | None = None


def _event_ts(event: dict[str, Any]) -> float | None:
    value = event.get("ts")
    return epoch(value) if isinstance(value, str) and value else None


class AlertBook:
    """What is firing per episode, to resolve replaced label sets and re-send live alerts."""

    # episodes resolved lately: an event of one after its resolved is a repeat (events
    # are at least once: a worker taking over partitions publishes again what was sent
    # since their last checkpoint), never a new page
    RESOLVED_KEPT = 65_536

    def __init__(self, resend_every_s: float = 60.0) -> None:
        self.resend_every_s = resend_every_s
        self._firing: dict[str, _Firing] = {}
        self._resolved: dict[str, None] = {}  # insertion order: the oldest goes first

    def __len__(self) -> int:
        return len(self._firing)

    def plan(self, events: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        """Alerts to post for these events, in order (later events of an episode win)."""
        out: list[dict[str, Any]] = []
        resolved = self._resolved
        for event in events:
            episode = event["episode_id"]
            if episode in resolved:
                continue  # a repeat of an episode already over (its resolved was posted)
            ts = _event_ts(event)
            current = self._firing.get(episode)
            if (
                event["event"] != "resolved"
                and current is not None
                and current.ts is not None
                and ts is not None
                and ts < current.ts
            ):
                continue  # older than what fires: not a step back to an older label set
            alert = to_alert(event, now)
            previous = self._firing.pop(episode, None)
            if previous is not None and previous.alert["labels"] != alert["labels"]:
                out.append(dict(previous.alert, endsAt=iso(now)))
            if event["event"] != "resolved":
                self._firing[episode] = _Firing(alert, now, ts)
            else:
                resolved[episode] = None
                if len(resolved) > self.RESOLVED_KEPT:
                    del resolved[next(iter(resolved))]
            out.append(alert)
        return out

    def forget(self, episodes: set[str]) -> None:
        """Stop re-sending these episodes' alerts (Alertmanager refused them: every later
        re-send, with every other firing alert in it, would be refused too)."""
        for episode in episodes:
            self._firing.pop(episode, None)

    def due(self, now: float) -> list[dict[str, Any]]:
        """Firing alerts not posted for ``resend_every_s``; marks them posted."""
        out = []
        for firing in self._firing.values():
            if now - firing.posted_at >= self.resend_every_s:
                firing.posted_at = now
                out.append(firing.alert)
        return out

    def restore(self, events: list[dict[str, Any]], now: float) -> int:
        """Fire again episodes the database has open (``events``: one ``updated`` event
        each), unless the book has them already or saw them resolve; they are due at once.
        The database is read while events are consumed: an episode whose ``resolved``
        came in meanwhile was open in the read, and must not fire for good. An event's
        ``ts`` (the row's ``last_ts``) keeps the episode's older events, read after, from
        taking it back to an older severity (see :meth:`plan`)."""
        taken = 0
        for event in events:
            episode = event["episode_id"]
            if episode in self._firing or episode in self._resolved:
                continue
            self._firing[episode] = _Firing(to_alert(event, now), -math.inf, _event_ts(event))
            taken += 1
        return taken

    def adopt(self, active: list[dict[str, Any]], now: float) -> int:
        """Take over tsguard alerts Alertmanager already has (after a forwarder restart)."""
        taken = 0
        for alert in active:
            labels = alert.get("labels") or {}
            episode = labels.get("episode_id")
            if labels.get("alertname") != ALERTNAME or not episode or episode in self._firing:
                continue
            kept = {"labels": labels, "annotations": alert.get("annotations") or {}}
            if alert.get("startsAt"):
                kept["startsAt"] = alert["startsAt"]
            self._firing[episode] = _Firing(kept, now)
            taken += 1
        return taken
