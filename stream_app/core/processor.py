"""``SeriesProcessor``: cleaning, scoring and deciding for one series.

>>> proc = SeriesProcessor.create("plant-3/pump-7", "temperature", EngineConfig.default())
>>> for i in range(300):
...     point, events = proc.process(60.0 * i, 70.0 + (i % 5) * 0.2)
>>> point.status, point.accepted, 0.0 <= point.score <= 1.0
('ok', True, True)
>>> point, events = proc.process(60.0 * 300, 97.2)
>>> point.is_anomaly, [e.event for e in events]
(True, ['opened'])
>>> proc.process(60.0 * 301, float("nan"))[0].status
'non_finite'
>>> again = SeriesProcessor.from_bytes(proc.to_bytes(), EngineConfig.default())
>>> again.process(60.0 * 302, 70.2)[0] == proc.process(60.0 * 302, 70.2)[0]
True
"""

from __future__ import annotations

import contextlib
import zlib

from .cleaning import TS_MAX, TS_MIN, SeriesCleaner
from .codec import Reader, Writer
from .config import EngineConfig, SeriesConfig
from .detectors import REGISTRY, Detector, DetectorRegistry
from .policy import OTHER_SCALE, EpisodePolicy, FlagEpisode
from .records import EpisodeEvent, ScoredPoint

_OLD_MAGIC = b"TSG1"
_RUNS_MAGIC = b"TSG2"  # a repeat rate where the count of runs is now: counted afresh
_MAGIC = b"TSG3"  # TSG1 states (before the v3 detector) restart their models
# the policy learns the points a series has seen in steps of 64 (its budget grows with
# them): cheap on the hot path, and a restored series takes the same step
_HISTORY_MASK = 63
MAX_MARGIN = 64.0
FEEDBACK_FACTOR = 2.0
FEEDBACK_LABELS = ("false_positive", "true_positive")


def check_feedback_label(label: str) -> None:
    """ValueError unless ``label`` is one :meth:`SeriesProcessor.apply_feedback` takes.

    >>> check_feedback_label("maybe")
    Traceback (most recent call last):
    ...
    ValueError: label must be false_positive or true_positive, not 'maybe'
    """
    if label not in FEEDBACK_LABELS:
        raise ValueError(f"label must be false_positive or true_positive, not {label[:100]!r}")


def series_seed(entity: str, metric: str, seed: int) -> int:
    """A stable per-series seed (``hash()`` is salted per process; crc32 is not)."""
    return (zlib.crc32(f"{entity}/{metric}".encode()) ^ seed) & 0x7FFFFFFF


