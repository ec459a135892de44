"""Forward ``tsguard.anomalies`` to Prometheus Alertmanager (``POST /api/v2/alerts``).

At-least-once: offsets are committed only after Alertmanager accepted the
alerts of a batch, and Alertmanager de-duplicates re-posted alerts by label
set, so a crash or restart re-sends rather than loses. Alertmanager being down
or overloaded (connection errors, 5xx, 429) is retried with capped exponential
backoff for as long as it takes; an alert it rejects (other 4xx) and an event
that is not one are dead-lettered and skipped, so one bad record never blocks
the partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError, KafkaError

from connectors.alerting.alerts import ALERTNAME, AlertBook, check_event, to_alert
from connectors.alerting.open_episodes import restore_open_episodes
from connectors.ingest.producer import BatchProducer
from stream_app.kafka_batches import unreadable_detail
from stream_app.settings import Settings
from stream_app.wire import Rejection, dead_letter

DEFAULT_GROUP = "tsguard-alertmanager-forwarder"


@dataclass(slots=True)
class ForwardStats:
    events: int = 0
    posted: int = 0
    deadletters: int = 0
    retries: int = 0


class Rejected(Exception):
    """Alertmanager refused the alerts themselves (a 4xx other than 429): retrying will not help."""


class AlertmanagerClient:
    """The two calls we need, with the retry policy."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        report: Callable[[str], None] | None = None,
        stats: ForwardStats | None = None,
    ) -> None:
        self.http, self.backoff_s, self.max_backoff_s, self._report = (
            http,
            backoff_s,
            max_backoff_s,
            report,
        )
        # counted as they happen (the metric stayed 0 through a 6-minute outage before)
        self.stats = stats if stats is not None else ForwardStats()

    async def active_tsguard_alerts(self) -> list[dict[str, Any]]:
        response = await self.http.get(
            "/api/v2/alerts", params={"filter": f'alertname="{ALERTNAME}"', "active": "true"}
        )
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts

    async def post(self, alerts: list[dict[str, Any]]) -> None:
        """Post until accepted; raises `Rejected` on a non-retryable 4xx."""
        delay = self.backoff_s
        while True:
            try:
                response = await self.http.post(
                    "/api/v2/alerts",
                    content=orjson.dumps(alerts),
                    headers={"content-type": "application/json"},
                )
                if response.status_code < 300:
                    return
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    raise Rejected(problem)
            except httpx.TransportError as exc:
                problem = repr(exc)
            self.stats.retries += 1
            if self._report is not None:
                self._report(f"Alertmanager not accepting ({problem}); retry in {delay:.1f} s")
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.max_backoff_s)


async def _start_when_kafka_is_there(
    consumer: AIOKafkaConsumer, backoff_s: float, report: Callable[[str], None] | None
) -> None:
    """Start ``consumer``, waiting for Kafka: started while Kafka was away (a host's
    reboot, Kafka slower to come up), the forwarder exited 1 at once, though a Kafka lost
    while it runs is waited for."""
    delay = backoff_s
    while True:
        try:
            await consumer.start()
            return
        except KafkaConnectionError as exc:
            # (a failed bootstrap leaves nothing running: the same consumer starts again;
            # stopped, it would count as closed for good)
            if report is not None:
                report(f"Kafka unavailable ({exc}); retry in {delay:.1f} s")
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 30.0)


