"""Deciding, separate from scoring: calibrated scores become episodes.

:class:`EpisodePolicy` handles value episodes (threshold, direction, minimum
duration, hysteresis, cool-down, maximum length); :class:`FlagEpisode` handles
the on/off episodes of the cleaner (``silence``, ``stuck``).

>>> cfg = PolicyConfig(threshold=0.999, min_points=2, cooldown_points=2)
>>> pol = EpisodePolicy("e", "m", cfg, "demo")
>>> def run(scores):
...     out = []
...     for i, s in enumerate(scores):
...         flag, events = pol.step(float(i), 10.0, s, 1.0, 0.0, 2.0, 9.0)
...         out.append((int(flag), [e.event for e in events]))
...     return out
>>> run([0.5, 0.9995, 0.9995, 0.995, 0.5, 0.5])
[(0, []), (0, []), (1, ['opened']), (1, []), (1, []), (0, ['resolved'])]
"""

from __future__ import annotations

import math

from .codec import Reader, Writer
from .config import PolicyConfig
from .records import (
    SEVERITIES,
    Direction,
    EpisodeEvent,
    EpisodeKind,
    EventKind,
    episode_id,
    severity_for,
)

_NO_EVENTS: tuple[EpisodeEvent, ...] = ()
# step()'s two answers without events, built once (most points decide nothing)
_QUIET_NORMAL: tuple[bool, tuple[EpisodeEvent, ...]] = (False, _NO_EVENTS)
_QUIET_OPEN: tuple[bool, tuple[EpisodeEvent, ...]] = (True, _NO_EVENTS)
DEFAULT_INTERVAL_S = 60.0  # until the cleaner has learned the series' own interval
# The published score of a point (ScoredPoint.score) ranks the point where a value
# episode (or, in the processor, a stuck one) opens above every other point of every
# series: onsets score in [ONSET_SCORE, 1]. Below them come the near onsets, in
# [NEAR_SCORE, ONSET_SCORE): the first point of a run at or above the closing threshold
# that opened nothing (the budget, the series' recent episodes or a forced resolve held
# it back), ranked, as the onsets are, by its tail against the series' budget. Every
# other point scores its detector score times OTHER_SCALE (< NEAR_SCORE). One threshold,
# ONSET_SCORE, then selects exactly the episode onsets whatever a series' interval and
# budget; one in the near band adds the surprises a looser budget would have paged for,
# one excursion at a time; a lower one adds every next most surprising point.
ONSET_SCORE = 0.9995
NEAR_SCORE = 0.99925
OTHER_SCALE = 0.999
NEAR_SPAN = 0.99 * (ONSET_SCORE - NEAR_SCORE)  # a near onset stays below every onset
# The budget is honoured by evidence too: a series that opened more than RECENT_ALLOWANCE
# times its budget's episodes over the last RECENT_SPAN budget periods (exponentially
# weighted: 28 days for the default budget at 5 minutes; periods before any growth, see
# PolicyConfig.budget_growth: over grown ones the rule cost a real hourly series incidents)
# needs a tail probability smaller by (count / allowance) ** 2 to open another, until its
# rate falls back. The calibrated tail can be lighter than a series' own (bursts that are
# its normal behaviour, a series that came alive with a scale still learning); this keeps
# it from paging on.
RECENT_SPAN = 4.0
RECENT_ALLOWANCE = 2.0


SIGMA = "\N{GREEK SMALL LETTER SIGMA}"
DASH = "\N{EN DASH}"


def explain(
    value: float,
    z: float,
    expected: float,
    lower: float,
    upper: float,
    det: str,
    evidence: str = "",
) -> str:
    """Short human explanation of an anomalous value.

    A value inside its band opens an episode only on the evidence of the points
    before it (a run, or a sustained shift), and says so; a detector that knows what
    that evidence was says it (``evidence``):

    >>> explain(97.2, 6.1, 71.3, 68.0, 74.6, "robust_seasonal").encode("ascii", "replace")
    b'value 97.2 is 6.1? above expected 71.3 (band 68?74.6), detector robust_seasonal'
    >>> explain(73.0, 1.2, 71.3, 68.0, 74.6, "robust_seasonal").encode("ascii", "replace")
    b'value 73 is 1.2? above expected 71.3 (band 68?74.6), inside its band but the values before it sit above expected too: a sustained shift, detector robust_seasonal'
    >>> explain(73.0, 1.2, 71.3, 68.0, 74.6, "robust_seasonal", "it has drifted: a slow drift")
    'value 73 is 1.2\u03c3 above expected 71.3 (band 68\u201374.6), inside its band but it has drifted: a slow drift, detector robust_seasonal'
    """
    side = "above" if value >= expected else "below"
    inside = ""
    if lower <= value <= upper:
        inside = (
            f", inside its band but {evidence}"
            if evidence
            else (
                f", inside its band but the values before it sit {side} expected too: a sustained shift"
            )
        )
    return (
        f"value {value:.6g} is {abs(z):.1f}{SIGMA} {side} expected {expected:.6g} "
        f"(band {lower:.6g}{DASH}{upper:.6g}){inside}, detector {det}"
    )


