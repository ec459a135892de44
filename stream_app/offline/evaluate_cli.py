"""Presentation of ``tsguard evaluate``: progress, tables, JSON and the report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stream_app.offline.csvio import MalformedCsvError, bad_input_message
from stream_app.offline.evaluate import (
    DETECTORS,
    TABLE_KEYS,
    evaluate,
    generated_dataset,
    load_dataset,
    run_all,
)
from stream_app.offline.replay import load_config
from stream_app.offline.terminal import (
    STDOUT,
    first_of,
    plain_console,
    text_name,
    visible,
    writing,
)

SHORT = {
    "nab_standard": "NAB std",
    "nab_low_fp": "NAB lowFP",
    "nab_low_fn": "NAB lowFN",
    "episode_f1": "F1",
    "episode_precision": "P",
    "episode_recall": "R",
    "mean_delay_points": "delay",
}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) and abs(value) < 1 else str(value)


def overall_table(result: dict[str, Any]) -> Table:
    table = Table(
        title=f"overall: {result['series_count']} series, {result['points']:,} points, "
        f"{result['windows']} windows"
    )
    table.add_column("detector")
    for key in TABLE_KEYS:
        table.add_column(SHORT[key], justify="right")
    table.add_column("points/s", justify="right")
    for detector, metrics in result["overall"].items():
        table.add_row(
            detector, *(_cell(metrics[k]) for k in TABLE_KEYS), f"{metrics['points_per_s']:,}"
        )
    return table


def series_table(result: dict[str, Any]) -> Table:
    table = Table(title="per series (NAB normalised per series; - : no scored window)")
    table.add_column("series", overflow="fold")
    for detector in result["overall"]:
        table.add_column(f"{detector} NAB", justify="right")
        table.add_column(f"{detector} F1", justify="right")
    for name, per_detector in result["series"].items():
        cells = []
        for detector in result["overall"]:
            metrics = per_detector[detector]
            cells += [_cell(metrics["nab_standard"]), _cell(metrics["episode_f1"])]
        table.add_row(visible(name), *cells)
    return table


FAMILY_KEYS = ("nab_swept", "nab_onsets", "f1", "outside_share", "max_len_ratio", "false_per_10k")


def family_table(result: dict[str, Any]) -> Table:
    table = Table(title="per family (NAB swept with the threshold of the other families: LOFO)")
    table.add_column("family", overflow="fold")
    table.add_column("detector")
    table.add_column("NAB LOFO", justify="right")
    for key in FAMILY_KEYS:
        table.add_column(key, justify="right")
    for family, per_detector in result["families"].items():
        for detector, metrics in per_detector.items():
            lofo = result["lofo_nab"][detector]["families"].get(family)
            cells = [_cell(lofo), *(_cell(metrics.get(k)) for k in FAMILY_KEYS)]
            table.add_row(visible(family) if detector == "tsguard" else "", detector, *cells)
    return table


def run_evaluate(
    data: Path | None,
    report: Path | None,
    as_json: bool,
    config_path: Path | None,
    generated: int = 0,
    labelling: str = "windows",
    windows_file: Path | None = None,
) -> tuple[int, int]:
    """Evaluate and print; returns how many CSVs of the folder could not be read or were
    malformed, of how many it was to evaluate (the command then ends with exit 2)."""
    console = plain_console(stderr=True)
    config = load_config(config_path)
    if windows_file is not None and data is None:
        raise ValueError("--windows labels the series of a folder: give the folder too")
    if report is not None:
        from stream_app.offline.report import check_folder

        check_folder(report)
    unreadable: list[Path] = []
    # what the JSON says of the folder's files it did not evaluate, by name under it:
    # before, only standard error named them
    not_evaluated: list[dict[str, str]] = []

    def named(path: Path) -> str:
        return text_name(path.relative_to(data).as_posix() if data and data.is_dir() else path.name)

    def not_read(path: Path, exc: OSError | MalformedCsvError) -> None:
        unreadable.append(path)
        message = bad_input_message(exc)
        not_evaluated.append({"file": named(path), "error": text_name(message)})
        console.print(f"error: {visible(message)}", soft_wrap=True)

    series, skipped = (
        load_dataset(
            data,
            labelling,
            windows_file,
            on_note=lambda text: console.print(visible(text)),
            on_unreadable=not_read,
        )
        if data is not None
        else ([], [])
    )
    tried = len(series) + len(unreadable)
    if data is not None and not series:
        needed = "timestamp,value" if windows_file else "timestamp,value,label"
        also = (
            f" ({len(unreadable)} could not be read or were malformed, see above)"
            if unreadable
            else ""
        )
        raise ValueError(f"{data}: no CSV with {needed} columns{also}")
    series += generated_dataset(generated) if generated else []
    if not series:
        raise ValueError("nothing to evaluate: give a folder, --generated N, or both")
    if not any(len(s.timestamps) for s in series):
        raise ValueError(f"{data}: nothing to evaluate, no CSV has a row after its header")
    if skipped:
        why = "not in the windows file" if windows_file else "without timestamp,value,label"
        console.print(
            f"skipped {len(skipped)} CSV(s) {why}: " + first_of([visible(p.name) for p in skipped])
        )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("evaluate", total=sum(len(s.timestamps) for s in series))
        seconds = run_all(
            series, config, DETECTORS, on_series=lambda s: progress.advance(task, len(s.timestamps))
        )
    result = evaluate(series, seconds)
    if report is not None:
        from stream_app.offline.report import write_report

        title = f"tsguard evaluate {text_name(data.name) if data else 'generated families'}"
        target = write_report(report, series, result, title)
        console.print(f"report: {visible(str(target))}")
    with writing(STDOUT, flush=sys.stdout):
        if as_json:
            result["not_evaluated"] = not_evaluated
            result["skipped"] = [named(p) for p in skipped]
            sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
            return len(unreadable), tried
        out = plain_console()
        out.print(series_table(result))
        out.print(family_table(result))
        out.print(overall_table(result))
    return len(unreadable), tried