async def forward_to_alertmanager(
    settings: Settings,
    *,
    url: str | None = None,
    group_id: str = DEFAULT_GROUP,
    max_events: int | None = None,
    resend_every_s: float = 60.0,
    backoff_s: float = 0.5,
    report: Callable[[str], None] | None = None,
    stats: ForwardStats | None = None,
    restore_open: bool = True,
) -> ForwardStats:
    """Consume anomaly events and post them until cancelled or ``max_events`` were handled.

    ``stats`` (updated as it goes) lets a caller export the counts while it runs.
    ``restore_open``: fire again the episodes the database (``settings``) has open, as
    they were when it started (see :mod:`connectors.alerting.open_episodes`).
    """
    stats = stats if stats is not None else ForwardStats()
    book = AlertBook(resend_every_s)
    consumer = AIOKafkaConsumer(
        settings.topic_anomalies,
        **settings.kafka_client_kwargs(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="tsguard-alertmanager",
    )
    async with httpx.AsyncClient(base_url=url or settings.alertmanager_url, timeout=10.0) as http:
        am = AlertmanagerClient(http, backoff_s=backoff_s, report=report, stats=stats)
        try:
            adopted = book.adopt(await am.active_tsguard_alerts(), time.time())
            if report is not None and adopted:
                report(f"took over {adopted} firing alerts from Alertmanager")
        except httpx.HTTPError as exc:
            if report is not None:
                report(f"could not read active alerts ({exc!r}); starting with none")
        # in the background: a database slower to come up than Kafka holds up no event
        restoring = (
            asyncio.create_task(
                restore_open_episodes(
                    book,
                    settings.pg_conninfo(),
                    clock=time.time,
                    report=report,
                    backoff_s=backoff_s,
                )
            )
            if restore_open
            else None
        )
        try:
            try:
                await _start_when_kafka_is_there(consumer, backoff_s, report)
            except BaseException:  # stopped while waiting: "Unclosed AIOKafkaConsumer"
                await _bounded(consumer.stop(), "closing the consumer", report)
                raise
            await _forward(consumer, am, book, settings, stats, max_events, report)
        finally:
            if restoring is not None:
                restoring.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await restoring
    if report is not None:
        report(
            f"forwarded {stats.events} events as {stats.posted} alerts; {stats.deadletters} dead-lettered"
        )
    return stats


async def _forward(
    consumer: AIOKafkaConsumer,
    am: AlertmanagerClient,
    book: AlertBook,
    settings: Settings,
    stats: ForwardStats,
    max_events: int | None,
    report: Callable[[str], None] | None,
) -> None:
    """Post the consumed events' alerts and the book's due ones, committing after each batch."""
    producer = BatchProducer(settings, client_id="tsguard-alertmanager-deadletter")
    await producer.start()
    try:
        while max_events is None or stats.events < max_events:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            events: list[dict[str, Any]] = []
            for records in batches.values():
                for rec in records:
                    stats.events += 1
                    event = await _decode(rec, settings, producer, stats)
                    if event is not None:
                        events.append(event)
            now = time.time()
            alerts = book.plan(events, now) + book.due(now)
            if alerts:
                try:
                    await am.post(alerts)
                    stats.posted += len(alerts)
                except Rejected:
                    # one by one: only what Alertmanager refuses is dead-lettered (the
                    # whole batch was), and it is no longer re-sent with the others
                    refused = await _post_each(am, alerts, stats)
                    book.forget(set(refused))
                    await _dead_letter_events(
                        [e for e in events if e["episode_id"] in refused],
                        refused,
                        settings,
                        producer,
                        stats,
                        report,
                    )
            if batches:
                await producer.flush()  # dead letters are durable before we move on
                await consumer.commit()
    finally:
        # bounded: with Alertmanager away the group's leave timed out (41 s after a
        # SIGTERM, past a supervisor's 10 s grace), and with Kafka away too the flush
        # waited for ever; what is not committed is read again at the next start
        try:
            await _bounded(producer.stop(), "the dead-letter producer's flush", report)
        finally:
            await _bounded(consumer.stop(), "leaving the consumer group", report)


STOP_TIMEOUT_S = 5.0


async def _bounded(step: Awaitable[Any], what: str, report: Callable[[str], None] | None) -> None:
    """``step`` for at most ``STOP_TIMEOUT_S``; on a stop, Kafka may be away."""
    try:
        await asyncio.wait_for(step, STOP_TIMEOUT_S)
    except (TimeoutError, KafkaError) as exc:
        if report is not None:
            report(f"stopping: {what} gave up after {STOP_TIMEOUT_S:.0f} s ({exc!r})")


async def _post_each(
    am: AlertmanagerClient, alerts: list[dict[str, Any]], stats: ForwardStats
) -> dict[str, str]:
    """Post ``alerts`` one at a time; the episodes Alertmanager refused, with why."""
    refused: dict[str, str] = {}
    for alert in alerts:
        try:
            await am.post([alert])
            stats.posted += 1
        except Rejected as exc:
            refused[str(alert["labels"].get("episode_id", ""))] = str(exc)
    return refused


async def _decode(
    rec: Any, settings: Settings, producer: BatchProducer, stats: ForwardStats
) -> dict[str, Any] | None:
    raw: bytes | None = rec.value
    unreadable = unreadable_detail(rec.headers) if raw is None else None
    try:
        doc = orjson.loads(raw or b"")
        problem = check_event(doc)
        reason = "schema"
    except orjson.JSONDecodeError as exc:
        problem, reason = str(exc), "invalid_json"
    if unreadable is not None:  # the stand-in of a batch that could not be unpacked
        problem, reason = unreadable, "unreadable_batch"
    if problem is None:
        try:
            to_alert(doc, time.time())  # what plan() will do with it, for any other surprise
        except Exception as exc:  # a record that cannot be an alert must not stop the loop
            problem = f"cannot make an alert of it: {type(exc).__name__}: {exc}"
    if problem is None:
        event: dict[str, Any] = doc
        return event
    stats.deadletters += 1
    letter = dead_letter(
        raw,
        Rejection(reason, problem),
        at=time.time(),
        max_payload=settings.deadletter_max_payload_bytes,
        source="kafka",
        topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        key=rec.key,
    )
    await producer.send(
        settings.topic_deadletter, (rec.key or b"").decode(errors="replace") or "-", letter
    )
    return None


async def _dead_letter_events(
    events: list[dict[str, Any]],
    problems: dict[str, str],
    settings: Settings,
    producer: BatchProducer,
    stats: ForwardStats,
    report: Callable[[str], None] | None,
) -> None:
    if report is not None and problems:
        first = next(iter(problems.values()))
        report(f"Alertmanager refused {len(problems)} alert(s), e.g. {first}")
    for event in events:
        stats.deadletters += 1
        raw = orjson.dumps(event)
        letter = dead_letter(
            raw,
            Rejection("rejected_point", f"Alertmanager: {problems[event['episode_id']]}"),
            at=time.time(),
            max_payload=settings.deadletter_max_payload_bytes,
            source="alertmanager",
            location=event.get("episode_id"),
        )
        await producer.send(settings.topic_deadletter, event["entity"], letter)