class EpisodePolicy:
    """Turns the calibrated scores of one series into value episodes.

    ``step`` returns ``is_anomaly``: True for every point of an open episode
    (cool-down included), so the flagged points of an episode form one run.
    """

    __slots__ = (
        "above",
        "armed",
        "cfg",
        "close_thr",
        "detector",
        "entity",
        "episode",
        "history",
        "interval",
        "last",
        "length",
        "margin",
        "metric",
        "normal_run",
        "onset_room",
        "open_thr",
        "peak",
        "pending",
        "pending_start",
        "recent",
        "recent_ts",
        "severity",
        "source",
        "started_at",
        "up",
        "want_down",
        "want_up",
    )

    def __init__(self, entity: str, metric: str, cfg: PolicyConfig, detector: str) -> None:
        self.entity = entity
        self.metric = metric
        self.cfg = cfg
        self.detector = detector
        self.want_up = cfg.direction in ("up", "both")
        self.want_down = cfg.direction in ("down", "both")
        self.armed = True  # False after a forced (max length) resolve until a normal point
        # True from a point at or above the closing threshold (in a watched direction) to
        # the next point below it or the end of its episode: a point at which step() turns
        # it True and decides nothing is a near onset (the caller publishes near_score)
        self.above = False
        self.episode = ""  # id of the open episode, "" when none
        self.started_at = 0.0
        self.pending = 0
        self.pending_start = 0.0
        self.length = 0
        self.normal_run = 0
        self.peak = 0.0
        self.severity = 0
        self.last: tuple[float, float, float, float, float, float] = (0.0,) * 6
        self.interval = DEFAULT_INTERVAL_S
        self.history = 0  # the points the series has seen, for the budget's growth
        self.up = True  # the open episode's direction
        self.recent = 0.0  # episodes opened lately, exponentially weighted (see RECENT_SPAN)
        self.recent_ts = 0.0  # when ``recent`` was last brought up to date
        # the detector, asked what evidence spoke when an episode opens or grows (its
        # ``evidence``, where it has one): see :func:`explain`
        self.source: object = None
        self.set_margin(1.0)

    def set_margin(self, margin: float) -> None:
        """Divide the tail probabilities of both thresholds by ``margin`` (>= 1)."""
        self.margin = margin
        self.open_thr = 1.0 - (1.0 - self.cfg.open_threshold(self.interval, self.history)) / margin
        # the published onset scores rank by the budget before it grew (see onset_score)
        self.onset_room = (1.0 - self.cfg.open_threshold(self.interval)) / margin
        self.close_thr = 1.0 - (1.0 - self.cfg.close_threshold) / margin

    def set_interval(self, interval_s: float) -> None:
        """The series' learned sampling interval: the false-alarm budget is per unit of time.

        Changes under 0.1 % are ignored: a learned interval jitters in its last bits
        (timestamps like ``t0 + i / rate``), and recomputing both thresholds on every
        point cost about 2.5 % of a worker's CPU.
        """
        old = self.interval
        if interval_s > 0.0 and abs(interval_s - old) > 1e-3 * old:
            self.interval = interval_s
            self.set_margin(self.margin)

    def set_history(self, points: int) -> None:
        """The points the series has seen: past ``budget_growth_points`` of them and
        ``budget_growth_days`` the budget period grows (see :class:`PolicyConfig`). Not
        kept in the state: the processor passes the cleaner's count, in steps of 64
        points, both live and when it restores a series.
        """
        if points != self.history:
            self.history = points
            self.set_margin(self.margin)

    def onset_score(self, score: float) -> float:
        """The published score of a point that opens an episode, in ``[ONSET_SCORE, 1]``
        (every other point is published at its score times ``OTHER_SCALE``).

        >>> pol = EpisodePolicy("e", "m", PolicyConfig(threshold=0.999), "demo")
        >>> pol.onset_score(0.9999), round(0.9999 * OTHER_SCALE, 7)
        (0.99995, 0.9989001)
        """
        room = self.onset_room
        tail = (1.0 - score) / room if room > 0.0 else 0.0
        return 1.0 - (1.0 - ONSET_SCORE) * min(1.0, max(0.0, tail))

    def near_score(self, score: float) -> float:
        """The published score of a near onset (see ``NEAR_SCORE``), in
        ``[NEAR_SCORE, ONSET_SCORE)``: a tail at the series' budget ranks mid-band, one
        ten times as likely near the band's foot, one far beyond the budget near its top.

        >>> pol = EpisodePolicy("e", "m", PolicyConfig(threshold=0.999), "demo")
        >>> [round(pol.near_score(s), 6) for s in (0.99, 0.999, 0.99999, 1.0)]
        [0.999306, 0.999374, 0.999494, 0.999498]
        """
        room = self.onset_room
        tail = (1.0 - score) / room if room > 0.0 else 1.0
        if not tail > 0.0:  # a score of 1 (or NaN): the top of the band, still below onsets
            tail = 0.0
        return NEAR_SCORE + NEAR_SPAN / (1.0 + math.log2(1.0 + tail))

    def step(
        self,
        ts: float,
        value: float,
        score: float,
        expected: float,
        lower: float,
        upper: float,
        z: float,
    ) -> tuple[bool, tuple[EpisodeEvent, ...]]:
        """Decide one scored point: ``(is_anomaly, events)``."""
        if score < self.close_thr and not self.episode:
            self.pending = 0
            self.armed = True
            self.above = False
            return _QUIET_NORMAL
        aligned = self.want_up if z >= 0.0 else self.want_down
        if not self.episode:
            if not (aligned and self.armed and score >= self.open_thr):
                self.pending = 0
                self.armed = self.armed or not aligned
                if aligned:
                    self.above = True
                return _QUIET_NORMAL
            self.above = True
            if self.recent and self._over_budget(ts, score):
                self.pending = 0
                return _QUIET_NORMAL
            self.pending += 1
            if self.pending == 1:
                self.pending_start = ts
            if self.pending < self.cfg.min_points:
                return _QUIET_NORMAL
            self.episode = episode_id(self.entity, self.metric, "value", self.pending_start)
            self.recent = self._recent_at(ts) + 1.0
            self.recent_ts = ts
            self.up = z >= 0.0
            self.started_at = self.pending_start
            self.length = self.pending
            self.normal_run = 0
            self.peak = score
            self.severity = SEVERITIES.index(severity_for(score, self.open_thr))
            self.last = (ts, value, score, expected, lower, upper)
            return True, (self._event("opened", ts, value, score, expected, lower, upper, z),)
        self.length += 1
        if aligned and score >= self.close_thr:
            self.normal_run = 0
            self.last = (ts, value, score, expected, lower, upper)
            events: tuple[EpisodeEvent, ...] = _NO_EVENTS
            if score > self.peak:
                self.peak = score
                sev = SEVERITIES.index(severity_for(score, self.open_thr))
                if sev > self.severity:
                    self.severity = sev
                    events = (self._event("updated", ts, value, score, expected, lower, upper, z),)
            if self.length >= self.cfg.max_points:
                self.armed = False
                return True, (*events, self._resolve(ts, "maximum episode length reached"))
            return True, events
        self.normal_run += 1
        if self.normal_run >= self.cfg.cooldown_points or self.length >= self.cfg.max_points:
            self.armed = self.normal_run >= self.cfg.cooldown_points
            return False, (self._resolve(ts, f"normal for {self.normal_run} points"),)
        return _QUIET_OPEN  # cooling down: still part of the open episode

    def _recent_at(self, ts: float) -> float:
        """Episodes opened lately as of ``ts`` (the weighted count decays with time)."""
        if not self.recent:
            return 0.0
        span = RECENT_SPAN * self.cfg.budget_period(self.interval)  # not grown: see above
        return self.recent * math.exp(-max(ts - self.recent_ts, 0.0) / span)

    def _over_budget(self, ts: float, score: float) -> bool:
        """True when the series opened too many episodes lately for ``score`` to open one.

        Only the default, budgeted threshold adapts; a fixed ``threshold`` stays fixed.
        """
        if self.cfg.threshold is not None:
            return False
        excess = self._recent_at(ts) / (RECENT_ALLOWANCE * RECENT_SPAN)
        if excess <= 1.0:
            return False
        return (1.0 - score) * excess * excess > 1.0 - self.open_thr

    def write_above(self, w: Writer) -> None:
        """Whether the series is in a run at or above the closing threshold (kept at the very
        end of the series state, see the processor)."""
        w.raw("?", self.above)

    def read_above(self, r: Reader) -> None:
        (above,) = r.raw("?")
        self.above = bool(above)

    def write_recent(self, w: Writer) -> None:
        """The recent-episode count (kept at the end of the series state, see the processor)."""
        w.raw("dd", self.recent, self.recent_ts)

    def read_recent(self, r: Reader) -> None:
        recent, recent_ts = r.raw("dd")
        self.recent, self.recent_ts = float(recent), float(recent_ts)

    def _event(
        self,
        kind: str,
        ts: float,
        value: float,
        score: float,
        expected: float,
        lower: float,
        upper: float,
        z: float,
    ) -> EpisodeEvent:
        evidence = getattr(self.source, "evidence", "")
        why = explain(value, z, expected, lower, upper, self.detector, str(evidence))
        event: EventKind = "opened" if kind == "opened" else "updated"
        return self._build(event, ts, None, value, score, expected, lower, upper, why)

    def retire(self, ts: float, why: str) -> EpisodeEvent:
        """The open episode resolved at ``ts`` for ``why``, outside any point (its series
        is being forgotten)."""
        return self._resolve(ts, why)

    def _resolve(self, ts: float, why: str) -> EpisodeEvent:
        last_ts, value, score, expected, lower, upper = self.last
        explanation = f"resolved: {why}; lasted {self.length} points, peak score {self.peak:.6f}"
        event = self._build(
            "resolved", ts, last_ts, value, score, expected, lower, upper, explanation
        )
        self.episode = ""
        self.pending = 0
        self.above = False
        return event

    def _build(
        self,
        event: EventKind,
        ts: float,
        ended_at: float | None,
        value: float,
        score: float,
        expected: float,
        lower: float,
        upper: float,
        explanation: str,
    ) -> EpisodeEvent:
        """An event of the open episode; every field not passed comes from its state."""
        # an episode keeps the direction it opened with: after an upward spike the next
        # normal point can sit below a forecast the spike pulled up, which is no reversal
        direction: Direction = "up" if self.up else "down"
        return EpisodeEvent(
            event=event,
            episode_id=self.episode,
            entity=self.entity,
            metric=self.metric,
            kind="value",
            started_at=self.started_at,
            ended_at=ended_at,
            ts=ts,
            value=value,
            expected=expected,
            lower=lower,
            upper=upper,
            score=score,
            peak_score=self.peak,
            severity=SEVERITIES[self.severity],
            direction=direction,
            detector=self.detector,
            explanation=explanation,
        )

    def write(self, w: Writer) -> None:
        w.text(self.episode)
        w.raw(
            "?IIIIdddd",
            self.armed,
            self.pending,
            self.length,
            self.normal_run,
            self.severity,
            self.pending_start,
            self.started_at,
            self.peak,
            self.margin,
        )
        w.floats(self.last)
        w.raw("d?", self.interval, self.up)

    def read(self, r: Reader) -> None:
        self.episode = r.text()
        armed, pending, length, normal, sev, p_start, start, peak, margin = r.raw("?IIIIdddd")
        self.armed, self.pending, self.length = bool(armed), int(pending), int(length)
        self.normal_run, self.severity = int(normal), int(sev)
        self.pending_start, self.started_at, self.peak = float(p_start), float(start), float(peak)
        ts, value, score, expected, lower, upper = r.floats()
        self.last = (ts, value, score, expected, lower, upper)
        interval, up = r.raw("d?")
        self.interval = float(interval)
        self.up = bool(up)
        self.set_margin(float(margin))  # the thresholds follow from margin and interval


