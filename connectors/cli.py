"""Command line of the connectors: simulators, file replay, MQTT bridge, Alertmanager forwarder.

Everything heavy (numpy, aiokafka, aiomqtt, httpx) is imported inside the
commands so ``tsguard --help`` stays instant.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Replay files into Kafka.", add_completion=False)
simulate_app = typer.Typer(
    help="Simulated feeds with ground truth (IoT fleet, market data).", no_args_is_help=True
)
bridge_app = typer.Typer(
    help="Bridge other transports into tsguard.readings.", no_args_is_help=True
)
forward_app = typer.Typer(
    help="Forward anomaly episodes to alerting systems.", no_args_is_help=True
)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _csv_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _positive(name: str, value: float | None) -> None:
    """``value`` (when given) must be a finite number above 0."""
    if value is not None and not 0.0 < value < math.inf:  # (NaN too)
        raise typer.BadParameter(f"{name} must be a finite number above 0, not {value}")


def _check_pace(
    interval: float, anomaly_rate: float, rate: float | None, speedup: float | None
) -> None:
    _positive("--interval", interval)
    _positive("--rate", rate)
    _positive("--speedup", speedup)
    if not 0.0 <= anomaly_rate <= 1.0:  # a probability (NaN too)
        raise typer.BadParameter(f"--anomaly-rate must be within 0 and 1, not {anomaly_rate}")


@contextmanager
def _options_parsed() -> Iterator[None]:
    """A ``ValueError`` while an option is parsed (a duration, start, session time, sensor
    list or kind) is that option's error: exit 2 with its message, not a traceback."""
    try:
        yield
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@contextmanager
def _outputs_named() -> Iterator[None]:
    """An output that cannot be written (``--dry-run > /dev/full``, a full disk under
    ``--ground-truth``) is one line naming it and exit 2, as in ``replay``: not a traceback."""
    from stream_app.offline.terminal import OutputError

    try:
        yield
    except OutputError as exc:
        _say(f"error: {exc}")
        raise typer.Exit(2) from None


def _serve_metrics(
    port: int | None, host: str, connector: str, read: Callable[[], Mapping[str, float]]
) -> None:
    """``/metrics`` while the command runs; a port or address it cannot listen on is the
    option's error (exit 2), not a traceback."""
    from connectors.metrics import serve_metrics

    try:
        serve_metrics(port, connector, read, host=host)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--metrics-port / --metrics-host") from None


Seed = Annotated[int, typer.Option(help="Random seed: same seed and options, same output.")]
Rate = Annotated[float | None, typer.Option(help="Cap on readings per wall-clock second.")]
Speedup = Annotated[float | None, typer.Option(help="Simulated seconds per wall-clock second.")]
MetricsPort = Annotated[
    int | None,
    typer.Option(min=1, max=65535, help="Serve Prometheus /metrics on this port while running."),
]
MetricsHost = Annotated[
    str,
    typer.Option(
        help="Address /metrics listens on: loopback unless told (0.0.0.0 in a container,"
        " where the compose file decides what is published)."
    ),
]
Duration = Annotated[str | None, typer.Option(help="Simulated time span, e.g. 90m, 2h, 7d.")]
Count = Annotated[int | None, typer.Option(min=1, help="Stop after this many readings.")]
Start = Annotated[
    str,
    typer.Option(help="First simulated instant (RFC 3339 or epoch); 'auto' ends the run near now."),
]
TruthFile = Annotated[
    Path | None,
    typer.Option(
        "--ground-truth", dir_okay=False, help="Write ground truth here (.csv or .jsonl)."
    ),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print NDJSON readings to stdout instead of Kafka.")
]
AnomalyRate = Annotated[
    float, typer.Option(help="Probability per series and reading that a fault starts.")
]


