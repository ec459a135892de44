"""The worker's batch step, free of Kafka and Faust so it is testable in memory.

A batch of raw messages goes in; observation rows, anomaly events (wire
format), dead letters and the entities whose model state changed come out.
Model state lives per entity (:mod:`stream_app.worker.states`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from stream_app.core import EntityProcessor
from stream_app.core.activity import live_slots
from stream_app.core.entity_processor import MAX_SERIES, TOO_MANY_SERIES
from stream_app.storage.sink import ObservationRow, SourceMark
from stream_app.wire.event import event_to_wire
from stream_app.worker.decode import Reading, ReadingDecoder, Rejection, dead_letter
from stream_app.worker.feed import Record
from stream_app.worker.keys import wrong_key
from stream_app.worker.labels import apply_label
from stream_app.worker.states import EntityStates, Follow

log = logging.getLogger(__name__)

# Points the cleaner turns away that are not worth a dead letter: at-least-once
# delivery replays readings, and a replayed duplicate is expected, not bad input.
# Its row is still written: ON CONFLICT keeps the original when it exists.
# Nor is a missing value (a null in the reading): the reading said so itself.
_NOT_DEAD_LETTERED = frozenset({"duplicate", "missing"})
# Who turned a point away, for the dead letter's detail.
_CLEANER = "by the cleaner"
# ingest-to-event latencies observed: a reading's ingested_at (stamped by the API or a
# connector, or set by any producer) from a minute ahead of the worker's clock (hosts'
# clocks differ; read as 0) to a day behind it; anything else is a wrong clock, not a delay
INGEST_SKEW_S = 60.0
INGEST_MAX_S = 86_400.0
# Longest a silence scan spends restoring entities whose rules changed (about 0.3-0.6 ms
# each in the pure-Python build); the rest are restored, then judged, at later scans.
RESTORE_BUDGET_S = 0.2
# Longest a silence scan spends loading saved entities not heard from since the worker
# took their partition (a restart, a rebalance) to judge their silence (see ``_wake``),
# and how often (in seconds of the worker's own time) a scan may: a backlog read after a
# restart makes a scan every few batches. At about 0.3 ms an entity in the pure-Python
# build, some 300 a scan, and at most a tenth of the worker's time.
WAKE_BUDGET_S = 0.1
# Live entities judged between two returns to the event loop by the worker's silence scan
# (``ReadingScorer.judging``): judging all 20,000 of a worker at once held the loop
# 0.16-0.31 s (pure-Python build, on a busy machine).
JUDGE_SLICE = 1000
WAKE_EVERY_S = 1.0
# How often (wall clock) the scans go through every saved entity again, for those to
# forget (see ``ReadingScorer.forget_after_s``): a device that left the fleet is neither
# live nor loaded again.
SWEEP_EVERY_S = 3600.0
FORGET_STEPS = 100.0
_BY = {TOO_MANY_SERIES: f"as one series too many (an entity keeps at most {MAX_SERIES})"}
_STATUS = itemgetter(ObservationRow._fields.index("status"))
# A source's watermark jumping by more than this many of its usual steps (and
# at least RESUME_MIN_S seconds) means the whole source was quiet, not each series.
RESUME_STEPS = 20.0
RESUME_MIN_S = 1.0
# A clock's usual step: the mean of its steps over about this much event time,
# each step weighing as much time as it spans. A fleet that reports on the minute
# moves its clock in one long step a minute and thousands of tiny ones; counted
# per step, the long one looked like an outage every minute. In its first
# RESUME_TAU_S a clock learns every step as it is; later an outage teaches no
# more than a step just short of one.
RESUME_TAU_S = 3600.0
# Whose event time a watermark follows: (source, partition).
ClockKey = tuple[str, int]


@dataclass(slots=True)
class _Clock:
    """One source's event time in one partition, and what silence is judged by on it."""

    key: ClockKey  # (source, partition)
    watermark: float = 0.0  # its newest reading's time (never ahead of the wall clock)
    followers: int = 0  # live entities that follow it; at none it is forgotten
    judged: float = 0.0  # its watermark at the last silence judgement
    resumed: float = -math.inf  # when the whole source last came back from a quiet spell
    usual_step: float = math.nan  # its usual watermark step; NaN before its first
    learned_at: float = math.inf  # when its first RESUME_TAU_S ends
    # its first watermark since the assignment (NaN before): how far the saved entities
    # woken by the scans were from it tells a source that was quiet across a restart
    first: float = math.nan
    marked: float = math.nan  # its watermark at the last mark (``ReadingScorer.source_marks``)
    # Its usual step while it reports, for the wall-clock alert on a silent source
    # (``source_marks``): as ``usual_step`` but its jumps teach it nothing. A jump lifts
    # ``usual_step`` for hours (a market's night took its minute to six), and a feed that
    # stopped half an hour into a session was not yet quiet 12 minutes later by it.
    live_step: float = math.nan