class FlagEpisode:
    """An on/off episode of one kind (``silence`` or ``stuck``) for one series."""

    __slots__ = ("entity", "episode", "kind", "metric", "started_at")

    def __init__(self, entity: str, metric: str, kind: EpisodeKind) -> None:
        self.entity = entity
        self.metric = metric
        self.kind: EpisodeKind = kind
        self.episode = ""
        self.started_at = 0.0

    def open(self, started_at: float, ts: float, value: float | None, why: str) -> EpisodeEvent:
        self.episode = episode_id(self.entity, self.metric, self.kind, started_at)
        self.started_at = started_at
        return self._event("opened", ts, value, None, why)

    def close(self, ts: float, value: float | None, why: str) -> EpisodeEvent:
        event = self._event("resolved", ts, value, ts, why)
        self.episode = ""
        return event

    def _event(
        self, kind: str, ts: float, value: float | None, ended: float | None, why: str
    ) -> EpisodeEvent:
        return EpisodeEvent(
            event="opened" if kind == "opened" else "resolved",
            episode_id=self.episode,
            entity=self.entity,
            metric=self.metric,
            kind=self.kind,
            started_at=self.started_at,
            ended_at=ended,
            ts=ts,
            value=value,
            expected=None,
            lower=None,
            upper=None,
            score=1.0,
            peak_score=1.0,
            severity="high",
            direction="none",
            detector="cleaner",
            explanation=why,
        )

    def write(self, w: Writer) -> None:
        w.text(self.episode)
        w.raw("d", self.started_at)

    def read(self, r: Reader) -> None:
        self.episode = r.text()
        (started,) = r.raw("d")
        self.started_at = float(started)
