"""``tsguard demo``: the whole pipeline on simulated data, on the local stack.

Brings up Kafka, PostgreSQL, Prometheus and Alertmanager, starts a worker and
the API as subprocesses, feeds both simulators (an IoT fleet and a market)
through Kafka at an accelerated pace (the same simulated six hours every run,
moved to end now; see ``history``), prints anomaly episodes as they open and
resolve, and ends with a summary: readings produced and scored, episodes, and
recall / precision of the episodes against the simulators' ground truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from stream_app.settings import Settings

if TYPE_CHECKING:
    from connectors.simulate import Continued, Shifted

SIM_SPAN_S = 6 * 3600.0  # simulated history fed in a bounded demo
# The history is always the same six hours, moved to end now: Monday 08:30-14:30 UTC, an
# hour before the market opens (09:30) and five hours of its session (three faults).
REFERENCE_END = 1_767_623_400.0  # 2026-01-05T14:30:00Z
DEMO_DEVICES = 20
DEMO_INSTRUMENTS = 5
DEMO_INTERVAL_S = 30.0


@dataclass
class Tally:
    produced: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    truth: list[Any] = field(default_factory=list)

    def write(self, records: Iterable[Any]) -> None:
        """Collects the simulators' ground truth (a ``TruthSink``)."""
        self.truth.extend(records)


