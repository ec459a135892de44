"""The streaming worker: one object that owns the Faust app and what it drives.

:class:`Worker` builds everything from the settings in its constructor (the
Faust app and state table, the sink, the Faust-free
:class:`~stream_app.worker.core.WorkerCore` with scorer, runtime and batcher,
the watchdog and the control watcher); nothing is attached from outside
afterwards. The Faust agents only move records into the core. The app
calls back into the worker when it starts (the sink opens before any record
is read) and when it stops (the batch in hand is finished and made durable,
the state saved, the offsets committed, then the sink and the watcher are
closed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream_app.logs import hold_repeats
from stream_app.metrics import Metrics, set_consumer_lag
from stream_app.settings import Settings
from stream_app.storage import PostgresSink, Sink
from stream_app.worker.control import ControlWatcher
from stream_app.worker.core import WorkerCore
from stream_app.worker.faust_app import (
    FaustConsumer,
    FaustProducer,
    build_faust_app,
    raw_topic,
    state_table,
)
from stream_app.worker.faust_compat import (
    STALL_EXIT_CODE,
    StallWatchdog,
    TableChangelog,
    drop_foreign_keys,
    end_offsets,
    start_offsets,
)
from stream_app.worker.feed import RecordFeed

log = logging.getLogger(__name__)


def _hard_exit(code: int) -> None:
    log.error("shutdown: Faust did not stop in time; exiting (code %d)", code)
    logging.shutdown()
    os._exit(code)  # offsets are committed only for durable batches: nothing is lost


class Worker:
    """One streaming worker; ``tsguard worker`` runs :attr:`app` with ``faust.Worker``."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        base_rules: dict[str, Any],
        *,
        sink: Sink | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        # The readings' and the operators' labels' records bypass Faust's per-event
        # stream: the consumer hands each fetch to the feed (see faust_compat/consumer.py),
        # and a label is acked only once the state that took it is saved (labels.py).
        self.feed = RecordFeed({settings.topic_readings, settings.topic_feedback})
        self.app = app = build_faust_app(settings, self.feed, self)
        self.readings = raw_topic(app, settings.topic_readings)
        self.feedback = raw_topic(app, settings.topic_feedback)
        self.table = state_table(app, settings)
        self.sink: Sink = sink or PostgresSink(
            settings.pg_conninfo(),
            min_size=settings.pg_pool_min,
            max_size=settings.pg_pool_max,
            on_error=self._sink_error,
        )
        self.watchdog = StallWatchdog(settings.worker_stall_timeout_s, self._end_offsets)
        producer = FaustProducer(
            raw_topic(app, settings.topic_anomalies), raw_topic(app, settings.topic_deadletter)
        )
        self.core = WorkerCore(
            settings,
            metrics,
            base_rules,
            sink=self.sink,
            # the local store: the checkpoints' changelog records go out in batches
            # (TableChangelog), not one by one through Faust's table
            table=self.table.data,
            changelog=TableChangelog(app, self.table),
            producer=producer,
            consumer=FaustConsumer(app),
            on_fatal=self._fatal,
            on_progress=self.watchdog.progressed,
            feed=self.feed,
        )
        states = self.core.scorer.states
        self.control = ControlWatcher(settings, base_rules, on_change=states.reconfigure)
        self._lookups: set[asyncio.Task[None]] = set()
        self._register()

    # --- wiring into Faust ------------------------------------------------

    def _register(self) -> None:
        app = self.app
        app.agent(self.readings, name="score-readings")(self._score_readings)
        app.agent(self.feedback, name="operator-feedback")(self._operator_feedback)
        app.timer(interval=5.0)(self._watch_for_stall)
        app.timer(interval=5.0)(self._report_lag)
        if self.settings.retention_interval_s > 0:
            app.timer(interval=self.settings.retention_interval_s)(self._apply_retention)
        registry = self.metrics.registry

        async def metrics_page(view: Any, request: Any) -> Any:
            # aiohttp wants the charset apart from the media type.
            media_type = CONTENT_TYPE_LATEST.split(";")[0]
            return view.bytes(generate_latest(registry), content_type=media_type)

        app.page("/metrics")(metrics_page)  # a function: Faust makes it a view's method
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    async def _score_readings(self, stream: Any) -> None:
        # Subscribes the topic (and co-partitions the state table with it);
        # its records arrive through the feed, never through this stream.
        try:
            await self.core.run()
        except Exception:
            # Faust logs a crashed agent and keeps the process up: /metrics and the
            # health check answer while nothing is consumed. A worker whose scoring
            # loop died exits to be restarted instead (nothing uncommitted is lost).
            log.exception("the scoring loop died; exiting (code %d) to restart", STALL_EXIT_CODE)
            self._exit_to_restart()

    async def _operator_feedback(self, stream: Any) -> None:
        # Subscribes the labels' topic; its records arrive through the feed with the
        # readings, never through this stream. Through Faust's stream, a label was acked
        # once applied, before the state holding it was saved (a kill -9 between lost
        # it), and labels queued for the agent when Faust resumed its flow control after
        # a recovery were thrown away unacked, then committed past.
        await asyncio.Event().wait()

    # --- lifecycle (called by WorkerApp) ----------------------------------

    async def on_app_start(self) -> None:
        # Faust's terminal spinner leaves the root logger at DEBUG, so every
        # per-message debug call of aiokafka and Faust built a log record.
        for name in ("aiokafka", "faust", "mode"):
            logging.getLogger(name).setLevel(self.settings.log_level)
        hold_repeats()  # on the handlers Faust has set up by now
        await self.sink.open()
        await self.control.start()

    async def on_app_stop(self) -> None:
        """Before Faust stops its consumer: the batch in hand durable, state saved, committed.

        Bounded by ``worker_shutdown_timeout_s``; when that runs out, what is not
        committed is read again by the next owner (nothing is lost).
        """
        # A backstop in its own thread: Faust's shutdown after the drain has been
        # seen to hang (faust issues #175, #532), and a stopping worker must end.
        backstop = threading.Timer(self.settings.worker_shutdown_timeout_s + 10, self._backstop)
        backstop.daemon = True
        backstop.start()
        try:
            await asyncio.wait_for(self._drain(), self.settings.worker_shutdown_timeout_s)
        except TimeoutError:
            log.warning(
                "shutdown: not drained within %.0f s; uncommitted readings will be read again",
                self.settings.worker_shutdown_timeout_s,
            )

    def _backstop(self) -> None:
        # A stop after a crash exits 1, as Faust does when its shutdown completes: an exit
        # 0 here looked like an operator's stop, and a restart-on-failure supervisor left
        # the worker dead.
        _hard_exit(1 if getattr(self.app, "crashed", False) else 0)

    async def _drain(self) -> None:
        await self.core.drain()
        # The state's changelog records out before the offsets they cover.
        await self.app.producer.flush()
        for _ in range(3):
            # False when a periodic commit was under way (Faust then only waits
            # for it) or when there is nothing left to commit.
            if await self.app.consumer.commit():
                break
        log.info("shutdown: batches durable, state saved, offsets committed")

    async def on_app_stopped(self) -> None:
        await self.control.stop()
        await self.sink.close()

    async def on_before_revoke(self) -> None:
        """A rebalance is about to take the partitions (a worker joined or left): the
        batches durable, the state saved, the offsets committed, so the next owners go
        on from here instead of publishing again the events sent since the last
        checkpoint. Bounded by half the session timeout; when a write waits for the
        database, the next owners go on from the last checkpoint, as after a crash."""
        bound = self.settings.worker_session_timeout_s / 2
        started = time.monotonic()
        try:
            saved = await self.core.before_revoke(bound)
            if saved:
                async with asyncio.timeout(max(bound - (time.monotonic() - started), 1.0)):
                    # the state's changelog records out before the offsets they cover
                    await self.app.producer.flush()
                    await self.app.consumer.commit()
        except Exception as exc:  # a failed write has already called _fatal
            log.warning("rebalance: state not saved before the revoke: %r", exc)
            return
        if not saved:
            log.warning(
                "rebalance: batches not durable within %.1f s; the partitions' next owners"
                " go on from the last checkpoint and publish its events again",
                bound,
            )

    # --- callbacks ----------------------------------------------------------

    def _sink_error(self, exc: BaseException) -> None:
        self.core.runtime.record_sink_error(exc)

    async def _end_offsets(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return await end_offsets(self.settings, keys)

    def _fatal(self, exc: BaseException) -> None:
        log.error(
            "batch failed after scoring (%r); exiting (code %d) to restart",
            exc,
            STALL_EXIT_CODE,
            exc_info=exc,
        )
        self._exit_to_restart()

    def _exit_to_restart(self) -> None:
        logging.shutdown()
        os._exit(STALL_EXIT_CODE)

    async def _on_revoked(self, sender: Any, *args: Any, signal: Any = None, **kw: Any) -> None:
        self.core.revoked()
        # their lag is now another worker's to report: a frozen copy here adds to every sum
        set_consumer_lag(self.metrics.consumer_lag, {})

    async def _on_assigned(
        self, sender: Any, assigned: Any, signal: Any = None, **kwargs: Any
    ) -> None:
        topic = self.settings.topic_readings
        mine = [(tp.topic, tp.partition) for tp in assigned if tp.topic == topic]
        labels = self.settings.topic_feedback
        guarded = mine + [(tp.topic, tp.partition) for tp in assigned if tp.topic == labels]
        changelog = self.table.changelog_topic.get_topic_name()
        kept = {tp.partition for tp in assigned if tp.topic == changelog}
        dropped = drop_foreign_keys(self.table.data, kept, self.settings.topic_partitions)
        if dropped:
            log.info("state table: %d entities of partitions given away dropped", dropped)
        self.metrics.assigned_partitions.set(len(mine))
        self.core.assigned(partition for _, partition in mine)
        self.watchdog.progressed()
        # Looked up outside the rebalance callback, which should stay short; the
        # records the guard protects arrive only after table recovery anyway.
        task = asyncio.create_task(self._expect(guarded))
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _expect(self, guarded: list[tuple[str, int]]) -> None:
        """The guard told where each partition of the readings and of the labels
        resumes: none of their records may be skipped."""
        try:
            self.core.guard.expect(await start_offsets(self.settings, guarded))
        except Exception as exc:  # the guard then only admits; the watchdog still watches
            log.warning("could not read committed offsets: %s", exc)
            return
        # the lag of the partitions just taken, now rather than at the next report: the
        # revoke cleared the gauge, and its sum read 0 for up to 5 s during a backlog
        try:
            await self._report_lag()
        except Exception as exc:  # the timer's next report tries again
            log.warning("consumer lag: not reported at assignment: %s", exc)

    async def _watch_for_stall(self) -> None:
        if self.settings.worker_stall_timeout_s <= 0:
            return
        if self.core.runtime.sink_retrying:
            self.watchdog.progressed()  # waiting for the database is backpressure, not a stall
            return
        try:
            reason = await self.watchdog.stalled(
                self.core.guard.next_offsets(), waiting=self.feed.waiting()
            )
        except Exception as exc:
            # The broker unreachable (its end offsets unknown): an outage, not a stall, and
            # the consumer reconnects by itself. Raised out of this timer, it crashed the
            # whole app (exit 1, not 75) once a broker outage outlasted the stall timeout,
            # idle workers included.
            log.warning("stall watchdog: end offsets unavailable (%s); not a stall", exc)
            self.watchdog.progressed()
            return
        if reason is not None:
            log.error(
                "worker stalled: %s%s; exiting (code %d) to be restarted",
                reason,
                self._recovery_state(),
                STALL_EXIT_CODE,
            )
            logging.shutdown()
            # A hard exit: Faust's own shutdown can hang in this state, and nothing
            # is lost since offsets are committed only after a batch is durable.
            os._exit(STALL_EXIT_CODE)

    def _recovery_state(self) -> str:
        """Where Faust's table recovery stands, if it is running: a stall during it
        (seen after some rebalances under a backlog, cause not known yet) names each
        changelog partition it reads, its offset against its highwater, and whether the
        consumer holds it paused."""
        try:
            recovery: Any = getattr(self.app.tables, "recovery")  # noqa: B009 - untyped in Faust
            if not recovery.in_recovery:
                return ""
            paused: Any = getattr(self.app.consumer, "_paused_partitions", set())
            partitions = [
                f"{tp.topic}[{tp.partition}] at {recovery.active_offsets.get(tp)} of {high}"
                + (" (paused)" if tp in paused else "")
                for tp, high in sorted(recovery.active_highwaters.items())
            ]
        except Exception as exc:  # a diagnosis only: never in the way of the exit
            return f"; table recovery unreadable ({type(exc).__name__})"
        return "; in table recovery: " + (", ".join(partitions) or "no changelog partition")

    async def _apply_retention(self) -> None:
        days = self.settings.retention_days
        try:
            removed = await self.sink.apply_retention(days)
        except Exception as exc:  # the next round tries again; ingest goes on meanwhile
            log.warning("retention: failed (%s: %s)", type(exc).__name__, exc)
            return
        if removed is not None:
            log.info("retention: %d observations older than %d days deleted", removed, days)

    async def _report_lag(self) -> None:
        """Per assigned partition: the broker's end offset minus the next offset to score.

        Neither half may come from the fetcher. Its ``highwater`` arrives with fetch
        responses and its ``position`` moves when a record is fetched; a worker whose
        batches stop (the database down) stops fetching once the feed is full, so
        their difference stood still while the topic kept growing. ``highwaters``
        asks the broker; the guard knows the next offset taken into a batch.
        """
        consumer = self.app.consumer
        topic = self.settings.topic_readings
        mine = [tp for tp in consumer.assignment() if tp.topic == topic]
        try:
            ends = await consumer.highwaters(*mine) if mine else {}
        except Exception as exc:  # the broker unreachable: the last values stand until next time
            log.warning("consumer lag: end offsets unavailable: %s", exc)
            return
        taken = self.core.guard.next_offsets()
        lags: dict[int, int] = {}
        for tp in mine:
            end, done = ends.get(tp), taken.get((tp.topic, tp.partition))
            if done is None:
                try:
                    done = await consumer.position(tp)
                except Exception:  # taken away by a rebalance while this awaited: not ours
                    # (aiokafka's IllegalStateError crashed the app, exit 1)
                    continue
            if end is not None and done is not None:
                lags[tp.partition] = max(end - done, 0)
        # a rebalance while this awaited: the partitions given away are another's to report
        still = {tp.partition for tp in consumer.assignment() if tp.topic == topic}
        set_consumer_lag(
            self.metrics.consumer_lag, {p: lag for p, lag in lags.items() if p in still}
        )