@dataclass(slots=True)
class _Follower:
    """An entity's link to the clock it follows, and how far behind it the entity runs."""

    clock: _Clock
    latest: float = -math.inf  # the timestamp of its newest reading
    # How far the clock was ahead of that when its last reading came. An entity whose
    # own clock runs late, or whose gateway forwards each reading minutes late, keeps its
    # distance from the others: its silence counts from where its last reading came, not
    # from the newest reading of any entity. (A gateway that uploads in batches is
    # silent between uploads: learning that lag hid the next silence of a device that
    # sent what it had buffered after an outage; see the README.)
    behind: float = 0.0
    # When the whole source was quiet until then, on its clock, for an entity woken after
    # a restart: the clock began again at the assignment and saw no jump (``_wake``).
    resumed: float = -math.inf


@dataclass(slots=True)
class BatchOutput:
    rows: list[ObservationRow] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    deadletters: list[dict[str, Any]] = field(default_factory=list)
    # (partition, entity) of every model changed; partition -1 when not from a record
    touched: set[tuple[int, str]] = field(default_factory=set)
    readings_ok: int = 0
    # Readings the models had already learned (replayed after a restart): skipped.
    replayed: int = 0
    # Operators' labels applied, per label; those the models already had (read again
    # after a crash) skipped and counted apart; dead letters of labels that were none
    labels: dict[str, int] = field(default_factory=dict)
    labels_replayed: int = 0
    bad_labels: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    event_to_scored: list[float] = field(default_factory=list)
    ingest_to_scored: list[float] = field(default_factory=list)
    ingest_to_event: list[float] = field(default_factory=list)
    # (entity, event time of its first reading scored since it was loaded, the ids of
    # the episodes its loaded models have open): the sink resolves the entity's other
    # episodes stored open whose last event came before that time (see
    # ``EntityStates.restored``)
    orphans: list[tuple[str, float, tuple[str, ...]]] = field(default_factory=list)
    forgotten: int = 0  # entities forgotten (see ``ReadingScorer.forget_after_s``)
    # The worker's clock when the batch's scoring began: every slice of a batch is
    # scored at it, as the whole batch was at once (see ``ReadingScorer.process``).
    at: float = 0.0

    def add_judgement(self, judged: BatchOutput) -> None:
        """Add what a silence judgement (``ReadingScorer.advance``) gave: its events and
        the models it changed."""
        self.events.extend(judged.events)
        self.touched |= judged.touched
        self.forgotten += judged.forgotten


