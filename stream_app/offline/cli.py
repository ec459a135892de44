"""Commands of the offline tools: ``replay``, ``evaluate`` and ``bench detectors``.

``app`` is merged at the top level of ``tsguard``; ``bench_app`` is the
``tsguard bench`` group (other areas add their own benchmarks to it). Only
Typer and the standard library are imported here: the work happens in the
sibling modules, imported inside the commands.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
bench_app = typer.Typer(
    help="Benchmarks (throughput, state size).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Engine configuration (YAML or JSON).", exists=True, dir_okay=False
    ),
]


def _error(message: str) -> None:
    from stream_app.offline.terminal import visible

    # a message names files, whose names may hold escape sequences
    typer.echo(f"error: {visible(message)}", err=True)


def _fail(message: str) -> typer.Exit:
    _error(message)
    return typer.Exit(code=2)


def _bad_input_message(exc: OSError | ValueError) -> str:
    from stream_app.offline.csvio import bad_input_message

    return bad_input_message(exc)


@contextmanager
def _bad_input() -> Iterator[None]:
    """Bad input (a malformed CSV, a file that cannot be read, a configuration that does
    not parse or validate) ends the command with ``error: ...`` and exit 2, not a
    traceback."""
    try:
        yield
    except BrokenPipeError:
        raise  # the reader went away (``| head``): Click ends quietly, as for any command
    except (OSError, ValueError) as exc:
        raise _fail(_bad_input_message(exc)) from None


STDIO = Path("-")


@contextmanager
def _interrupted(console: Console) -> Iterator[None]:
    """Ctrl-C during a replay says so (each output is written whole or not at all) and
    exits 130, as a shell does for SIGINT."""
    try:
        yield
    except KeyboardInterrupt:
        console.print(
            "interrupted: the output being written was left out; those before it are whole"
        )
        raise typer.Exit(130) from None


@contextmanager
def _through_files(source: Path, output: Path) -> Iterator[tuple[Path, Path]]:
    """``-`` as INPUT (standard input) or ``--output`` (standard output): through a file
    in a temporary folder, so that the replay reads and writes files as it always does;
    an error in the piped input names ``<stdin>``, not the temporary file."""
    from stream_app.offline.csvio import MalformedCsvError

    if STDIO not in (source, output):
        yield source, output
        return
    if output == STDIO and source.is_dir():
        raise ValueError("--output - writes one series: give a file or - as INPUT, not a folder")
    with tempfile.TemporaryDirectory(prefix="tsguard-replay-") as tmp:
        piped = source == STDIO
        if piped:
            source = Path(tmp) / "stdin.csv"
            with source.open("wb") as handle:
                shutil.copyfileobj(sys.stdin.buffer, handle)
        target = Path(tmp) / "out" / "stdout.csv" if output == STDIO else output
        try:
            yield source, target
        except MalformedCsvError as exc:
            if not piped:
                raise
            raise MalformedCsvError(Path("<stdin>"), exc.line, exc.reason) from None
        if output == STDIO:
            from stream_app.offline.terminal import STDOUT, writing

            with target.open("rb") as handle, writing(STDOUT, flush=sys.stdout):
                shutil.copyfileobj(handle, sys.stdout.buffer)


@app.command()
def replay(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            # no exists=True: Typer refuses "-" then (plan_outputs names a missing path)
            help="A CSV file or a folder of them; - reads one from standard input.",
        ),
    ],
    output_text: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            # text, not a Path: a Path drops the trailing / that says a folder is meant
            metavar="<path>",
            help="File or folder to write (a folder where it ends with /); - writes to "
            "standard output.",
        ),
    ],
    config: ConfigOption = None,
    metrics: Annotated[
        str | None,
        typer.Option(help="Comma-separated value columns (default: the `value` column)."),
    ] = None,
) -> None:
    """Score CSV time series point by point, exactly as the stream would."""
    from rich.markup import escape
    from rich.progress import Progress

    from stream_app.offline.replay import UNSCORED_MEANING, load_config, plan_outputs, replay_file
    from stream_app.offline.terminal import first_of, plain_console, visible

    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    console = plain_console(stderr=True)
    failed = 0
    output = shown_output = Path(output_text)
    into_folder = output_text.endswith(("/", os.sep)) and output != STDIO
    with _bad_input(), _through_files(source, output) as (source, output):
        engine = load_config(config)
        plan, skipped = plan_outputs(source, output, names, into_folder=into_folder)
        if skipped:
            console.print(
                f"skipped {len(skipped)} CSV(s) without the timestamp/value columns: "
                + first_of([visible(str(p.relative_to(source))) for p in skipped])
            )
        rows = invalid = 0
        unscored: Counter[str] = Counter()
        with (
            _interrupted(console),
            Progress(console=console, transient=True, disable=len(plan) < 2) as progress,
        ):
            task = progress.add_task("replay", total=len(plan))
            for path, target, entity in plan:
                # the progress column reads its description as markup
                name = visible(str(path.relative_to(source.parent)))
                progress.update(task, description=escape(name))
                try:
                    done = replay_file(path, target, entity, engine, names)
                except (OSError, ValueError) as exc:
                    if len(plan) == 1:
                        raise
                    # in a folder, a file that cannot be read is reported and counted,
                    # and the others are still replayed (it writes no output)
                    failed += 1
                    _error(_bad_input_message(exc))
                else:
                    rows, invalid = rows + done.rows, invalid + done.invalid_values
                    unscored.update(done.unscored)
                progress.advance(task)
    where = "standard output" if shown_output == STDIO else visible(str(shown_output))
    console.print(f"replayed {len(plan) - failed} file(s), {rows} row(s) -> {where}")
    if invalid:
        console.print(f"{invalid} value(s) were not numbers: status invalid_value, no score")
    for status, count in sorted(unscored.items()):
        console.print(f"{count} value(s) {UNSCORED_MEANING[status]}: status {status}, no score")
    if failed:
        raise _fail(f"{failed} of {len(plan)} file(s) not replayed (see above)")


@app.command()
def evaluate(
    data: Annotated[
        Path | None,
        typer.Argument(help="Folder of timestamp,value,label CSVs, or one of them.", exists=True),
    ] = None,
    report: Annotated[
        Path | None,
        # a file there was found only after the whole evaluation, and lost it
        typer.Option(help="Write an HTML report into this folder.", file_okay=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    config: ConfigOption = None,
    generated: Annotated[
        int,
        typer.Option(
            min=0, help="Also score N series of each generated family (anomaly-free ones too)."
        ),
    ] = 0,
    labelling: Annotated[
        str,
        typer.Option(
            help="windows: windows.json where it has the series, else NAB's rule; "
            "nab: NAB's rule on the point labels everywhere."
        ),
    ] = "windows",
    windows: Annotated[
        Path | None,
        typer.Option(
            # (a "[" Rich would read as markup is written "\\[")
            help="A windows file kept apart from the data, NAB's layout: {path under the "
            "folder: \\[\\[start, end], ...]}; it labels timestamp,value CSVs.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Score tsguard and two River/z-score baselines on labelled data (NAB, episodes)."""
    from stream_app.offline.evaluate_cli import run_evaluate

    with _bad_input():
        failed, tried = run_evaluate(data, report, as_json, config, generated, labelling, windows)
    if failed:
        raise _fail(f"{failed} of {tried} file(s) not evaluated (see above)")


