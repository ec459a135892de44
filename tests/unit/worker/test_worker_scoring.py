"""The worker's batch step in memory: decode, score, explain, persist per entity."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson
import pytest

from stream_app.core import EngineConfig
from stream_app.worker.decode import ReadingDecoder
from stream_app.worker.feed import Record
from stream_app.worker.scoring import BatchOutput, ReadingScorer
from stream_app.worker.states import EntityStates

T0 = 1_790_000_000.0
# The wall clock as the worker reads these: after every reading in them (the scorer's
# clock never runs ahead of it)
NOW = T0 + 1e7


def _messages(n: int, spike_at: int) -> list[Record]:
    rng = random.Random(3)
    out = []
    for i in range(n):
        base = 20 + math.sin(i / 30)
        metrics = {
            "temperature": base + rng.gauss(0, 0.2) + (6.0 if i == spike_at else 0.0),
            "pressure": 5 + rng.gauss(0, 0.05),
            "vibration": 0.1 + rng.gauss(0, 0.01),
        }
        doc = {"entity": "plant-1/pump-1", "ts": T0 + 60 * i, "metrics": metrics}
        out.append(Record(orjson.dumps(doc), b"plant-1/pump-1", "r", 0, i))
    return out


def _scorer(config: EngineConfig, store: dict[str, bytes]) -> ReadingScorer:
    return ReadingScorer(EntityStates(config, store.get), ReadingDecoder(max_future_s=1e12))


def test_episode_explanation_names_the_entitys_most_unusual_metric() -> None:
    scorer = _scorer(EngineConfig.default(), {})
    out = scorer.process(_messages(400, spike_at=300), now=T0 + 60 * 400)
    opened = [e for e in out.events if e["event"] == "opened" and e["metric"] == "temperature"]
    assert opened, "the spike opened no episode"
    assert "entity: temperature most unusual" in opened[0]["explanation"]
    assert len(out.rows) == 1200 and not out.deadletters


def test_state_of_all_metrics_and_the_joint_scorer_survives_a_restart() -> None:
    config = EngineConfig.from_mapping(
        {"entities": [{"pattern": "plant-*", "params": {"window_size": 50}}]}
    )
    messages = _messages(400, spike_at=-1)
    store: dict[str, bytes] = {}
    first = _scorer(config, store)
    first.process(messages[:250], now=NOW)
    store["plant-1/pump-1"] = first.states.dump("plant-1/pump-1")
    assert first.states.entity_scorer("plant-1/pump-1") is not None
    resumed = _scorer(config, store)
    uninterrupted = _scorer(config, {})
    uninterrupted.process(messages[:250], now=NOW)
    a = resumed.process(messages[250:], now=NOW)
    b = uninterrupted.process(messages[250:], now=NOW)
    assert [r.score for r in a.rows] == [r.score for r in b.rows]
    joint_a = resumed.states.entity_scorer("plant-1/pump-1")
    joint_b = uninterrupted.states.entity_scorer("plant-1/pump-1")
    assert joint_a is not None and joint_b is not None
    assert joint_a.to_bytes() == joint_b.to_bytes()


def _fleet(
    entities: list[str], start: float, points: int, step: float, partition: int = 0
) -> list[Record]:
    out = []
    first = round((start - T0) / step)  # offsets grow with time, as in a partition
    for i in range(points):
        for entity in entities:
            doc = {"entity": entity, "ts": start + step * i, "metrics": {"t": 20.0 + (i % 3)}}
            out.append(Record(orjson.dumps(doc), entity.encode(), "r", partition, first + i))
    return out


def _silences(out: object) -> list[str]:
    events = getattr(out, "events", [])
    return [e["entity"] for e in events if e["kind"] == "silence" and e["event"] == "opened"]


def _judged(scorer: ReadingScorer, records: list[Record], now: float) -> list[str]:
    """The silences a batch opens: judged inside it as event time moves, and after it."""
    return _silences(scorer.process(records, now=now)) + _silences(scorer.advance(now=now))


def test_a_source_resuming_after_an_outage_does_not_open_a_silence_episode_per_series() -> None:
    fleet = [f"site/{i}" for i in range(20)]
    scorer = _scorer(EngineConfig.default(), {})
    scorer.process(_fleet(fleet, T0, 200, 10.0), now=NOW)
    # The whole feed was down for an hour; one device is heard from first.
    back = T0 + 200 * 10.0 + 3600
    assert _judged(scorer, _fleet(fleet[:1], back, 1, 10.0), now=back) == []
    # Everyone but site/19 reports again; site/19 stays silent and is caught.
    assert _judged(scorer, _fleet(fleet[:-1], back + 10, 30, 10.0), now=NOW) == ["site/19"]


def test_without_an_outage_a_silent_series_is_caught() -> None:
    fleet = [f"site/{i}" for i in range(5)]
    scorer = _scorer(EngineConfig.default(), {})
    scorer.process(_fleet(fleet, T0, 200, 10.0), now=NOW)
    assert _judged(scorer, _fleet(fleet[:-1], T0 + 2000, 30, 10.0), now=NOW) == ["site/4"]


def test_a_silence_that_ends_inside_one_batch_of_a_backlog_is_caught() -> None:
    # A backlog read at once (after a restart, a replay): site/4 was silent for 20 of
    # its 30-second intervals (the limit is 10) and then came back, all inside one
    # batch. Judged only between batches (the runtime's wall-clock check), its silence
    # had already ended by then and was never seen; it is judged as event time moves.
    fleet = [f"site/{i}" for i in range(5)]
    records = _fleet(fleet, T0, 200, 30.0)
    records += _fleet(fleet[:-1], T0 + 200 * 30.0, 20, 30.0)
    records += _fleet(fleet, T0 + 220 * 30.0, 50, 30.0)
    records.sort(key=lambda r: orjson.loads(r.value)["ts"])
    scorer = _scorer(EngineConfig.default(), {})
    out = scorer.process(records, now=NOW)
    events = [(e["entity"], e["kind"], e["event"]) for e in out.events]
    events += [(e["entity"], e["kind"], e["event"]) for e in scorer.advance(now=NOW).events]
    silences = [e for e in events if e[1] == "silence"]
    assert silences == [("site/4", "silence", "opened"), ("site/4", "silence", "resolved")]
    # judged only between batches (as before), the silence goes unseen
    quiet = _scorer(EngineConfig.default(), {})
    quiet.silence_every_s = math.inf
    assert not [e for e in quiet.process(records, now=NOW).events if e["kind"] == "silence"]


def test_a_partition_read_ahead_of_another_does_not_make_the_other_look_silent() -> None:
    ahead, behind = [f"p0/{i}" for i in range(5)], [f"p1/{i}" for i in range(5)]
    scorer = _scorer(EngineConfig.default(), {})
    scorer.process(_fleet(ahead, T0, 200, 10.0, partition=0), now=NOW)
    scorer.process(_fleet(behind, T0, 200, 10.0, partition=1), now=NOW)
    # A backlog: partition 0 is read 50 intervals further than partition 1 so far.
    scorer.process(_fleet(ahead, T0 + 2000, 50, 10.0, partition=0), now=NOW)
    assert _judged(scorer, _fleet(behind, T0 + 2000, 1, 10.0, partition=1), now=NOW) == []
    # Within partition 1, a device that stops is still caught.
    assert _judged(scorer, _fleet(behind[:-1], T0 + 2010, 40, 10.0, partition=1), now=NOW) == [
        "p1/4"
    ]


def test_readings_the_saved_state_already_learned_are_skipped_not_dead_lettered() -> None:
    # A crash after the state was saved (offset 299) but before the consumer
    # committed past 199: the restarted worker reads 200.. again.
    config = EngineConfig.default()
    messages = _messages(400, spike_at=-1)
    store: dict[str, bytes] = {}
    first = _scorer(config, store)
    first.process(messages[:300], now=NOW)
    store["plant-1/pump-1"] = first.states.dump("plant-1/pump-1")
    restarted = _scorer(config, store)
    out = restarted.process(messages[200:], now=T0 + 60 * 400)
    assert out.replayed == 100 and out.readings_ok == 100
    assert not out.deadletters
    uninterrupted = _scorer(config, {})
    uninterrupted.process(messages[:300], now=NOW)
    reference = uninterrupted.process(messages[300:], now=T0 + 60 * 400)
    assert [r.score for r in out.rows] == [r.score for r in reference.rows]
    # Within one process too: a record handed over twice (a seek back) is skipped.
    again = restarted.process(messages[390:], now=T0 + 60 * 400)
    assert again.replayed == 10 and not again.rows and not again.deadletters


def _from_sources(entity: str, sources: list[str], start: float, step: float) -> list[Record]:
    out = []
    for i, source in enumerate(sources):
        doc = {"entity": entity, "ts": start + step * i, "metrics": {"t": 20.0 + (i % 3)}}
        if source:
            doc["source"] = source
        out.append(Record(orjson.dumps(doc), entity.encode(), "r", 0, i))
    return out


def test_a_source_that_changes_with_every_reading_does_not_grow_the_workers_clocks() -> None:
    # A producer that puts a request id in `source` (or a hostile one): one clock
    # per distinct source would grow without bound; only the clocks live entities
    # follow are kept.
    scorer = _scorer(EngineConfig.default(), {})
    sources = [f"req-{i}" for i in range(3000)]
    scorer.process(_from_sources("site/0", sources, T0, 10.0), now=NOW)
    scorer.process(_fleet([f"site/{i}" for i in range(1, 6)], T0, 300, 10.0), now=NOW)
    assert sorted(scorer.watermarks) == [("", 0), ("req-2999", 0)]
    # The clocks that are kept still judge silence.
    assert _judged(
        scorer, _fleet([f"site/{i}" for i in range(1, 5)], T0 + 3000, 40, 10.0), now=NOW
    ) == ["site/5"]


def test_an_evicted_entity_takes_its_clock_along_when_nobody_else_follows_it() -> None:
    scorer = _scorer(EngineConfig.default(), {})
    scorer.process(_from_sources("lone/0", ["lone-gateway"] * 5, T0, 10.0), now=NOW)
    scorer.process(_fleet([f"site/{i}" for i in range(3)], T0, 5, 10.0), now=NOW)
    assert ("lone-gateway", 0) in scorer.watermarks
    # The oldest go first; the last site stays and keeps the shared clock.
    assert scorer.evict(1, busy=lambda entity: False) == 3
    assert list(scorer.watermarks) == [("", 0)]
    # Back again: the entity and its clock are followed anew.
    scorer.process(_from_sources("lone/0", ["lone-gateway"] * 5, T0 + 100, 10.0), now=NOW)
    assert sorted(scorer.watermarks) == [("", 0), ("lone-gateway", 0)]


def test_a_reading_not_keyed_by_its_entity_is_dead_lettered_and_changes_nothing() -> None:
    # Through another partition it would be scored without the entity's state, save a
    # second state over the first and make the entity's later readings look replayed.
    scorer = _scorer(EngineConfig.default(), {})
    keyed = _messages(60, spike_at=-1)
    scorer.process(keyed[:50], now=NOW)
    before = scorer.states.dump("plant-1/pump-1")
    strays = [
        Record(keyed[50].value, None, "r", 1, 9_999),
        Record(keyed[50].value, b"plant-1/pump-2", "r", 1, 10_000),
    ]
    out = scorer.process(strays, now=NOW)
    assert [d["reason"] for d in out.deadletters] == ["wrong_key", "wrong_key"]
    assert "no key" in out.deadletters[0]["detail"]
    assert "b'plant-1/pump-2'" in out.deadletters[1]["detail"]
    assert not out.rows and out.readings_ok == 0 and not out.touched
    assert scorer.states.dump("plant-1/pump-1") == before
    # The same reading, keyed as it should be, is scored as the next one.
    again = scorer.process(keyed[50:], now=NOW)
    assert again.readings_ok == 10 and not again.deadletters


def test_forgetting_the_live_models_forgets_the_clocks_they_followed() -> None:
    # After a rebalance the table is the truth; links to entities no longer live
    # must not pile up with every rebalance.
    scorer = _scorer(EngineConfig.default(), {})
    scorer.process(_fleet([f"site/{i}" for i in range(5)], T0, 20, 10.0), now=NOW)
    scorer.forget()
    assert scorer.watermarks == {} and list(scorer.states.entities()) == []
    assert scorer._clocks == {} and scorer._followed == {}  # nor what judged their silence
    scorer.process(_fleet(["site/0", "site/1"], T0 + 200, 200, 10.0), now=NOW)
    assert list(scorer.watermarks) == [("", 0)]
    # Silence is judged again once the clock has moved on.
    assert _judged(scorer, _fleet(["site/0"], T0 + 2200, 30, 10.0), now=NOW) == ["site/1"]


def test_an_unreadable_series_is_reported_as_a_series_whatever_its_metric_is_called() -> None:
    # Metrics may be named like the blob's other parts ("offset", "joint", "entity").
    from stream_app.worker.states import compress_blob, decompress_blob, pack_entity, unpack_entity

    first = _scorer(EngineConfig.default(), {})
    docs = [
        {"entity": "e", "ts": T0 + 60 * i, "metrics": {"offset": 1.0, "joint": 2.0}}
        for i in range(30)
    ]
    first.process([Record(orjson.dumps(d), b"e", "r", 0, i) for i, d in enumerate(docs)], now=NOW)
    parts = unpack_entity(decompress_blob(first.states.dump("e")))
    parts["offset"] = parts["joint"] = b"TS\x00truncated"
    reported: list[tuple[str, str, str]] = []
    states = EntityStates(
        EngineConfig.default(),
        {"e": compress_blob(pack_entity(parts))}.get,
        lambda entity, part, metric, exc: reported.append((entity, part, metric)),
    )
    states.entity("e")
    assert sorted(reported) == [("e", "series", "joint"), ("e", "series", "offset")]


def _arrivals(
    devices: dict[str, tuple[float, int]],
    minutes: int,
    jitter: float,
    outage: range = range(0),
    uploads: dict[str, float] | None = None,
) -> list[tuple[float, Record]]:
    """Readings once a minute, in the order they arrive, with when they arrive: per device,
    how late its own clock runs (seconds; ahead if negative) and the minute it stops
    reporting; nobody reports in ``outage``. A device in ``uploads`` sits behind a gateway
    that sends what it took every so many seconds."""
    rng = random.Random(5)
    arriving = []
    for entity, (late, stops) in devices.items():
        every = (uploads or {}).get(entity, 0.0)
        for i in range(min(minutes, stops)):
            if i in outage:
                continue
            taken = T0 + 60.0 * i + rng.uniform(0.0, jitter)
            at = taken if not every else T0 + ((taken - T0) // every + 1) * every
            doc = {"entity": entity, "ts": taken - late, "metrics": {"t": 20.0 + rng.gauss(0, 1)}}
            arriving.append((at, entity, orjson.dumps(doc)))
    arriving.sort()
    return [(at, Record(v, e.encode(), "r", 0, n)) for n, (at, e, v) in enumerate(arriving)]


def _opened_in_batches(
    arrivals: list[tuple[float, Record]], config: EngineConfig | None = None, size: int = 100
) -> list[str]:
    """Silences opened when the records are read ``size`` at a time as they arrive (the
    wall clock at the last one's arrival), judged between batches too."""
    scorer = _scorer(config or EngineConfig.default(), {})
    opened = []
    for k in range(0, len(arrivals), size):
        batch = arrivals[k : k + size]
        opened += _judged(scorer, [record for _, record in batch], now=batch[-1][0])
    return opened


def test_a_fleet_reporting_on_the_minute_has_its_silences_caught() -> None:
    # Devices that report at the top of each minute, within two seconds: the clock
    # moves in one long step a minute and many tiny ones. Weighed per step, the long
    # one looked like a whole-source outage every minute, and no silence was ever seen.
    devices = {f"site/{i}": (0.0, 10**9) for i in range(20)}
    devices["site/19"] = (0.0, 1500)  # stops after 25 hours
    assert _opened_in_batches(_arrivals(devices, 1600, jitter=2.0)) == ["site/19"]
    # A whole-source outage of an hour is still one, not twenty silences.
    assert _opened_in_batches(_arrivals(devices, 1600, jitter=2.0, outage=range(1200, 1260))) == [
        "site/19"
    ]


def test_an_entity_whose_own_clock_runs_late_is_silent_only_when_it_stops() -> None:
    # Two devices whose clocks run 30 and 90 minutes late, beside 10 on time, all
    # reporting every minute (a silence is 10 minutes without data). Measured from the
    # newest reading of any entity, they looked silent after every reading they sent.
    devices = {f"site/{i}": (0.0, 10**9) for i in range(10)}
    devices["late/30"] = (1800.0, 10**9)
    devices["late/90"] = (5400.0, 1500)  # stops after 25 hours
    devices["site/9"] = (0.0, 1550)
    assert sorted(_opened_in_batches(_arrivals(devices, 1600, jitter=60.0))) == [
        "late/90",
        "site/9",
    ]


def test_devices_behind_an_hourly_gateway_need_a_silence_limit_past_its_uploads() -> None:
    # Their readings come an hour's worth at a time: between two uploads they send
    # nothing for an hour, longer than the default limit (10 of their 1-minute
    # intervals), so each upload ends a silence. A rule for them with a limit past the
    # upload period (90 intervals) keeps them quiet, and still catches a gateway that
    # stops (after 25 hours).
    devices = {f"site/{i}": (0.0, 10**9) for i in range(10)}
    devices |= {"gw-1/a": (0.0, 10**9), "gw-1/b": (0.0, 10**9), "gw-2/a": (0.0, 1500)}
    uploads = {"gw-1/a": 3600.0, "gw-1/b": 3600.0, "gw-2/a": 3600.0}
    records = _arrivals(devices, 1800, jitter=60.0, uploads=uploads)
    by_default = _opened_in_batches(records)
    assert by_default.count("gw-1/a") > 15 and by_default.count("gw-1/b") > 15
    rule = {"pattern": "gw-*/*", "cleaning": {"silence_intervals": 90}}
    config = EngineConfig.from_mapping({"rules": [rule]})
    assert _opened_in_batches(records, config) == ["gw-2/a"]


def test_a_device_whose_clock_runs_ahead_does_not_hide_the_others_silences() -> None:
    # Its readings, 50 minutes in the future, set the partition's clock: once it
    # stopped, the clock stood still until the others caught up, and a silence in the
    # partition meanwhile went unseen. The clock never runs ahead of the wall clock now.
    devices = {f"site/{i}": (0.0, 10**9) for i in range(10)}
    devices["ahead/0"] = (-3000.0, 1500)  # stops after 25 hours
    arrivals = _arrivals(devices, 1600, jitter=20.0)
    # site/9 is silent for the 35 minutes after the 1,505th (10 is its limit)
    quiet = (T0 + 1505 * 60.0, T0 + 1540 * 60.0)
    arrivals = [(at, r) for at, r in arrivals if r.key != b"site/9" or not quiet[0] < at < quiet[1]]
    # read a minute's readings at a time, as they arrive
    assert sorted(_opened_in_batches(arrivals, size=11)) == ["ahead/0", "site/9"]


def test_an_ingested_at_from_a_wrong_clock_is_no_latency() -> None:
    """A producer's ``ingested_at`` of -1e300 made the ingest-to-anomaly histogram's sum
    1e300 for as long as the worker ran; one from the far future read as no delay."""
    now = T0 + 60 * 400
    latencies = {}
    for ingested_at in (now - 2.5, now + 30.0, -1e300, 1e300, now - 2 * 86_400, now + 3600):
        messages = []
        for record in _messages(400, spike_at=300):
            doc = orjson.loads(record.value)
            doc["ingested_at"] = ingested_at
            messages.append(Record(orjson.dumps(doc), record.key, "r", 0, record.offset))
        out = _scorer(EngineConfig.default(), {}).process(messages, now=now)
        assert any(e["event"] == "opened" for e in out.events)
        latencies[ingested_at] = sorted(set(out.ingest_to_event))
        # every reading's own wait (the pipeline's delay), believable or not at all
        assert out.ingest_to_scored == latencies[ingested_at] * len(messages)
    assert latencies[now - 2.5] == [2.5]
    assert latencies[now + 30.0] == [-30.0]  # a host a little ahead: observed as 0
    assert latencies[-1e300] == latencies[1e300] == []
    assert latencies[now - 2 * 86_400] == latencies[now + 3600] == []


def test_a_backfill_is_late_by_event_time_but_not_by_the_pipeline() -> None:
    """Readings a device flushed a day late, ingested just now: their event-to-scored
    time is a day, what the pipeline took is seconds. The scoring-latency alert pages
    "overloaded" on the second (``tsguard_ingest_to_scored_seconds``), not the first."""
    now = T0 + 60 * 400 + 86_400
    messages = []
    for record in _messages(400, spike_at=-1):
        doc = orjson.loads(record.value)
        doc["ingested_at"] = now - 1.5
        messages.append(Record(orjson.dumps(doc), record.key, "r", 0, record.offset))
    out = _scorer(EngineConfig.default(), {}).process(messages, now=now)
    assert min(out.event_to_scored) > 86_400
    assert set(out.ingest_to_scored) == {1.5} and len(out.ingest_to_scored) == 400


def test_readings_of_an_entity_on_another_partition_are_not_taken_for_replays() -> None:
    """A producer that does not hash keys as Kafka's clients do put 20 readings of an
    entity on partition 2 at offsets near 176,000; every later reading on its own
    partition (offsets near 64,000) was then "replayed": not scored, not stored."""
    from stream_app.worker.states import (
        OFFSET_KEY,
        compress_blob,
        decompress_blob,
        pack_entity,
        unpack_entity,
    )

    config = EngineConfig.default()
    messages = _messages(60, spike_at=-1)
    stray = [Record(m.value, m.key, "r", 2, 176_000 + i) for i, m in enumerate(messages[:20])]
    own = [Record(m.value, m.key, "r", 1, 64_000 + i) for i, m in enumerate(messages[20:])]
    store: dict[str, bytes] = {}
    scorer = _scorer(config, store)
    out = scorer.process(stray, now=NOW)
    assert out.readings_ok == 20 and out.replayed == 0
    store["plant-1/pump-1"] = scorer.states.dump("plant-1/pump-1")
    for states in (scorer, _scorer(config, store)):  # live, and restored from the table
        out = states.process(own, now=NOW)
        assert (out.readings_ok, out.replayed) == (40, 0)
        again = states.process(own[-5:], now=NOW)  # a true replay is still skipped
        assert (again.readings_ok, again.replayed) == (0, 5)
    # a state saved before the partition was (its offset alone) still skips its replays
    parts = unpack_entity(decompress_blob(scorer.states.dump("plant-1/pump-1")))
    parts[OFFSET_KEY] = (64_039).to_bytes(8, "little", signed=True)
    old = _scorer(config, {"plant-1/pump-1": compress_blob(pack_entity(parts))})
    assert old.process(own[-5:], now=NOW).replayed == 5


def test_a_rule_changed_at_run_time_keeps_what_the_live_models_learned() -> None:
    # A rule published to the control topic mid-stream (here one matching no series of
    # this entity) reconfigures the live models. Before, it dropped them and reloaded the
    # table's last checkpoint (nothing here): every reading learned since was lost and
    # the scores went on from fresh models (15,354 of 24,000 scores of a live run
    # differed, 13 open episodes were resolved as "model lost").
    messages = _messages(400, spike_at=350)
    scorer = _scorer(EngineConfig.default(), {})
    scorer.process(messages[:250], now=NOW)
    unrelated = {"rules": [{"pattern": "nothing-here/*", "policy": {"min_points": 3}}]}
    scorer.states.reconfigure(EngineConfig.from_mapping(unrelated))
    resumed = scorer.process(messages[250:], now=NOW)
    uninterrupted = _scorer(EngineConfig.default(), {})
    uninterrupted.process(messages[:250], now=NOW)
    reference = uninterrupted.process(messages[250:], now=NOW)
    assert [r.score for r in resumed.rows] == [r.score for r in reference.rows]
    assert resumed.events == reference.events and resumed.replayed == 0
    # a rule that does match takes effect on the live series at once
    changed = {"rules": [{"pattern": "plant-1/pump-1/pressure", "detector": "ewma_z"}]}
    scorer.states.reconfigure(EngineConfig.from_mapping(changed))
    series = scorer.states.entity("plant-1/pump-1").series
    assert series["pressure"].detector_name == "ewma_z"
    assert series["temperature"].detector_name == reference.rows[0].detector


def _quiet_after(steps: int) -> tuple[list[Record], list[Record]]:
    """busy-1 and quiet-1 every minute for ``steps``; then an hour of busy-1 alone."""

    def rec(entity: str, i: int, offset: int) -> Record:
        doc = {"entity": entity, "ts": T0 + 60 * i, "metrics": {"t": 20 + math.sin(i / 7)}}
        return Record(orjson.dumps(doc), entity.encode(), "r", 0, offset)

    both = [rec(e, i, 2 * i + k) for i in range(steps) for k, e in enumerate(("busy-1", "quiet-1"))]
    alone = [rec("busy-1", i, 2 * steps + i) for i in range(steps, steps + 60)]
    return both, alone


def _silence_events(scorer: ReadingScorer, alone: list[Record], entity: str) -> list[Any]:
    events = []
    for msg in alone:
        now = T0 + 60 * (msg.offset or 0) + 1
        events += scorer.process([msg], now=now).events + scorer.advance(now).events
    return [(e["kind"], e["event"]) for e in events if e["entity"] == entity]


@pytest.mark.parametrize("budget", [0.2, 0.0])
def test_a_rule_changed_at_run_time_reaches_an_entity_that_has_gone_quiet(
    budget: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rule published mid-stream (PUT /v1/detectors) gives a silent entity a longer
    # silence. Each live entity took the new rules only at its next use, and the silence
    # scan read the processors as they were: quiet-1, which has no next reading, was
    # judged by the old rules and opened the silence episode the rule was there to
    # prevent (a live worker did too; the eager restore of 6c799e6 did not).
    from stream_app.worker import scoring

    monkeypatch.setattr(scoring, "RESTORE_BUDGET_S", budget, raising=False)
    rule = {"rules": [{"pattern": "quiet-1/*", "cleaning": {"silence_intervals": 1000}}]}
    both, alone = _quiet_after(200)
    untouched = _scorer(EngineConfig.default(), {})
    untouched.process(both, now=T0 + 60 * 200)
    assert _silence_events(untouched, alone, "quiet-1") == [("silence", "opened")]
    scorer = _scorer(EngineConfig.default(), {})
    scorer.process(both, now=T0 + 60 * 200)
    scorer.states.reconfigure(EngineConfig.from_mapping(rule))
    assert _silence_events(scorer, alone, "quiet-1") == []
    if budget:  # restored under the new rules by the scan
        assert scorer.states.stale() == 0
    else:  # no time for restores: not judged (by the old rules) at all, restored later
        assert scorer.states.stale() == 1


def test_the_silence_scan_restores_quiet_entities_however_long_the_others_take(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The scan's restore budget was counted from the start of the scan, so the time spent
    # judging the entities before a stale one counted against it: once judging the live
    # entities ahead of it took longer than the budget (about 40,000 entities of three
    # series, fewer with more series or a busy CPU), a stale quiet entity behind them was
    # never restored, hence never judged, at any scan. Only restores count now.
    import time

    from stream_app.core.entity_processor import EntityProcessor
    from stream_app.worker import scoring

    monkeypatch.setattr(scoring, "RESTORE_BUDGET_S", 0.05)
    judge = EntityProcessor.advance

    def slow(self: EntityProcessor, *args: Any, **kwargs: Any) -> Any:
        if self.entity == "busy-1":  # ahead of quiet-1 in the live entities
            time.sleep(0.06)
        return judge(self, *args, **kwargs)

    rule = {"rules": [{"pattern": "quiet-1/*", "cleaning": {"silence_intervals": 1000}}]}
    both, alone = _quiet_after(200)
    scorer = _scorer(EngineConfig.default(), {})
    scorer.process(both, now=T0 + 60 * 200)
    scorer.states.reconfigure(EngineConfig.from_mapping(rule))
    monkeypatch.setattr(EntityProcessor, "advance", slow)
    assert _silence_events(scorer, alone[:3], "quiet-1") == []
    assert scorer.states.stale() == 0  # restored (and judged) by the scans


def test_a_batch_that_could_not_be_unpacked_is_dead_lettered_with_what_it_was() -> None:
    # The consumer hands over one stand-in (no value, a note) for a compressed batch it
    # could not unpack; a tombstone (no value, no note) stays what it was.
    scorer = _scorer(EngineConfig.default(), {})
    keyed = _messages(20, spike_at=-1)
    note = "a gzip batch of offsets 20..24 could not be read (BatchTooLarge: ...)"
    out = scorer.process(
        [*keyed[:10], Record(None, None, "r", 0, 24, note=note), Record(None, b"e", "r", 0, 25)],
        now=NOW,
    )
    assert [d["reason"] for d in out.deadletters] == ["unreadable_batch", "invalid_json"]
    assert out.deadletters[0]["detail"] == note
    assert out.deadletters[0]["origin"]["offset"] == 24
    assert out.readings_ok == 10


def test_a_markets_clock_marks_its_sessions_not_its_nights() -> None:
    """What the wall-clock alert on a silent source knows of when it usually reports: the
    slots its clock moved through, but not a night it jumped over (nor a clock that
    stood still)."""
    scorer = _scorer(EngineConfig.default(), {})
    monday = 1_793_577_600.0  # 2026-11-02 00:00 UTC, a Monday
    tod = dow = 0
    offset = 0
    for day in (0, 1):
        open_ts = monday + day * 86400.0 + 14.5 * 3600.0
        for chunk in range(78):  # 14:30-21:00, in 5-minute batches of 1-minute ticks
            records = []
            for m in range(5):
                ts = open_ts + 300.0 * chunk + 60.0 * m
                doc = {"entity": "mkt/AAA", "ts": ts, "source": "market", "metrics": {"p": 1.0}}
                records.append(Record(orjson.dumps(doc), b"mkt/AAA", "r", 0, offset))
                offset += 1
            scorer.process(records, now=ts + 1.0)
            for mark in scorer.source_marks():
                assert (mark.source, mark.partition) == ("market", 0)
                tod |= mark.live_tod
                dow |= mark.live_dow
                # its minute, not lifted by the night (the worker's usual_step was: six
                # minutes at the open, three an hour in)
                assert mark.step_s is not None and 59.0 < mark.step_s < 61.0, mark
            assert scorer.source_marks() == []  # it stood still since
    assert [i for i in range(288) if tod >> i & 1] == list(range(174, 252))  # 14:30-20:59
    assert dow == 0b11  # Monday and Tuesday


def _mixed_backlog() -> list[Record]:
    """A backlog with something of everything: spikes, a silence that opens and ends
    inside it, replayed readings, a reading keyed wrong and one that is not JSON."""
    fleet = [f"site/{i}" for i in range(5)]
    records = _fleet(fleet, T0, 200, 30.0)
    records += _fleet(fleet[:-1], T0 + 200 * 30.0, 20, 30.0)
    records += _fleet(fleet, T0 + 220 * 30.0, 50, 30.0)
    records.sort(key=lambda r: orjson.loads(r.value)["ts"])
    records += _messages(400, spike_at=300)
    records += records[100:110]  # replayed: skipped
    records.append(Record(b"not json", b"site/0", "r", 0, 10**6))
    records.append(Record(records[0].value, b"site/9", "r", 0, 10**6 + 1))
    return records


def _everything(out: Any) -> dict[str, Any]:
    fields = ("rows", "events", "deadletters", "touched", "readings_ok", "replayed")
    more = ("statuses", "event_to_scored", "ingest_to_scored", "orphans", "forgotten")
    return {name: getattr(out, name) for name in fields + more}


def test_a_batch_scored_in_slices_gives_what_it_gives_at_once() -> None:
    """The worker scores a large batch a slice at a time (``into``), the event loop running
    between slices: every output of the batch, and the models after it, are the same."""
    records = _mixed_backlog()
    whole = _scorer(EngineConfig.default(), {})
    at_once = whole.process(records, now=NOW)
    sliced = _scorer(EngineConfig.default(), {})
    out = sliced.process(records[:7], now=NOW)
    for start in range(7, len(records), 7):
        assert sliced.process(records[start : start + 7], now=NOW, into=out) is out
    assert at_once.statuses and at_once.replayed and at_once.deadletters
    kinds = {e["kind"] for e in at_once.events}
    assert "silence" in kinds and len(kinds) > 1
    assert _everything(out) == _everything(at_once)
    entities = sorted(whole.states.entities())
    assert entities == sorted(sliced.states.entities())
    assert [sliced.states.dump(e) for e in entities] == [whole.states.dump(e) for e in entities]


def test_the_silence_scan_in_slices_judges_what_it_judges_at_once() -> None:
    """The worker's wall-clock silence scan judges the live entities a slice at a time
    (``judging``), the event loop running in between: the same events and changes."""
    fleet = [f"site/{i}" for i in range(9)]
    scorers = [_scorer(EngineConfig.default(), {}) for _ in range(2)]
    for scorer in scorers:
        scorer.process(_fleet(fleet, T0, 200, 10.0), now=NOW)
        scorer.silence_every_s = math.inf  # judged by the scan below only
        scorer.process(_fleet(fleet[:4], T0 + 2000, 30, 10.0), now=NOW)  # 5 go quiet
    at_once = scorers[0].advance(now=NOW)
    sliced = BatchOutput()
    pauses = sum(1 for _ in scorers[1].judging(NOW, sliced, every=2))
    assert pauses == 4  # before entities 3, 5, 7 and 9 of 9
    assert sorted(_silences(at_once)) == [f"site/{i}" for i in range(4, 9)]
    assert sliced.events == at_once.events and sliced.touched == at_once.touched