def _run_stopping_on_sigterm(main: Any) -> Any:
    """``asyncio.run(main)``, with SIGTERM (``docker stop``, systemd, Kubernetes) taken as
    Ctrl-C: the connector stops the same way, flushing what it holds and printing its
    summary. Before, SIGTERM killed it on the spot: the MQTT bridge lost the messages it
    had acknowledged to the broker and not yet produced (151 of 900 in a drill).

    SIGTERM cancels the main task, as asyncio's own Ctrl-C handler does, and is then raised
    as ``KeyboardInterrupt``. It was mapped to ``signal.default_int_handler``, whose
    ``KeyboardInterrupt`` left the event loop at once: ``asyncio.run`` then cancelled every
    task together, aiokafka's own with the connector's, so the clean-up ran on cancelled
    clients (a healthy forwarder took 7 s to stop, "leaving the consumer group gave up
    after 5 s", and its producer was left unclosed; with Ctrl-C it stopped in 2 s)."""
    import contextlib
    import signal

    from stream_app.logs import hold_repeats

    hold_repeats()  # a Kafka outage wrote 65 lines a second

    async def stopping_on_sigterm() -> Any:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        terminated: list[bool] = []

        def on_sigterm() -> None:
            terminated.append(True)
            if task is not None:
                task.cancel()

        # (not in the main thread, or no signals here: SIGTERM keeps its own behaviour)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        try:
            return await main
        except asyncio.CancelledError:
            if terminated:
                raise KeyboardInterrupt from None
            raise
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGTERM)

    return asyncio.run(stopping_on_sigterm())