class SeriesProcessor:
    """One series ``(entity, metric)``: cleaner + detector + episode policy."""

    __slots__ = (
        "cleaner", "detector", "detector_name", "entity", "metric", "policy", "settings",
        "silence", "stuck", "warmup",
    )  # fmt: skip

    def __init__(
        self,
        entity: str,
        metric: str,
        settings: SeriesConfig,
        detector: Detector,
    ) -> None:
        self.entity = entity
        self.metric = metric
        self.settings = settings
        self.detector = detector
        self.detector_name = detector.name
        self.cleaner = SeriesCleaner(settings.cleaning, settings.limits)
        self.policy = EpisodePolicy(entity, metric, settings.policy, detector.name)
        self.policy.source = detector
        self.silence = FlagEpisode(entity, metric, "silence")
        self.stuck = FlagEpisode(entity, metric, "stuck")
        self.warmup = settings.cleaning.warmup_points

    @classmethod
    def create(
        cls,
        entity: str,
        metric: str,
        config: EngineConfig | None = None,
        registry: DetectorRegistry | None = None,
    ) -> SeriesProcessor:
        """A new series with the settings ``config`` resolves for it."""
        cfg = config or EngineConfig.default()
        settings = cfg.resolve(entity, metric)
        reg = registry or REGISTRY
        seed = series_seed(entity, metric, cfg.seed)
        return cls(entity, metric, settings, reg.create(settings.detector, settings.params, seed))

    def process(self, ts: float, value: float | None) -> tuple[ScoredPoint, list[EpisodeEvent]]:
        """Clean, score and decide one point. Never raises on bad values."""
        cleaner = self.cleaner
        status = cleaner.check(ts, value)
        if status != "ok":
            kept = value if status not in ("non_finite", "missing") else None
            point = ScoredPoint(self.entity, self.metric, ts, kept, status, False, None, None,
                                None, None, False, self.detector_name)  # fmt: skip
            return point, []
        assert value is not None
        events: list[EpisodeEvent] = []
        silence = self.silence
        if silence.episode:
            events.append(silence.close(ts, value, "data resumed"))
        score, expected, lower, upper, z = self.detector.update(ts, value)
        if cleaner.n <= self.warmup:
            point = ScoredPoint(self.entity, self.metric, ts, value, "warmup", True, 0.0,
                                expected, lower, upper, False, self.detector_name, z)  # fmt: skip
            return point, events
        run = cleaner.run
        stuck = self.stuck
        stuck_opened = False
        if run == 1:
            if stuck.episode:
                events.append(stuck.close(ts, value, "value changed"))
        elif run >= cleaner.stuck_min:
            stuck_opened = self._check_stuck(run, ts, value, events)
        policy = self.policy
        pace = cleaner.pace  # the budget is per unit of time: see the cleaner
        if pace != policy.interval:
            policy.set_interval(pace)
        if not cleaner.n & _HISTORY_MASK:
            policy.set_history(cleaner.n)
        above = policy.above
        flag, decided = policy.step(ts, value, score, expected, lower, upper, z)
        if not decided:
            if policy.above and not above:  # an excursion began and opened nothing
                score = policy.near_score(score)
            else:
                score *= OTHER_SCALE
        elif decided[0].event == "opened":
            events.extend(decided)
            score = policy.onset_score(score)
        else:
            events.extend(decided)
            score *= OTHER_SCALE
        if stuck.episode:
            # a stuck value is an episode too: its points are anomalous, and its opening
            # point ranks with the onsets, at the stuck model's tail probability
            flag = True
            if stuck_opened:
                score = max(score, policy.onset_score(1.0 - cleaner.stuck_p))
        point = ScoredPoint(self.entity, self.metric, ts, value, "ok", True, score, expected,
                            lower, upper, flag, self.detector_name, z)  # fmt: skip
        return point, events

    def _check_stuck(self, run: int, ts: float, value: float, events: list[EpisodeEvent]) -> bool:
        cleaner = self.cleaner
        if run == cleaner.limit and not self.stuck.episode:
            why = (
                f"value {value:.6g} repeated {run} times (its runs of one value lately "
                f"lasted {cleaner.mean_run():.3g} points on average)"
            )
            events.append(self.stuck.open(cleaner.run_start, ts, value, why))
            return True
        return False

    def watched(self) -> bool:
        """Whether its silence is still to be judged: warmed up, no silence episode open."""
        return not self.silence.episode and self.cleaner.n >= self.warmup

    def advance(self, watermark_ts: float) -> list[EpisodeEvent]:
        """Event time moved on to ``watermark_ts``: open a silence episode if overdue.
        A watermark that is no time (not finite, or outside the times a point may carry)
        moves nothing."""
        if not TS_MIN <= watermark_ts < TS_MAX or not self.watched():  # NaN fails the first
            return []
        cleaner = self.cleaner
        gap = cleaner.silent_for(watermark_ts)
        if not gap:
            return []
        why = (
            f"no data for {gap:.6g} s ({gap / cleaner.step:.1f} typical intervals of "
            f"{cleaner.step:.6g} s)"
        )
        return [self.silence.open(cleaner.last_ts, watermark_ts, None, why)]

    def retire(self, ts: float, why: str) -> list[EpisodeEvent]:
        """Every episode it has open (value, silence, stuck), resolved at ``ts`` for
        ``why``: its entity is being forgotten."""
        out: list[EpisodeEvent] = []
        if self.policy.episode:
            out.append(self.policy.retire(ts, why))
        if self.silence.episode:
            out.append(self.silence.close(ts, None, why))
        if self.stuck.episode:
            out.append(self.stuck.close(ts, None, why))
        return out

    def apply_feedback(self, label: str) -> float:
        """Operator feedback on this series' last episode; returns the new margin.

        ``"false_positive"`` multiplies the margin by ``FEEDBACK_FACTOR`` (2), at most
        ``MAX_MARGIN`` (64); ``"true_positive"`` divides it by 2, at least 1. The
        margin divides the tail probability of the open and close thresholds: with an
        opening score of 0.9999 and margin 2 a point needs score >= 0.99995. Kept in the state.
        """
        check_feedback_label(label)
        margin = self.policy.margin
        if label == "false_positive":
            margin = min(margin * FEEDBACK_FACTOR, MAX_MARGIN)
        else:
            margin = max(margin / FEEDBACK_FACTOR, 1.0)
        self.policy.set_margin(margin)
        return margin

    @property
    def last_ts(self) -> float:
        """Event time of the newest accepted point (``-inf`` before any)."""
        return self.cleaner.last_ts

    def state_size(self) -> int:
        """Bytes of serialised state (the memory to budget per series)."""
        return len(self.to_bytes())

    def to_bytes(self) -> bytes:
        """Compact state: everything needed to continue exactly where this left off."""
        w = Writer()
        w.blob(_MAGIC)
        w.text(self.entity)
        w.text(self.metric)
        w.text(self.detector_name)
        self.cleaner.write(w)
        self.policy.write(w)
        self.silence.write(w)
        self.stuck.write(w)
        w.blob(self.detector.to_bytes())
        self.cleaner.write_activity(w)  # last, so states written before it still load
        self.cleaner.write_long_run(w)  # after it, for the same reason
        self.policy.write_recent(w)  # and after that
        self.cleaner.write_pace(w)  # and that
        self.policy.write_above(w)  # and that
        self.cleaner.write_generations(w)  # and that
        return w.getvalue()

    @classmethod
    def from_bytes(
        cls,
        blob: bytes,
        config: EngineConfig | None = None,
        registry: DetectorRegistry | None = None,
    ) -> SeriesProcessor:
        """Restore a processor; a changed detector in ``config`` starts that model afresh."""
        r = Reader(blob)
        magic = r.blob()
        if magic not in (_MAGIC, _RUNS_MAGIC, _OLD_MAGIC):
            raise ValueError("not a tsguard series state")
        entity, metric, name = r.text(), r.text(), r.text()
        proc = cls.create(entity, metric, config, registry)
        if magic == _OLD_MAGIC:  # written before the v3 detector: start this series afresh
            return proc
        proc.cleaner.read(r)
        proc.policy.read(r)
        proc.silence.read(r)
        proc.stuck.read(r)
        det_blob = r.blob()
        if not r.done():
            proc.cleaner.read_activity(r)
        if not r.done():
            proc.cleaner.read_long_run(r)
        if not r.done():
            proc.policy.read_recent(r)
        if not r.done():
            proc.cleaner.read_pace(r)
        if not r.done():
            proc.policy.read_above(r)
        if not r.done():
            proc.cleaner.read_generations(r)
        if magic == _RUNS_MAGIC:
            proc.cleaner.run_count = 0.0  # its slot held the repeat rate
        # as live: the count is passed at each multiple of 64 reached past the warm-up
        # (a point in its warm-up returns before the policy), so not one within it
        seen = proc.cleaner.n & ~_HISTORY_MASK
        proc.policy.set_history(seen if seen > proc.warmup else 0)
        if name == proc.detector_name:
            cfg = config or EngineConfig.default()
            seed = series_seed(entity, metric, cfg.seed)
            reg = registry or REGISTRY
            # a detector state of an older layout raises ValueError: that model restarts
            with contextlib.suppress(ValueError):
                proc.detector = proc.policy.source = reg.load(
                    name, det_blob, proc.settings.params, seed
                )
        return proc