@bench_app.command()
def detectors(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    points: Annotated[int, typer.Option(min=100, max=10_000_000, help="Points per run.")] = 50_000,
    repeats: Annotated[int, typer.Option(min=1, max=100, help="Runs per detector (median).")] = 5,
    config: ConfigOption = None,
) -> None:
    """Points/s per core of tsguard vs River HalfSpaceTrees and StandardAbsoluteDeviation."""
    import orjson
    from rich.console import Console
    from rich.table import Table

    from stream_app.bench.detectors import run_bench
    from stream_app.build_info import describe
    from stream_app.offline.replay import load_config
    from stream_app.offline.terminal import STDOUT, writing

    console = Console(stderr=True)
    with _bad_input():
        engine = load_config(config)
    with console.status("benchmarking") as status:
        result = run_bench(
            points,
            repeats,
            engine,
            on_step=lambda name: status.update(f"benchmarking {name}"),
        )
    if result["build"] != "compiled":
        console.print(f"note: {describe()}; `make bench` measures the wheel")
    with _bad_input(), writing(STDOUT, flush=sys.stdout):
        if as_json:
            sys.stdout.write(orjson.dumps(result).decode() + "\n")
            return
        table = Table(title=f"detectors, {points} points, median of {repeats}")
        table.add_column("detector")
        table.add_column("points/s", justify="right")
        table.add_column("tsguard ratio", justify="right")
        table.add_row("tsguard", f"{result['tsguard_points_per_s']:,}", "1")
        table.add_row(
            "river_hst", f"{result['river_hst_points_per_s']:,}", str(result["ratio_hst"])
        )
        table.add_row(
            "river_sad", f"{result['river_sad_points_per_s']:,}", str(result["ratio_sad"])
        )
        Console().print(table)
        Console().print(f"state bytes per series: {result['state_bytes_per_series']}")
        Console().print(f"build: {result['build']}")


@bench_app.command()
def pipeline(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    readings: Annotated[
        int,
        typer.Option(
            min=100,
            max=100_000_000,
            help="Readings for the throughput run: at least 4 x TSGUARD_WORKER_BATCH_SIZE"
            " (8,000 by default).",
        ),
    ] = 200_000,
    offered_rate: Annotated[
        float,
        typer.Option(min=1, max=1e7, help="Readings/s for the latency run."),
    ] = 5_000.0,
    seconds: Annotated[
        float,
        typer.Option(min=1, max=86_400, help="Length of the latency run."),
    ] = 25.0,
    entities: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Entities (3 metrics each).")
    ] = 1_000,
) -> None:
    """One real worker end to end: readings/s, vs decode-only and decode + store consumers,
    and p50/p99 latency."""
    import orjson

    from stream_app.bench.pipeline import run_pipeline_bench
    from stream_app.bench.pipeline_load import PipelinePlan
    from stream_app.offline.terminal import STDOUT, writing
    from stream_app.settings import load_settings

    plan = PipelinePlan(
        readings=readings, offered_rate=offered_rate, latency_seconds=seconds, entities=entities
    )
    settings = load_settings()
    if readings < 4 * settings.worker_batch_size:
        # The rate is timed from the end of the first batch, which can hold up
        # to a whole batch when the backlog is waiting.
        raise typer.BadParameter(
            f"needs at least 4 x TSGUARD_WORKER_BATCH_SIZE ({settings.worker_batch_size})"
            " readings to time the worker",
            param_hint="--readings",
        )
    result = run_pipeline_bench(settings, plan, lambda text: typer.echo(text, err=True))
    with _bad_input(), writing(STDOUT, flush=sys.stdout):
        if as_json:
            sys.stdout.write(orjson.dumps(result).decode() + "\n")
            return
        for key, value in result.items():
            typer.echo(
                f"{key:>30}  {value:,}" if isinstance(value, int | float) else f"{key:>30}  {value}"
            )
