"""The decoder's name cache changes speed only: every verdict stays the schema's."""

from __future__ import annotations

import pytest

from stream_app.wire import reading as decode
from stream_app.worker.decode import ReadingDecoder, Rejection


def test_cached_names_do_not_let_an_invalid_name_through() -> None:
    decoder = ReadingDecoder(max_future_s=1e12)
    good = {"entity": "site/a", "ts": 1.0, "metrics": {"temp": 1.0}}
    assert not isinstance(decoder.validate(good, now=2e9), Rejection)
    assert not isinstance(decoder.validate(good, now=2e9), Rejection)  # now from the cache
    for doc in (
        {"entity": "site/a b", "ts": 1.0, "metrics": {"temp": 1.0}},
        {"entity": "site/a", "ts": 1.0, "metrics": {"temp": 1.0, "9bad": 2.0}},
        {"entity": "site/a", "ts": 1.0, "metrics": {"temp": "hot"}},
    ):
        verdict = decoder.validate(doc, now=2e9)
        assert isinstance(verdict, Rejection) and verdict.reason == "schema", doc


def test_the_name_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "_NAME_CACHE", 10)
    decoder = ReadingDecoder(max_future_s=1e12)
    for i in range(25):
        doc = {"entity": f"site/{i}", "ts": 1.0, "metrics": {f"m{i}": 1.0}}
        assert not isinstance(decoder.validate(doc, now=2e9), Rejection)
    assert len(decoder._good_entities) <= 10 and len(decoder._good_metrics) <= 10