class ReadingScorer:
    """Decodes, cleans and scores a batch of messages through the detector core."""

    def __init__(
        self,
        states: EntityStates,
        decoder: ReadingDecoder,
        *,
        max_deadletter_payload: int = 16_384,
        topic: str | None = None,
        silence_every_s: float = 5.0,
        forget_after_s: float = 0.0,
        labels_topic: str | None = None,
    ) -> None:
        self.states = states
        # operators' labels come in the batches with the readings (see labels.py)
        self.labels_topic = labels_topic
        self.decoder = decoder
        self.max_deadletter_payload = max_deadletter_payload
        self.topic = topic
        # Event-time watermarks per source and partition. Per source: an IoT
        # fleet and a market feed run on different clocks (a closed market sends
        # nothing at night), so one source's time must not make the other's
        # series look silent. Per partition: an entity's readings all come
        # through its own partition, and partitions are read unevenly (a
        # backlog, a rebalance), so another partition being ahead says nothing
        # about this entity.
        # A clock nobody follows any more is forgotten, so a `source` that varies (a
        # producer putting a request id there, a hostile one) cannot grow the worker's
        # memory without bound.
        self._clocks: dict[ClockKey, _Clock] = {}
        self._followed: dict[str, _Follower] = {}
        # Silence is judged (``advance``) whenever a clock has moved ``silence_every_s``
        # of event time since the last judgement, inside a batch too: a backlog read
        # hundreds of times faster than real time (after a restart, a replay) would
        # otherwise carry a series' silence and its end in one batch, and the checks
        # the runtime makes by the wall clock would see neither. A judgement visits
        # every live entity, so it waits for a quarter as many readings as there are
        # entities (at most four visits per reading, however the clocks move).
        self.silence_every_s = silence_every_s
        self._due = False
        self._since = 0  # readings scored since the last judgement
        # The saved entities of the table (set by the worker). Live entities follow a
        # clock only once they send again, so a device that stopped just before a
        # restart or a rebalance was never judged silent: after each, the silence
        # scans load the saved entities not heard from yet, a few at a time, and
        # judge those with silence left to watch by the clock their state recorded.
        self.saved_entities: Callable[[], Iterable[str]] | None = None
        # The partitions assigned (set by the worker; None: any). Faust's memory store
        # keeps the keys this worker wrote for a partition taken away (it drops only
        # those its changelog recovery read): they are another worker's entities now.
        self.partitions: set[int] | None = None
        self._wake_due = True
        self._dormant: deque[str] = deque()
        self._woke_at = -math.inf  # time.perf_counter() of the last scan that woke some
        # saved entities whose clock had no time yet when they were looked at, each once
        # (the hourly sweeps find them again): looked at again once it has (``_wake``)
        self._waiting: dict[ClockKey, dict[str, None]] = {}
        states.follows = self._follow_of
        # An entity with no silence left to watch (every series silent already, or too
        # young to judge) that sent nothing for this long (its own time, as silence) is
        # forgotten: its open episodes resolve, its state leaves the table, and a later
        # reading starts it afresh. 0: never. A device that left the fleet kept its
        # silence episode, its firing alert and its state for good (review rev66d).
        self.forget_after_s = forget_after_s
        self._swept_at = math.inf  # the wall clock of the last sweep (set at the first)

    def process(
        self, messages: Iterable[Record], now: float, into: BatchOutput | None = None
    ) -> BatchOutput:
        """Score ``messages`` in order; ``into``: the output of the batch's earlier slices,
        continued (the worker scores a large batch a slice at a time, the event loop
        running in between; a batch scored in slices gives what it gives at once)."""
        out = BatchOutput(at=now) if into is None else into
        first_row = len(out.rows)
        decode, states = self.decoder.decode, self.states
        labels_topic = self.labels_topic
        for msg in messages:
            if msg.topic == labels_topic and labels_topic is not None:
                self._label(msg, now, out)
                continue
            result: Reading | Rejection
            try:
                if msg.value is None and msg.note is not None:
                    result = Rejection("unreadable_batch", msg.note)
                else:
                    result = decode(msg.value, now)
            except Exception as exc:  # a decoder bug must not kill the worker
                result = Rejection("internal_error", f"{type(exc).__name__}: {exc}")
            if isinstance(result, Rejection):
                out.deadletters.append(self._dead(msg, result, now))
                continue
            if msg.key != result.entity.encode():
                wrong = wrong_key(msg.key, result.entity, "message", "readings")
                out.deadletters.append(self._dead(msg, wrong, now))
                continue
            proc = states.admit(result.entity, msg.offset, msg.partition)
            if proc is None:
                # Learned before a crash or a rebalance (the saved state is ahead of
                # the committed offsets): its rows are durable, its models have it.
                out.replayed += 1
                continue
            known = states.restored.pop(result.entity, None)
            if known is not None:
                out.orphans.append((result.entity, result.ts, known))
            try:
                self._score(result, proc, msg, now, out)
            except Exception as exc:
                out.deadletters.append(
                    self._dead(
                        msg, Rejection("internal_error", f"{type(exc).__name__}: {exc}"), now
                    )
                )
            self._since += 1
            if self._due and 4 * self._since >= len(self._followed):
                out.add_judgement(self.advance(now))
        # One row per point, so the rows tell the points' statuses.
        statuses = out.statuses
        for status, n in Counter(map(_STATUS, out.rows[first_row:])).items():
            statuses[status] = statuses.get(status, 0) + n
        return out

    def _label(self, msg: Record, now: float, out: BatchOutput) -> None:
        """An operator's label: applied to its series' model and reported with the
        models the batch changed (its record is acked once they are saved), skipped
        when the models already have it, dead-lettered when it is none."""
        try:
            applied = apply_label(self.states, msg)
        except Exception as exc:  # a bug must not kill the worker
            applied = Rejection("internal_error", f"{type(exc).__name__}: {exc}")
        if isinstance(applied, Rejection):
            out.deadletters.append(self._dead(msg, applied, now))
            out.bad_labels += 1
        elif applied is None:
            out.labels_replayed += 1
        else:
            partition = -1 if msg.partition is None else msg.partition
            out.touched.add((partition, applied.entity))
            out.labels[applied.label] = out.labels.get(applied.label, 0) + 1

    def _score(
        self, reading: Reading, proc: EntityProcessor, msg: Record, now: float, out: BatchOutput
    ) -> None:
        entity, ts, metrics, ingested_at, source = reading  # mypy checks the fields' order
        partition = -1 if msg.partition is None else msg.partition
        out.touched.add((partition, entity))
        out.readings_ok += 1
        key = (source or "", partition)
        follower = self._followed.get(entity)
        if follower is None or follower.clock.key != key:
            follower = self._follow(entity, key)
        clock = follower.clock
        watermark = clock.watermark
        # Event time, but never ahead of the wall clock: a reading stamped in the future
        # (a device whose clock runs ahead, up to the decoder's max_future_s) says nothing
        # of how far time has come, and the clock it set would stand still once it
        # stopped, hiding every silence in its partition until the others caught up
        seen = ts if ts < now else now
        if seen > watermark:
            if watermark > 0:
                self._note_advance(clock, seen - watermark, seen)
            else:
                clock.first = seen
                if self._waiting:
                    self._dormant.extend(self._waiting.pop(key, ()))  # its time has come
            clock.watermark = watermark = seen
            if seen - clock.judged >= self.silence_every_s:
                self._due = True
        if ts > follower.latest:
            follower.latest = ts
        follower.behind = watermark - follower.latest
        out.event_to_scored.append(now - ts)
        # how long since ingest, where the reading says and its clock is believable (None:
        # not): a producer's ingested_at is its own clock's word, and one of -1e300 made
        # the histograms' sums 1e300 for good, one from the far future read as no delay
        waited = None
        if ingested_at is not None and -INGEST_SKEW_S <= now - ingested_at <= INGEST_MAX_S:
            waited = now - ingested_at
            out.ingest_to_scored.append(waited)
        # The per-reading step every caller shares (replay and evaluate too).
        points, events, _ = proc.process(ts, metrics)
        at = _from_timestamp(ts, UTC)  # every point of a reading shares it
        rows = out.rows
        for metric, point in points.items():
            status = point.status
            rows.append(
                _new_row(
                    ObservationRow,
                    (point.entity, point.metric, at, point.value, point.expected, point.lower,
                     point.upper, point.score, point.is_anomaly, status, point.detector),
                )
            )  # fmt: skip
            # a replayed duplicate's row conflicts and is dropped
            if not point.accepted and status not in _NOT_DEAD_LETTERED:
                detail = f"/metrics/{metric}: point rejected {_BY.get(status, _CLEANER)} ({status})"
                out.deadletters.append(self._dead(msg, Rejection("rejected_point", detail), now))
        if events:
            out.events.extend(event_to_wire(event, now) for event in events)
            if waited is not None:
                out.ingest_to_event.extend([waited] * len(events))

    def source_marks(self) -> list[SourceMark]:
        """Every clock that moved since the last call: where to, its usual step, and the
        slots of the day and weekdays it moved through (from where it last resumed, when
        it jumped since: a market's night or an outage is no time the source reported in).
        """
        marks: list[SourceMark] = []
        for clock in self._clocks.values():
            end, start = clock.watermark, clock.marked
            if end <= 0.0 or end <= start:  # no reading yet, or it stood still
                continue
            if start != start:  # its first mark: where it is
                begin = end
            elif clock.resumed > start:  # it jumped: from where it came back
                begin = min(clock.resumed, end)
            else:
                begin = start
            tod, dow = live_slots(begin, end)
            clock.marked = end
            step = clock.live_step
            told = step if step == step else None
            source, partition = clock.key
            marks.append(SourceMark(source, partition, _from_timestamp(end, UTC), told, tod, dow))
        return marks

    @property
    def watermarks(self) -> dict[ClockKey, float]:
        """Each live clock's watermark."""
        return {key: clock.watermark for key, clock in self._clocks.items()}

    def _follow(self, entity: str, key: ClockKey) -> _Follower:
        """``entity`` now follows the clock ``key`` (its first reading, or its source or
        partition changed)."""
        old = self._followed.get(entity)
        clock = self._clocks.get(key)
        if clock is None:
            clock = self._clocks[key] = _Clock(key)
        clock.followers += 1
        follower = self._followed[entity] = _Follower(clock)
        if old is not None:
            self._unfollow(old.clock)
        return follower

    def _unfollow_entity(self, entity: str) -> None:
        """``entity`` follows no clock any more (it left memory)."""
        follower = self._followed.pop(entity, None)
        if follower is not None:
            self._unfollow(follower.clock)

    def _unfollow(self, clock: _Clock) -> None:
        clock.followers -= 1
        if not clock.followers:
            del self._clocks[clock.key]

    @staticmethod
    def _note_advance(clock: _Clock, step: float, ts: float) -> None:
        """Tell a clock's usual watermark step from a jump (the whole source was quiet)."""
        usual = clock.usual_step
        if usual != usual:  # its first step
            clock.usual_step = clock.live_step = step
            clock.learned_at = ts + RESUME_TAU_S
            return
        longest = RESUME_STEPS * usual
        if step > max(longest, RESUME_MIN_S):
            clock.resumed = ts
            if ts > clock.learned_at:
                step = longest  # else one outage would hide the next for hours
        else:
            live = clock.live_step
            clock.live_step = live - math.expm1(-step / RESUME_TAU_S) * (step - live)
        clock.usual_step = usual - math.expm1(-step / RESUME_TAU_S) * (step - usual)

    def forget(self) -> None:
        """Drop the live models (the table is the truth) and the clocks they followed.

        After a rebalance or a discarded batch the next readings re-establish each
        clock; kept, the entity-to-clock links of entities no longer live would pile
        up with every rebalance. The saved entities that send nothing more are
        looked at by the silence scans (see :meth:`advance`).
        """
        self.states.forget()
        self._followed.clear()
        self._clocks.clear()
        self._dormant.clear()
        self._waiting.clear()
        self._wake_due = True
        self._swept_at = math.inf

    def _follow_of(self, entity: str) -> Follow | None:
        """The clock ``entity`` follows, as its saved state records it."""
        follower = self._followed.get(entity)
        if follower is None:
            return None
        source, partition = follower.clock.key
        return Follow(source, partition, follower.behind)

    def evict(self, limit: int, busy: Callable[[str], bool]) -> int:
        """Idle entities beyond ``limit`` leave memory (see :meth:`EntityStates.evict`)."""
        gone = self.states.evict(limit, busy)
        for entity in gone:
            self._unfollow_entity(entity)
        return len(gone)

    def advance(self, now: float) -> BatchOutput:
        """Silence check of every live series against its source's watermark in its partition,
        less how far behind that watermark the entity's last reading came.

        When a whole source was quiet (its watermark jumped by more than
        ``RESUME_STEPS`` usual steps and ``RESUME_MIN_S``: a feed outage, a
        market's night), a series' silence counts from the moment the source
        resumed, not from its last point; else every series not yet heard from
        since would open a silence episode at once.
        """
        out = BatchOutput()
        for _ in self.judging(now, out):
            pass
        return out

    def judging(self, now: float, out: BatchOutput, every: int | None = None) -> Iterator[None]:
        """:meth:`advance` into ``out``, pausing (a ``yield``) before each ``every`` live
        entities after the first (``JUDGE_SLICE``): the worker's event loop runs in
        between. Nothing may be scored before it ends (the batcher's lock); a caller
        that stops early (the models were dropped) leaves the rest unjudged."""
        every = JUDGE_SLICE if every is None else every
        # time spent restoring only: counted from the scan's start, the judging of the
        # entities ahead of a stale one spent it, and past some size (or on a busy CPU)
        # the stale entities at the end of the live ones were never restored nor judged
        restoring = 0.0
        for clock in self._clocks.values():
            clock.judged = clock.watermark
        self._due = False
        self._since = 0
        for n, entity in enumerate(list(self.states.entities())):
            if n and n % every == 0:
                yield
            follower = self._followed.get(entity)
            if follower is None:
                continue
            if follower.clock.watermark <= 0:
                continue
            if self.states.is_stale(entity):
                # its rules changed: restored under them before it is judged (judged by
                # the old ones, a quiet entity opened the silence episode a rule was
                # published to prevent), as many as the scan's budget of restores
                # allows; the others wait, unjudged, for a later scan
                if restoring >= RESTORE_BUDGET_S:
                    continue
                started = time.perf_counter()
                proc = self.states.entity(entity)
                restoring += time.perf_counter() - started
            else:
                proc = self.states.entity(entity)
            self._judge(entity, proc, follower, now, out)
        self._wake(now, out)

    @staticmethod
    def _judge(
        entity: str, proc: EntityProcessor, follower: _Follower, now: float, out: BatchOutput
    ) -> None:
        """The silence of ``entity`` judged on its own time: its clock less how far behind
        it the entity runs, counted from when its source (or, across a restart, the
        entity's own clock) last resumed."""
        clock = follower.clock
        behind = follower.behind
        resumed = clock.resumed if clock.resumed > follower.resumed else follower.resumed
        events = proc.advance(clock.watermark - behind, resumed_at=resumed - behind)
        if events:
            # Saved with its own partition's snapshot.
            out.touched.add((clock.key[1], entity))
            out.events.extend(event_to_wire(e, now) for e in events)

    def _wake(self, now: float, out: BatchOutput) -> None:
        """Saved entities not heard from since the partitions were taken, loaded (for
        ``WAKE_BUDGET_S`` a scan) and judged by the clock their state recorded; those
        with nothing to watch leave memory again at once, or are forgotten. Every
        ``SWEEP_EVERY_S`` the scans go through all saved entities again, for those to
        forget."""
        if self.saved_entities is None or not self._clocks:
            return  # no reading scored since the assignment: the table may be recovering
        if self.forget_after_s > 0 and not self._dormant and now - self._swept_at >= SWEEP_EVERY_S:
            # (not while a pass is under way: each started over from the table's first
            # entity, and past some size the last ones were never looked at)
            self._wake_due = True
        if self._wake_due:
            # the first scan after a reading was scored: Faust delivers readings only
            # once the table is recovered, so the table is whole now
            first = self._swept_at == math.inf
            self._wake_due = False
            self._swept_at = now
            self._dormant = deque(self.saved_entities())
            if first and self._dormant:
                log.info("silence: %d saved entities will be looked at", len(self._dormant))
        dormant = self._dormant
        if not dormant:
            return
        started = time.perf_counter()
        if started - self._woke_at < WAKE_EVERY_S:
            return
        self._woke_at = started
        states = self.states
        while dormant and time.perf_counter() - started < WAKE_BUDGET_S:
            entity = dormant.popleft()
            was_live = states.is_live(entity)
            if was_live:
                follower = self._followed.get(entity)
                if follower is not None:
                    if self.forget_after_s > 0:
                        proc = states.entity(entity)
                        self._forget_if_gone(entity, proc, follower, now, out)
                    continue
                # live but following no clock: loaded by readings skipped as replayed (the
                # saved state ahead of the committed offsets after a crash), which are not
                # scored; judged by the clock its state recorded, as a woken one is (kept
                # live whatever comes of it: it was live before this look)
                saved = states.saved_follow(entity, self.partitions)
                if saved is None:
                    continue
                proc, follow = states.entity(entity), saved
            else:
                woken = states.wake(entity, self.partitions, legacy=self.forget_after_s > 0)
                if woken is None:
                    continue
                proc, follow = woken
            if follow.behind != follow.behind:
                # saved by a release before the clock was recorded: only forgotten, by the
                # slowest clock of its partition (the departed devices of before the
                # upgrade were never looked at, and stayed for good)
                slowest = min(
                    (c for c in self._clocks.values() if c.key[1] == follow.partition),
                    key=lambda c: c.watermark,
                    default=None,
                )
                if slowest is None or slowest.watermark <= 0:
                    self._let_go(entity, was_live)
                    continue
                # (its silence, if still to watch, cannot be judged without its clock)
                gone = _Follower(slowest, proc.latest(), 0.0)
                if not self._forget_if_gone(entity, proc, gone, now, out, watched_too=True):
                    self._let_go(entity, was_live)
                continue
            key = (follow.source, follow.partition)
            clock = self._clocks.get(key)
            watched = proc.watched()
            if clock is None or clock.watermark <= 0:
                # its source has sent nothing here yet: looked at again once it has (a
                # clock made for it here would start without its source's quiet spell)
                if watched or self.forget_after_s > 0:
                    self._waiting.setdefault(key, {})[entity] = None
                self._let_go(entity, was_live)
                continue
            if not watched:
                gone = _Follower(clock, proc.latest(), follow.behind)
                if not self._forget_if_gone(entity, proc, gone, now, out):
                    self._let_go(entity, was_live)
                continue
            follower = self._follow(entity, key)
            follower.latest = latest = proc.latest()
            follower.behind = behind = follow.behind
            # The clock began again at the assignment: a whole source quiet across the
            # restart (an outage, a market's night) made no jump on it, and every entity
            # woken before its own first reading was judged silent for the whole spell.
            # The step from where its clock stood at its last reading to the clock's first
            # since the assignment is judged as ``_note_advance`` judges a step, in the
            # entity's own usual steps (the clock's are not learned yet).
            usual = proc.slowest_step()
            if clock.first - (latest + behind) > max(RESUME_STEPS * usual, RESUME_MIN_S):
                follower.resumed = clock.first
            self._judge(entity, proc, follower, now, out)

    def _let_go(self, entity: str, was_live: bool) -> None:
        """A saved entity looked at leaves memory again, unless it was live before."""
        if not was_live:
            self.states.drop(entity)

    def _forget_if_gone(
        self,
        entity: str,
        proc: EntityProcessor,
        follower: _Follower,
        now: float,
        out: BatchOutput,
        *,
        watched_too: bool = False,
    ) -> bool:
        """Forget ``entity`` if it has no silence left to watch and sent nothing for
        ``forget_after_s`` of its own time (see ``advance``); whether it did."""
        clock = follower.clock
        own = clock.watermark - follower.behind
        idle = own - follower.latest
        if clock.watermark <= 0 or not idle > self.forget_after_s:
            return False
        if not watched_too and proc.watched():
            return False
        # and for FORGET_STEPS of its slowest series' usual steps: a device that reports
        # once a month, still too young to judge, would be forgotten at each report
        if not idle > FORGET_STEPS * proc.slowest_step():
            return False
        why = f"forgotten: no data for {idle / 86400:.1f} days"
        out.events.extend(event_to_wire(e, now) for e in proc.retire(own, why))
        self.states.forget_entity(entity)
        self._unfollow_entity(entity)
        out.touched.add((clock.key[1], entity))  # its checkpoint deletes it
        out.forgotten += 1
        return True

    def _dead(self, msg: Record, rejection: Rejection, now: float) -> dict[str, Any]:
        return dead_letter(
            msg.value,
            rejection,
            at=now,
            max_payload=self.max_deadletter_payload,
            topic=msg.topic or self.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
        )


# tuple.__new__ directly: the named tuple's own __new__ is a Python-level
# wrapper that cost a microsecond per point.
_new_row = tuple.__new__
# Bound once, called positionally: a third cheaper than ``datetime.fromtimestamp(ts, tz=UTC)``.
_from_timestamp = datetime.fromtimestamp