def _say(text: str) -> None:
    print(text, flush=True)


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    exe = str(Path(sys.executable).with_name("tsguard"))
    return subprocess.Popen(
        [exe, *args], stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _worker_metric(settings: Settings, name: str) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{settings.worker_web_port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return -1.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {" and 'outcome="scored"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _wait_http(url: str, deadline_s: float) -> bool:
    async with httpx.AsyncClient(timeout=2) as client:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code < 500:
                    return True
            await asyncio.sleep(0.3)
    return False


async def _watch_anomalies(settings: Settings, tally: Tally, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        settings.topic_anomalies,
        group_id=None,
        auto_offset_reset="latest",
        **settings.kafka_client_kwargs(),
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    event = orjson.loads(record.value or b"{}")
                    tally.events.append(event)
                    if event.get("event") in ("opened", "resolved"):
                        _say(
                            f"  [{event['event']:>8}] {event['severity']:<8} {event['entity']}"
                            f" {event['metric']}: {event['explanation']}"
                        )
    finally:
        await consumer.stop()


def demo_shift(now: float) -> float:
    """Whole seconds that move the reference window to end at ``now``."""
    return float(math.floor(now) - REFERENCE_END)


def history(now: float, span: float = SIM_SPAN_S) -> list[Shifted]:
    """The IoT fleet and the market over the ``span`` up to ``REFERENCE_END``, moved to ``now``.

    Only the timestamps depend on ``now``; the values are the same at any hour and weekday.
    """
    from connectors.simulate import IoTFleet, MarketSim, Shifted

    start, by = REFERENCE_END - span, demo_shift(now)
    fleet = IoTFleet(
        devices=DEMO_DEVICES, anomaly_rate=0.0015, seed=1, start=start, interval=DEMO_INTERVAL_S
    )
    market = MarketSim(instruments=DEMO_INSTRUMENTS, seed=2, start=start, interval=DEMO_INTERVAL_S)
    return [Shifted(fleet, by), Shifted(market, by)]


def live(now: float, span: float = SIM_SPAN_S) -> list[Continued]:
    """The history's own fleet and market going on after it, from ``now`` (when the
    history, moved to end there, stops): the same devices at the same levels, not a new
    fleet whose levels jump at the handover."""
    from connectors.simulate import Continued

    at = REFERENCE_END + demo_shift(now)
    return [Continued(sim, at) for sim in history(now, span)]


async def _simulate(
    settings: Settings, seconds: float, tally: Tally, clock: Callable[[], float] = time.time
) -> None:
    from connectors.simulate.run import Pace, run_simulation

    span = SIM_SPAN_S
    speedup = span / max(seconds * 0.8, 1.0) if seconds > 0 else 120.0
    now = clock()
    pace = Pace(speedup=speedup)
    runs = [
        run_simulation(sim, settings, duration=span, pace=pace, truth_file=tally)
        for sim in history(now, span)
    ]
    stats = await asyncio.gather(*runs)
    tally.produced += sum(s.readings for s in stats)
    if seconds <= 0:  # then live until Ctrl-C: the minutes the history took caught up at once
        await asyncio.gather(
            *(
                run_simulation(sim, settings, pace=Pace(realtime=True), truth_file=tally)
                for sim in live(now, span)
            )
        )


def _score_episodes(tally: Tally, slack_s: float) -> tuple[float, float, int, int]:
    opened = [e for e in tally.events if e.get("event") == "opened"]
    truths = [t for t in tally.truth if getattr(t, "expect_episode", True)]

    def hits(event: dict[str, Any], truth: Any) -> bool:
        from stream_app.wire import parse_timestamp

        ts = parse_timestamp(event["started_at"])
        return (
            truth.entity == event["entity"]
            and truth.metric in (event["metric"], "*")
            and truth.start - slack_s <= ts <= truth.end + slack_s
        )

    found = sum(1 for t in truths if any(hits(e, t) for e in opened))
    good = sum(1 for e in opened if any(hits(e, t) for t in tally.truth))
    recall = found / len(truths) if truths else float("nan")
    precision = good / len(opened) if opened else float("nan")
    return recall, precision, len(truths), len(opened)


async def run_demo(settings: Settings, seconds: float) -> int:
    from connectors import stack
    from stream_app.storage import migrate
    from stream_app.worker.faust_compat import ensure_committed_offsets
    from stream_app.worker.topics import ensure_topics

    _say("tsguard demo: starting the local stack (Kafka, PostgreSQL, Prometheus, Alertmanager)")
    stack.ensure_up(settings, services=["kafka", "postgres", "prometheus", "alertmanager"])
    await ensure_topics(settings)
    migrate(
        settings.pg_conninfo(), readonly_password=settings.pg_readonly_password.get_secret_value()
    )
    # Each demo run simulates the last hours again: a group (and so model state)
    # of its own, starting at the end of the topic, keeps an earlier run's
    # models from rejecting this run's history as late.
    group = f"{settings.consumer_group}-demo-{int(time.time())}"
    await ensure_committed_offsets(
        settings.model_copy(update={"consumer_group": group}), at_end=True
    )
    logs = settings.stack_dir / "logs"
    worker = _spawn(["worker", "--no-migrate-db", "--group", group], logs / "demo-worker.log")
    api = _spawn(["api", "--dev"], logs / "demo-api.log")
    tally = Tally()
    stop = asyncio.Event()
    try:
        if not await _wait_http(f"http://127.0.0.1:{settings.worker_web_port}/metrics", 60):
            _say(f"worker did not come up; see {logs / 'demo-worker.log'}")
            return 1
        api_ok = await _wait_http(f"http://{settings.api_host}:{settings.api_port}/healthz", 30)
        _print_where(settings, logs, api_ok)
        watcher = asyncio.create_task(_watch_anomalies(settings, tally, stop))
        sim = asyncio.create_task(_simulate(settings, seconds, tally))
        if seconds > 0:
            await asyncio.wait({sim}, timeout=seconds)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(sim), timeout=max(5.0, seconds * 0.5))
            await _drain(settings, tally.produced, deadline_s=30)
        else:
            await sim
        stop.set()
        await watcher
        sim.cancel()
    finally:
        stop.set()
        scored = _worker_metric(settings, "tsguard_readings_total")
        _stop(api)
        _stop(worker)
    recall, precision, n_truth, n_opened = _score_episodes(tally, slack_s=300.0)
    _say("")
    _say("summary")
    _say(f"  readings produced : {tally.produced}")
    _say(f"  readings scored   : {int(scored)}")
    _say(f"  episodes opened   : {n_opened} (events seen: {len(tally.events)})")
    _say(f"  injected anomalies: {n_truth} (ground truth expecting an episode)")
    _say(f"  episode recall    : {recall:.2f}   precision: {precision:.2f}")
    return 0


async def _drain(settings: Settings, produced: int, deadline_s: float) -> None:
    """Give the worker up to ``deadline_s`` to score what was produced."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if _worker_metric(settings, "tsguard_readings_total") >= produced:
            return
        await asyncio.sleep(0.5)


def _print_where(settings: Settings, logs: Path, api_ok: bool) -> None:
    from stream_app.api.cli import dev_curl_hint

    _say("where to look:")
    _say(
        f"  Kafka        {settings.kafka_bootstrap_servers}  topics {settings.topic_readings},"
        f" {settings.topic_anomalies}, {settings.topic_deadletter}"
    )
    _say(
        "  PostgreSQL   psql 'postgresql://tsguard:tsguard@127.0.0.1:15432/tsguard'"
        "  (tables observations, anomalies)"
    )
    _say(f"  metrics      http://127.0.0.1:{settings.worker_web_port}/metrics")
    _say(f"  Prometheus   http://127.0.0.1:{settings.stack_prometheus_port}")
    _say(
        "  dashboards   dashboards/ (Grafana provisioning; `docker compose up` to view them,"
        " `tsguard dashboards where` for the paths)"
    )
    if api_ok:
        _say(f"  API          http://{settings.api_host}:{settings.api_port}/docs ; try:")
        _say(f"    {dev_curl_hint(settings)}")
    _say(f"  logs         {logs}")
    _say("anomalies as they open and resolve:")
