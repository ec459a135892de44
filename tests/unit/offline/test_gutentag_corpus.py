"""The GutenTAG corpus writer (``benchmarks/gutentag_corpus.py``), without GutenTAG.

GutenTAG runs only in its own virtualenv (``make gutentag``); here its generator is
replaced, so what is checked is ours: the CSVs ``tsguard evaluate`` reads, the
anomaly-free folders, and that a pair GutenTAG refuses is skipped, not fatal.
"""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks import gutentag_corpus as corpus
from stream_app.offline.evaluate import load_dataset


def _fake(config: dict[str, Any], seed: int) -> tuple[list[float], list[int]]:
    """A sine-free stand-in: a constant with one labelled run where an anomaly is asked."""
    (series,) = config["timeseries"]
    labels = [0] * corpus.POINTS
    if series["anomalies"]:
        (anomaly,) = series["anomalies"]
        start = corpus.POINTS // 2 if anomaly["position"] == "middle" else corpus.POINTS - 200
        labels[start : start + anomaly["length"]] = [1] * anomaly["length"]
    return [float(seed)] * corpus.POINTS, labels


def test_the_corpus_is_what_evaluate_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "_generate", _fake)
    written, skipped = corpus.build(tmp_path, draws=2)
    assert skipped == []
    kinds = len(corpus.KINDS)
    assert written == len(corpus.BASES) * (2 * kinds + corpus.FREE_DRAWS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*corpus.BASES, *(f"free_{b}" for b in corpus.BASES)]
    )
    series, unreadable = load_dataset(tmp_path, labelling="nab")
    assert unreadable == []
    assert len(series) == written
    by_name = {s.name: s for s in series}
    one = by_name["sine/mean-0.csv"]
    assert len(one.values) == corpus.POINTS
    assert len(one.windows) == 1  # NAB's rule: one window around the one labelled run
    assert all(not s.windows for n, s in by_name.items() if n.startswith("free_"))
    steps = {round(b - a) for a, b in zip(one.timestamps, one.timestamps[1:], strict=False)}
    assert steps == {corpus.STEP_S}
    # each draw starts on another weekday and hour
    firsts = {
        datetime.fromtimestamp(by_name[f"sine/mean-{d}.csv"].timestamps[0], UTC) for d in (0, 1)
    }
    assert len({(f.weekday(), f.hour) for f in firsts}) == 2


def test_a_pair_gutentag_refuses_is_skipped_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refusing(config: dict[str, Any], seed: int) -> tuple[list[float], list[int]]:
        name = config["timeseries"][0]["name"]
        if name.startswith("ecg-frequency"):
            raise ValueError("Incompatible types: frequency -> ecg")
        values, labels = _fake(config, seed)
        if name.startswith("sine-variance"):
            labels = [0] * len(labels)  # the anomaly fell outside the series
        return values, labels

    monkeypatch.setattr(corpus, "_generate", refusing)
    written, skipped = corpus.build(tmp_path, draws=1)
    assert sorted(skipped) == [
        "ecg/frequency-0: ValueError: Incompatible types: frequency -> ecg",
        "sine/variance-0: no point labelled",
    ]
    assert written == len(corpus.BASES) * (len(corpus.KINDS) + corpus.FREE_DRAWS) - 2
    assert not (tmp_path / "ecg" / "frequency-0.csv").exists()
    assert (tmp_path / "ecg" / "mean-0.csv").is_file()


def test_a_config_gutentag_cannot_parse_is_an_ordinary_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GutenTAG's parse error derives from BaseException: build() must still see an Exception
    class GutenTAGParseError(BaseException):
        pass

    class GutenTAG:
        @staticmethod
        def from_dict(config: dict[str, Any], seed: int) -> Any:
            raise GutenTAGParseError("Missing 'anomalies' property.")

    package = types.ModuleType("gutenTAG")
    package.GutenTAG = GutenTAG  # type: ignore[attr-defined]
    config = types.ModuleType("gutenTAG.config")
    validator = types.ModuleType("gutenTAG.config.validator")
    validator.GutenTAGParseError = GutenTAGParseError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gutenTAG", package)
    monkeypatch.setitem(sys.modules, "gutenTAG.config", config)
    monkeypatch.setitem(sys.modules, "gutenTAG.config.validator", validator)
    with pytest.raises(ValueError, match="Missing 'anomalies'"):
        corpus._generate(corpus._config("sine-free-0", "sine", None), 100)


def test_without_gutentag_it_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "gutenTAG", None)  # import gutenTAG -> ImportError
    assert corpus.main([str(tmp_path / "out")]) == 2
    assert "make gutentag" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