def _run(
    sim: Any,
    *,
    count: int | None,
    duration: str | None,
    rate: float | None,
    speedup: float | None,
    truth: Path | None,
    dry_run: bool,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> None:
    import sys

    from connectors.ingest.producer import RateMeter
    from connectors.simulate.base import parse_duration
    from connectors.simulate.groundtruth import GroundTruthWriter
    from connectors.simulate.run import Pace, run_simulation
    from stream_app.settings import load_settings

    try:
        writer = GroundTruthWriter(truth) if truth else None
    except OSError as exc:  # a folder that is missing or not writable: not a traceback
        raise typer.BadParameter(
            f"cannot write {truth}: {exc.strerror or exc}", param_hint="--ground-truth"
        ) from None
    meter = RateMeter("readings", _say, 5.0)
    _serve_metrics(metrics_port, metrics_host, "simulator", lambda: {"out": meter.count})
    with _outputs_named():
        try:
            stats = _run_stopping_on_sigterm(
                run_simulation(
                    sim,
                    load_settings(),
                    meter=meter,
                    count=count,
                    duration=parse_duration(duration) if duration else None,
                    pace=Pace(rate, speedup),
                    dry_run=sys.stdout if dry_run else None,
                    truth_file=writer,
                    report=_say,
                )
            )
        except KeyboardInterrupt:
            _say("stopped")
            return
        finally:
            if writer is not None:
                writer.close()
    if truth:
        _say(f"ground truth: {stats.truth} records in {truth}")


def _auto_start(start: str, span_s: float | None, market: bool) -> float:
    from connectors.simulate.base import parse_instant

    if start != "auto":
        return parse_instant(start)
    now = math.floor(time.time())
    if span_s is None:
        return float(now)
    if market:  # trading time is ~5/7 x 6.5/24 of calendar time: start far enough back
        days = math.ceil(span_s / (6.5 * 3600) * 7 / 5) + 3
        return float((now // 86_400 - days) * 86_400)
    return float(now - math.ceil(span_s))


def _span(
    count: int | None, duration: str | None, per_tick: float, interval: float
) -> float | None:
    from connectors.simulate.base import parse_duration

    if duration:
        return parse_duration(duration)
    return None if count is None else count / per_tick * interval


@simulate_app.command("iot")
def simulate_iot(
    devices: Annotated[int, typer.Option(min=1, help="Fleet size.")] = 10,
    sensors: Annotated[
        str, typer.Option(help="Comma-separated sensors.")
    ] = "temperature,vibration,pressure,power,humidity",
    anomaly_rate: AnomalyRate = 0.002,
    kinds: Annotated[
        str | None, typer.Option(help="Comma-separated fault kinds (default all).")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between readings of a device.")] = 10.0,
    seed: Seed = 0,
    rate: Rate = None,
    speedup: Speedup = None,
    duration: Duration = None,
    count: Count = None,
    start: Start = "auto",
    ground_truth: TruthFile = None,
    dry_run: DryRun = False,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """A fleet of devices with daily/weekly cycles, drift, correlated sensors and injected faults."""
    from connectors.simulate.iot import IOT_KINDS, IoTFleet

    _check_pace(interval, anomaly_rate, rate, speedup)
    with _options_parsed():
        begin = _auto_start(start, _span(count, duration, devices, interval), market=False)
        sim = IoTFleet(
            devices=devices,
            sensors=_csv_list(sensors) or [],
            anomaly_rate=anomaly_rate,
            seed=seed,
            start=begin,
            interval=interval,
            kinds=_csv_list(kinds) or IOT_KINDS,
        )
    _run(
        sim,
        count=count,
        duration=duration,
        rate=rate,
        speedup=speedup,
        truth=ground_truth,
        dry_run=dry_run,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )


@simulate_app.command("market")
def simulate_market(
    instruments: Annotated[int, typer.Option(min=1, help="Number of instruments.")] = 5,
    anomaly_rate: AnomalyRate = 0.0005,
    kinds: Annotated[
        str | None, typer.Option(help="Comma-separated fault kinds (default all).")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between quotes of an instrument.")] = 1.0,
    open_utc: Annotated[str, typer.Option("--open", help="Session open, HH:MM UTC.")] = "09:30",
    close_utc: Annotated[str, typer.Option("--close", help="Session close, HH:MM UTC.")] = "16:00",
    seed: Seed = 0,
    rate: Rate = None,
    speedup: Speedup = None,
    duration: Duration = None,
    count: Count = None,
    start: Start = "auto",
    ground_truth: TruthFile = None,
    dry_run: DryRun = False,
) -> None:
    """Instruments with regime-switching prices, jumps, flash crashes, volume and spread; no quotes when closed."""
    from connectors.simulate.market import MARKET_KINDS, MarketSim

    _check_pace(interval, anomaly_rate, rate, speedup)
    with _options_parsed():
        begin = _auto_start(start, _span(count, duration, instruments, interval), market=True)
        sim = MarketSim(
            instruments=instruments,
            anomaly_rate=anomaly_rate,
            seed=seed,
            start=begin,
            interval=interval,
            open_utc=open_utc,
            close_utc=close_utc,
            kinds=_csv_list(kinds) or MARKET_KINDS,
        )
    _run(
        sim,
        count=count,
        duration=duration,
        rate=rate,
        speedup=speedup,
        truth=ground_truth,
        dry_run=dry_run,
    )


@app.command("replay-to-kafka")
def replay_to_kafka_cmd(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="CSV or Parquet files (one header row; time-ordered).", exists=True, dir_okay=False
        ),
    ],
    speed: Annotated[str, typer.Option(help="'real', 'max' or a factor such as 60.")] = "max",
    entity_column: Annotated[str | None, typer.Option(help="Column holding the entity.")] = None,
    timestamp_column: Annotated[
        str | None, typer.Option(help="Time column (default: ts/timestamp/time/...).")
    ] = None,
    metric_columns: Annotated[
        str | None, typer.Option(help="Comma-separated metric columns (default: all others).")
    ] = None,
    entity: Annotated[
        str | None, typer.Option(help="Entity for every row (default: the file name).")
    ] = None,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Replay history into tsguard.readings with its original event times; bad rows are
    dead-lettered (exit 2 if a row could not be read at all, as `tsguard replay`)."""
    from connectors.ingest.files import ColumnMap, MappingError
    from connectors.ingest.replay_to_kafka import ReplayCounts, parse_speed, replay_to_kafka
    from stream_app.settings import load_settings

    live = ReplayCounts()
    _serve_metrics(
        metrics_port,
        metrics_host,
        "replay",
        lambda: {"out": live.readings, "deadletter": live.malformed},
    )
    try:
        pace = parse_speed(speed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--speed") from exc
    metrics = _csv_list(metric_columns)
    cmap = ColumnMap(timestamp_column, entity_column, entity, tuple(metrics) if metrics else None)
    try:
        stats = _run_stopping_on_sigterm(
            replay_to_kafka(files, load_settings(), cmap, speed=pace, report=_say, live=live)
        )
    except MappingError as exc:
        _say(f"error: {exc}")
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        _say("stopped")
        raise typer.Exit(130) from None
    if stats.unreadable:
        # as `tsguard replay` refuses a file with such a row; values the stream refuses
        # (a status to replay) are dead-lettered and end nothing. It exited 1 when no row
        # at all was sent (a file of a header only too) and 0 when one was.
        _say(
            f"tsguard: {stats.unreadable} row(s) could not be read (see above): dead-lettered,"
            " the rest replayed; exit 2, as `tsguard replay` refuses such a file"
        )
        raise typer.Exit(2)


@bridge_app.command("mqtt")
def bridge_mqtt(
    topic_pattern: Annotated[
        str, typer.Option(help="MQTT levels to entity/metric, e.g. 'sites/+site/+device/+metric'.")
    ] = "sites/+site/+device/+metric",
    entity_template: Annotated[
        str | None, typer.Option(help="Entity from named levels, e.g. '{site}/{device}'.")
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many messages.")
    ] = None,
    qos: Annotated[
        int,
        typer.Option(
            min=0,
            max=1,
            help="Subscription QoS: 1 (at least once) or 0 (at most once). Not 2: see README.",
        ),
    ] = 1,
    client_id: Annotated[
        str | None, typer.Option(help="MQTT client id (default: TSGUARD_MQTT_CLIENT_ID).")
    ] = None,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Subscribe to device topics and produce readings (JSON or plain numbers) until Ctrl-C."""
    from connectors.ingest.mqtt_bridge import BridgeStats, run_mqtt_bridge
    from connectors.ingest.mqtt_payload import TopicPattern
    from stream_app.settings import load_settings

    stats = BridgeStats()
    _serve_metrics(
        metrics_port,
        metrics_host,
        "mqtt-bridge",
        lambda: {
            "in": stats.messages,
            "out": stats.readings,
            "deadletter": stats.deadletters,
            "reconnect": stats.reconnects,
            "retained": stats.retained,
        },
    )
    try:
        pattern = TopicPattern.parse(topic_pattern, entity_template)
    except ValueError as exc:
        hint = "--entity-template" if str(exc).startswith("entity template") else "--topic-pattern"
        raise typer.BadParameter(str(exc), param_hint=hint) from exc
    try:
        _run_stopping_on_sigterm(
            run_mqtt_bridge(
                load_settings(),
                pattern,
                max_messages=max_messages,
                qos=qos,
                client_id=client_id,
                report=_say,
                stats=stats,
            )
        )
    except KeyboardInterrupt:
        _say("stopped")


@forward_app.command("alertmanager")
def forward_alertmanager(
    url: Annotated[
        str | None, typer.Option(help="Alertmanager base URL (default: settings).")
    ] = None,
    group_id: Annotated[
        str, typer.Option(help="Kafka consumer group of the forwarder.")
    ] = "tsguard-alertmanager-forwarder",
    max_events: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many events.")
    ] = None,
    resend_every: Annotated[
        float, typer.Option(help="Re-post firing alerts every N seconds.")
    ] = 60.0,
    restore_open: Annotated[
        bool,
        typer.Option(
            help="At start, fire again the episodes the database (TSGUARD_PG_DSN) has open:"
            " Alertmanager keeps alerts in memory only."
        ),
    ] = True,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Post anomaly episodes to Alertmanager: opened/updated fire, resolved sets endsAt."""
    # NaN never re-posted (Alertmanager then resolves firing alerts on its own timeout)
    _positive("--resend-every", resend_every)
    from connectors.alerting.alertmanager import ForwardStats, forward_to_alertmanager
    from stream_app.settings import load_settings

    stats = ForwardStats()
    _serve_metrics(
        metrics_port,
        metrics_host,
        "alertmanager-forwarder",
        lambda: {
            "in": stats.events,
            "out": stats.posted,
            "deadletter": stats.deadletters,
            "retry": stats.retries,
        },
    )

    try:
        _run_stopping_on_sigterm(
            forward_to_alertmanager(
                load_settings(),
                url=url,
                group_id=group_id,
                max_events=max_events,
                resend_every_s=resend_every,
                report=_say,
                stats=stats,
                restore_open=restore_open,
            )
        )
    except KeyboardInterrupt:
        _say("stopped")
