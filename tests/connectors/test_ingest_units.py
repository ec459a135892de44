"""Pure parts of the connectors: CSV rows, MQTT topics and payloads, Alertmanager alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.alerting.alerts import AlertBook, check_event, to_alert
from connectors.alerting.open_episodes import as_event, restore_open_episodes
from connectors.ingest.files import ColumnMap, Malformed, MappingError, merged, read_csv, to_epoch
from connectors.ingest.mqtt_payload import TopicPattern, payload_to_reading
from connectors.ingest.replay_to_kafka import parse_speed
from connectors.simulate.groundtruth import GroundTruth, GroundTruthWriter, read_ground_truth
from stream_app.wire import Rejection

NOW = 1_800_000_000.0


def test_csv_rows_become_readings_and_bad_rows_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "pump 7.csv"
    path.write_text(
        "timestamp,temperature,vibration\n"
        "2026-01-05 00:00:00,71.5,0.02\n"
        "2026-01-05 00:01:00,,0.03\n"
        "not-a-time,70,0.01\n"
        "2026-01-05 00:03:00,abc,0.01\n"
        "2026-01-05 00:04:00,inf,0.01\n"
        "2026-01-05 00:05:00,72\n"
        "1767571560000,72.5,0.02\n"
        "1767571620000000,73,0.02\n"
        "1767571680000000000,73.5,0.02\n"
    )
    rows = [item for _, item in read_csv(path, ColumnMap(), now=NOW)]
    good = [r for r in rows if isinstance(r, dict)]
    bad = [r for r in rows if isinstance(r, Malformed)]
    assert [g["entity"] for g in good] == ["pump_7"] * 5
    assert good[0] == {
        "entity": "pump_7",
        "ts": 1767571200.0,
        "metrics": {"temperature": 71.5, "vibration": 0.02},
        "source": "replay",
    }
    assert good[1]["metrics"]["temperature"] is None
    # epoch milliseconds, microseconds and nanoseconds recognised
    assert [g["ts"] for g in good[2:]] == [1767571560.0, 1767571620.0, 1767571680.0]
    assert [(b.location.rsplit(":", 1)[1], b.reason) for b in bad] == [
        ("4", "bad_timestamp"),
        ("5", "schema"),
        ("6", "non_finite"),
        ("7", "schema"),
    ]
    assert "temperature" in bad[1].detail and str(path) in bad[1].message()
    assert bad[3].raw == b"2026-01-05 00:05:00,72"


def test_a_row_dated_ahead_of_the_rows_after_it_is_malformed_not_replayed(
    tmp_path: Path,
) -> None:
    """A backfill with one row whose date was typed 28 days ahead: replayed, it moved its
    series' clock, and the worker dead-lettered 89 of the 100 rows after it as late
    (review rev66d). It is now a malformed row, as ``tsguard replay`` leaves it out."""
    start = 1_767_571_200  # 2026-01-05
    rows = ["ts,entity,temp"]
    for i in range(100):
        for device in ("a", "b"):  # two devices, interleaved in time order
            ts = start + 60 * i + (28 * 86_400 if (i, device) == (30, "a") else 0)
            rows.append(f"{ts},{device},{20 + i % 7}")
    rows.insert(40, "oops,a,1")  # a row that cannot be read, among the rows deciding
    path = tmp_path / "backfill.csv"
    path.write_text("\n".join(rows) + "\n")
    out = list(read_csv(path, ColumnMap(entity_column="entity"), now=start + 86_400 * 40))
    bad = [(item.location, item.reason) for _, item in out if isinstance(item, Malformed)]
    assert bad == [(f"{path}:41", "bad_timestamp"), (f"{path}:63", "bad_timestamp")]
    ahead = next(i for _, i in out if isinstance(i, Malformed) and i.location.endswith(":63"))
    assert "2026-02-02T00:30:00Z is ahead of the rows of its entity after it" in ahead.detail
    good = [item for _, item in out if isinstance(item, dict)]
    assert len(good) == 199
    for device in ("a", "b"):
        times = [g["ts"] for g in good if g["entity"] == device]
        assert times == sorted(times) and times[-1] < start + 86_400  # nothing late after
    keys = [ts for ts, _ in out]
    assert keys == sorted(keys)  # the merge of several files keeps its order
    # newest first, or a clock set back for good: nothing is ahead, as in the worker
    flipped = tmp_path / "newest_first.csv"
    flipped.write_text("\n".join([rows[0], *reversed(rows[1:])]) + "\n")
    read = list(read_csv(flipped, ColumnMap(entity_column="entity"), now=start + 86_400 * 40))
    assert sum(isinstance(i, Malformed) for _, i in read) == 1  # the unreadable row only


def test_a_file_grouped_by_device_is_judged_per_device(tmp_path: Path) -> None:
    """The worker's clock is per series: a file grouped by device goes back in time at
    each device, and the last row of one device is not ahead of the next device's rows
    (judged over the whole file it was dead-lettered; review /tmp/s67e)."""
    start = 1_767_571_200
    rows = ["ts,entity,temp"]
    rows += [f"{start + 600 * i},a,{i}" for i in range(73)]  # 00:00 to 12:00, every 10 min
    rows += [f"{start + 42_900 + 60 * i},b,{i}" for i in range(60)]  # every minute from 11:55
    rows.insert(30, f"{start + 600 * 29 + 28 * 86_400},a,99")  # and one typo in a's block
    path = tmp_path / "grouped.csv"
    path.write_text("\n".join(rows) + "\n")
    out = list(read_csv(path, ColumnMap(entity_column="entity"), now=start + 86_400 * 40))
    bad = [item.location for _, item in out if isinstance(item, Malformed)]
    assert bad == [f"{path}:31"]
    for device in ("a", "b"):
        times = [
            item["ts"] for _, item in out if isinstance(item, dict) and item["entity"] == device
        ]
        assert len(times) == (73 if device == "a" else 60) and times == sorted(times)


def test_a_reader_holds_a_bounded_number_of_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows wait for the rows of their entity after them: a file of many devices with a
    few rows each, or whose times stopped parsing halfway, must not be held to its end."""
    from connectors.ingest import files

    monkeypatch.setattr(files, "HELD_MAX", 500)
    read = 0

    def rows() -> Any:
        nonlocal read
        for n in range(20_000):  # 20,000 devices of one row, then 20,000 unreadable rows
            read += 1
            yield (float(n), {"entity": f"d{n}", "ts": float(n)}, f"f:{n}", b"")
        for n in range(20_000):
            read += 1
            yield (19_999.0, Malformed(f"f:{n}", "bad_timestamp", "x", b""), f"f:{n}", b"")

    most_held, out = 0, 0
    for _ in files._ahead_left_out(rows()):
        out += 1
        most_held = max(most_held, read - out)
    assert out == 40_000 and most_held <= 501


def test_a_quote_never_closed_costs_its_own_line_only(tmp_path: Path) -> None:
    """Without strict parsing the quote swallowed every later line into one cell; now
    the line is one malformed row and the lines after it are read again."""
    path = tmp_path / "q.csv"
    rows = [f"2024-01-01T00:{m:02d}:00Z,{m}" for m in range(60)]
    rows[5] = '2024-01-01T00:05:00Z,"5'  # opens a quote, never closes it
    rows[9] = '2024-01-01T00:09:00Z,"9"x'  # text after a closing quote
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    items = [item for _, item in read_csv(path, ColumnMap(entity="e"))]
    bad = [item for item in items if isinstance(item, Malformed)]
    good = [item for item in items if not isinstance(item, Malformed)]
    assert [m.location for m in bad] == [f"{path}:7", f"{path}:11"]
    assert "not closed on it" in bad[0].detail and bad[0].raw == rows[5].encode()
    assert {m.reason for m in bad} == {"schema"}
    assert [r["metrics"]["value"] for r in good] == [float(m) for m in range(60) if m not in (5, 9)]


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a byte-order mark: the first column was named
    '\ufefftemp' and the file was refused for "no usable metric columns"."""
    path = tmp_path / "bom.csv"
    path.write_bytes(
        "temp,ts\n21.5,2026-01-05T00:00:00Z\n1_000,2026-01-05T00:01:00Z\n".encode("utf-8-sig")
    )
    items = [item for _, item in read_csv(path, ColumnMap(entity="e"), now=NOW)]
    assert isinstance(items[0], dict) and items[0]["metrics"] == {"temp": 21.5}
    assert isinstance(items[1], Malformed) and "'1_000' is not a number" in items[1].detail


def test_a_header_that_is_not_csv_is_a_mapping_error(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text('"timestamp,value\n1,2\n')
    with pytest.raises(MappingError, match="never closed"):
        list(read_csv(path, ColumnMap(entity="e")))


def test_column_mapping_entity_column_and_clear_mapping_errors(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("when,device,p,q\n10,a/b,1,2\n20,c d,3,4\n")
    items = [
        i
        for _, i in read_csv(
            path, ColumnMap(timestamp="when", entity_column="device", metrics=("p",)), now=NOW
        )
    ]
    assert (
        isinstance(items[0], dict)
        and items[0]["entity"] == "a/b"
        and items[0]["metrics"] == {"p": 1.0}
    )
    assert isinstance(items[1], Malformed) and items[1].reason == "schema"
    with pytest.raises(MappingError, match="no timestamp column"):
        list(read_csv(path, ColumnMap(), now=NOW))
    with pytest.raises(MappingError, match="zz"):
        list(read_csv(path, ColumnMap(timestamp="when", metrics=("zz",)), now=NOW))
    twice = tmp_path / "twice.csv"
    twice.write_text("when,p,q,p\n10,1,2,3\n")
    with pytest.raises(MappingError, match=r"\['p'\] named more than once"):
        list(read_csv(twice, ColumnMap(timestamp="when"), now=NOW))
    # a repeated column nobody reads is no guess
    items = [i for _, i in read_csv(twice, ColumnMap(timestamp="when", metrics=("q",)), now=NOW)]
    assert isinstance(items[0], dict) and items[0]["metrics"] == {"q": 2.0}


def test_files_are_merged_in_event_time(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ts,v\n1,1\n3,1\n5,1\n")
    (tmp_path / "b.csv").write_text("ts,v\n2,2\n4,2\n")
    order = [ts for ts, _ in merged([tmp_path / "a.csv", tmp_path / "b.csv"], ColumnMap(), now=NOW)]
    assert order == [1, 2, 3, 4, 5]


def test_parse_speed() -> None:
    assert parse_speed("10") == 10.0
    with pytest.raises(ValueError):
        parse_speed("-1")


def test_topic_patterns() -> None:
    p = TopicPattern.parse("sites/+site/+device/+metric")
    assert p.match("sites/a/b") is None and p.match("other/a/b/c") is None
    deep = TopicPattern.parse("fleet/+device/#rest")
    assert deep.subscription == "fleet/+/#" and deep.match("fleet/d1/x/y") == {
        "device": "d1",
        "rest": "x/y",
    }
    assert (
        TopicPattern.parse("s/+site/+dev", "{dev}@{site}").entity({"site": "s1", "dev": "d"})
        == "d@s1"
    )
    for bad in ("a/#x/b", "a/b+c/+d", "a/+m/+m", "a/+metric"):
        with pytest.raises(ValueError):
            TopicPattern.parse(bad)


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("sites/s1/d1/temp", b"21.5", {"temp": 21.5}),
        ("sites/s1/d1/temp", b'{"value": 3, "ts": 1767571200}', {"temp": 3}),
        ("sites/s1/d1/all", b'{"metrics": {"a": 1, "b": null}}', {"a": 1, "b": None}),
        (
            "sites/s1/d1/all",
            b'{"x": 1.5, "y": 2, "time": "2026-01-05T00:00:00Z"}',
            {"x": 1.5, "y": 2},
        ),
    ],
)
def test_good_payloads(topic: str, payload: bytes, expected: dict[str, float | None]) -> None:
    out = payload_to_reading(topic, payload, TopicPattern.parse("sites/+site/+device/+metric"), NOW)
    assert isinstance(out, dict) and out["metrics"] == expected and out["entity"] == "s1/d1"
    assert out["source"] == "mqtt" and isinstance(out["ts"], float | int | str)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("sites/s1/d1/temp", b"warm", "invalid_json"),
        ("sites/s1/d1/temp", b"1_000", "invalid_json"),  # Python's literal; read as 1000.0
        ("sites/s1/d1/temp", b"\xff\xfe", "bad_payload"),
        ("sites/s1/d1/temp", b"nan", "non_finite"),
        ("sites/s1/d1/temp", b"[1, 2]", "bad_payload"),
        ("sites/s1/d1/temp", b"{}", "bad_payload"),
        ("sites/s1/d1/temp", b'{"value": "hot"}', "schema"),
        ("sites/s1/d1/temp", b'{"value": 1, "ts": "yesterday"}', "bad_timestamp"),
        ("sites/s 1/d1/temp", b"1", "schema"),
        ("elsewhere/s1/d1/temp", b"1", "bad_payload"),
        # as the Kafka decoder says them: NaN and overflow inside JSON were invalid_json,
        # and a key named twice was taken (its last value)
        ("sites/s1/d1/temp", b'{"value": NaN}', "non_finite"),
        ("sites/s1/d1/temp", b'{"value": 1e400}', "non_finite"),
        ("sites/s1/d1/temp", b'{"value": 1, "value": 999}', "invalid_json"),
        ("sites/s1/d1/temp", b"2e150", "schema"),
    ],
)
def test_bad_payloads_are_rejected_with_a_reason(topic: str, payload: bytes, reason: str) -> None:
    out = payload_to_reading(topic, payload, TopicPattern.parse("sites/+site/+device/+metric"), NOW)
    assert isinstance(out, Rejection) and out.reason == reason, out


def _event(kind: str, severity: str = "high", **extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "version": 1,
        "event": kind,
        "episode_id": "ep-0123456789",
        "entity": "plant/pump",
        "metric": "temp",
        "kind": "value",
        "started_at": "2026-01-05T10:00:00Z",
        "ended_at": None,
        "ts": "2026-01-05T10:00:00Z",
        "value": 97.2,
        "expected": 71.3,
        "score": 0.99,
        "peak_score": 0.99,
        "severity": severity,
        "direction": "up",
        "detector": "robust",
        "explanation": "way up",
    }
    return base | extra


def test_alerts_carry_labels_annotations_and_endsat_on_resolve() -> None:
    now = 1_767_610_000.0
    firing = to_alert(_event("opened"), now)
    assert firing["labels"] == {
        "alertname": "TsguardAnomaly",
        "entity": "plant/pump",
        "metric": "temp",
        "severity": "high",
        "detector": "robust",
        "kind": "value",
        "episode_id": "ep-0123456789",
    }
    assert (
        firing["annotations"]["value"] == "97.2"
        and firing["annotations"]["explanation"] == "way up"
    )
    assert firing["startsAt"] == "2026-01-05T10:00:00.000Z" and "endsAt" not in firing
    resolved = to_alert(_event("resolved", ended_at="2026-01-05T10:05:00Z"), now)
    assert resolved["endsAt"] == "2026-01-05T10:05:00.000Z"
    future = to_alert(
        _event("resolved", started_at="2099-01-01T00:00:00Z", ended_at="2099-01-01T00:01:00Z"), now
    )
    assert future["endsAt"] == future["startsAt"]  # clamped to the wall clock
    assert check_event({"event": "opened"}) is not None and check_event(_event("opened")) is None


def test_alert_book_resolves_replaced_severity_and_resends() -> None:
    book = AlertBook(resend_every_s=60)
    assert len(book.plan([_event("opened", "medium")], 1000.0)) == 1
    out = book.plan([_event("updated", "critical")], 1010.0)
    assert [a["labels"]["severity"] for a in out] == ["medium", "critical"] and "endsAt" in out[0]
    assert book.due(1030.0) == [] and len(book.due(1071.0)) == 1
    assert (
        len(book.plan([_event("resolved", "critical", ended_at="2026-01-05T10:05:00Z")], 1080.0))
        == 1
    )
    assert len(book) == 0
    assert book.adopt([{"labels": {"alertname": "TsguardAnomaly", "episode_id": "ep-x"}}], 1.0) == 1


@pytest.mark.parametrize(
    "times",
    [
        {"ended_at": 20240101},  # a number: read as a date by the check, then a crash
        {"ts": 20240101},
        {"started_at": "0001-01-01T00:00:00+01:00"},  # year 0 in UTC
        {"ended_at": "9999-12-31T23:59:59-01:00"},  # year 10000 in UTC
        {"ended_at": ["2026-01-05T10:05:00Z"]},
    ],
)
def test_an_event_no_alert_can_be_made_of_is_refused_by_the_check(times: dict[str, object]) -> None:
    """These passed ``check_event`` and then raised in ``to_alert``, outside any try in
    the forwarder's loop, before its commit: it crashed on the record at every restart."""
    event = {**_event("resolved"), **times}
    assert check_event(event) is not None
    for fine in ({"ended_at": "2026-01-05T10:05:00Z"}, {"ended_at": None}):
        assert check_event({**_event("resolved"), **fine}) is None
        to_alert({**_event("resolved"), **fine}, NOW)


def test_alert_book_forgets_what_alertmanager_refused() -> None:
    """A refused alert stayed in the book, and every periodic re-send (all firing alerts
    in one POST) was refused with it."""
    book = AlertBook(resend_every_s=60)
    book.plan([_event("opened", "medium")], 1000.0)
    book.plan([{**_event("opened", "high"), "episode_id": "ep-2"}], 1000.0)
    book.forget({"ep-2"})
    assert [a["labels"]["episode_id"] for a in book.due(1100.0)] == [_event("opened")["episode_id"]]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_ground_truth_files_round_trip(tmp_path: Path, suffix: str) -> None:
    records = [
        GroundTruth("a/b", "temp", "spike", 1.5, 1.5),
        GroundTruth("a/b", "*", "duplicate", 2, 2, False),
    ]
    with GroundTruthWriter(tmp_path / f"gt{suffix}") as writer:
        writer.write(records)
    assert list(read_ground_truth(tmp_path / f"gt{suffix}")) == records


def test_an_episode_told_again_after_its_resolved_does_not_page_again() -> None:
    """Events are at least once: a worker taking over partitions publishes again what was
    sent since their last checkpoint, so one episode can come as opened, resolved, opened,
    resolved. The repeated opened re-fired an alert for an episode that was over, firing
    until the repeated resolved came in a later poll."""
    book = AlertBook(resend_every_s=60)
    ended = {"ended_at": "2026-01-05T10:05:00Z"}
    assert len(book.plan([_event("opened", "high")], 1000.0)) == 1
    assert len(book.plan([_event("resolved", "high", **ended)], 1010.0)) == 1
    assert book.plan([_event("opened", "high"), _event("updated", "critical")], 1020.0) == []
    assert len(book) == 0 and book.due(2000.0) == []
    assert book.plan([_event("resolved", "high", **ended)], 1030.0) == []
    other = {**_event("opened", "high"), "episode_id": "ep-other"}
    assert len(book.plan([other], 1040.0)) == 1  # another episode still pages


def test_the_resolved_episodes_the_book_remembers_are_bounded() -> None:
    book = AlertBook(resend_every_s=60)
    book.RESOLVED_KEPT = 3
    for k in range(5):
        event = {**_event("resolved", ended_at="2026-01-05T10:05:00Z"), "episode_id": f"ep-{k}"}
        book.plan([event], 1000.0)
    assert list(book._resolved) == ["ep-2", "ep-3", "ep-4"]


def test_open_episodes_the_database_has_fire_again_unless_the_book_knows_them() -> None:
    """Alertmanager keeps alerts in memory only, and the forwarder's group had committed
    the opened events long before: after both restarted, an episode still open never
    fired again until it resolved."""
    book, now = AlertBook(resend_every_s=60), 1_767_610_000.0
    ended = {"ended_at": "2026-01-05T10:05:00Z"}
    firing, over, lost = ({**_event("opened"), "episode_id": e} for e in ("ep-a", "ep-b", "ep-c"))
    book.plan([firing, over, {**_event("resolved", **ended), "episode_id": "ep-b"}], now)
    rows = [{**_event("updated", "critical"), "episode_id": e} for e in ("ep-a", "ep-b", "ep-c")]
    # the firing one stays as it was posted; the one seen resolving while the database
    # was read does not fire for good
    assert book.restore(rows, now + 1) == 1 and len(book) == 2
    due = book.due(now + 1)  # at once, not a resend period later
    assert [(a["labels"]["episode_id"], a["labels"]["severity"]) for a in due] == [
        ("ep-c", "critical")
    ]
    assert due[0]["startsAt"] == "2026-01-05T10:00:00.000Z" and "endsAt" not in due[0]
    out = book.plan([{**_event("resolved", "critical", **ended), "episode_id": "ep-c"}], now + 2)
    assert [a["labels"]["episode_id"] for a in out] == ["ep-c"] and "endsAt" in out[0]
    assert book.restore([lost], now + 3) == 0 and len(book) == 1


def test_an_open_episode_row_is_an_event_an_alert_is_made_of() -> None:
    row = {
        "id": "ep-row",
        "entity": "plant/pump",
        "metric": "temp",
        "kind": "silence",
        "started_at": datetime(2026, 1, 5, 10, 0, tzinfo=UTC),
        "severity": "high",
        "detector": "silence",
        "explanation": "no reading for 2 h",
        "value": None,
        "expected": None,
    }
    event = as_event(row)
    assert check_event(event) is None
    alert = to_alert(event, 1_767_610_000.0)
    assert alert["labels"]["episode_id"] == "ep-row" and alert["labels"]["kind"] == "silence"
    assert alert["startsAt"] == "2026-01-05T10:00:00.000Z" and "value" not in alert["annotations"]


async def test_a_row_no_alert_can_be_made_of_is_said_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An error other than the database's ended the restore task silently: it surfaced
    only when the forwarder stopped (review /tmp/s67e)."""
    from connectors.alerting import open_episodes

    async def odd_row(conninfo: str) -> list[dict[str, object]]:
        raise KeyError("started_at")

    monkeypatch.setattr(open_episodes, "read_open_episodes", odd_row)
    told: list[str] = []
    taken = await restore_open_episodes(
        AlertBook(), "postgresql://x@127.0.0.1:1/x", clock=lambda: 0.0, report=told.append
    )
    assert taken is None and told == ["open episodes not fired again: KeyError('started_at')"]


async def test_a_database_never_reached_gives_up_the_restore_and_says_so() -> None:
    told: list[str] = []
    taken = await restore_open_episodes(
        AlertBook(),
        "postgresql://nobody@127.0.0.1:1/none",
        clock=lambda: 0.0,
        report=told.append,
        backoff_s=0.01,
        give_up_after_s=0.05,
    )
    assert taken is None
    assert any("retry in" in line for line in told), told
    assert "going on" in told[-1], told


@pytest.mark.parametrize(
    "cell",
    ["\u0661\u0667\u0660\u0660000000", "\uff11700000000", "1700000000\u00a0", "1_700_000_000"],
)
def test_a_file_time_in_digits_outside_ascii_is_not_a_time(cell: str) -> None:
    """The file connector read Arabic-Indic or fullwidth digits and a no-break space in a
    time cell as a number (``float``), while its value cells refused them."""
    with pytest.raises(ValueError, match="not a time"):
        to_epoch(cell)
    assert to_epoch(" 1700000000 ") == to_epoch("2023-11-14T22:13:20") == 1_700_000_000.0


@pytest.mark.parametrize("template", ["{device.real}", "{device!x}", "{nope}", "{0}", ""])
def test_an_entity_template_that_cannot_make_an_entity_is_refused_at_start(template: str) -> None:
    """``{device.real}`` and ``{device!x}`` were taken and failed at the first message,
    which the broker, never told it was handled, sent again at every restart."""
    with pytest.raises(ValueError, match="entity template"):
        TopicPattern.parse("a/+site/+device/+metric", template)
    good = TopicPattern.parse("a/+site/+device/+metric", "plant/{site}-{device}")
    assert good.entity({"site": "s", "device": "d", "metric": "m"}) == "plant/s-d"


def test_the_bridge_refuses_qos_2_before_any_connection() -> None:
    """With QoS 2 the MQTT client sends PUBREC on receipt, before Kafka has the reading: a
    reconnect (a kill -9, or Kafka away, which closes the session on purpose) lost what
    was in between, and the next session never completed the PUBRELs the broker sent
    again, which filled its in-flight window: nothing more was delivered (308 of 2,000
    messages reached Kafka across a 30 s Kafka restart, the bridge silent)."""
    import asyncio

    from connectors.ingest.mqtt_bridge import run_mqtt_bridge
    from stream_app.settings import Settings

    # nothing listens on port 1: a refusal cannot be a connection error
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", mqtt_port=1)
    pattern = TopicPattern.parse("sites/+site/+device/+metric")
    with pytest.raises(ValueError, match="QoS 0 or 1"):
        asyncio.run(asyncio.wait_for(run_mqtt_bridge(settings, pattern, qos=2), 10))


def test_an_mqtt_payload_over_the_message_limit_is_too_large() -> None:
    """The API (413) and the workers refuse a reading over ``TSGUARD_MAX_MESSAGE_BYTES``;
    the bridge parsed a 50 MB payload whole and produced it as a reading."""
    from stream_app.wire import ReadingDecoder

    pattern = TopicPattern.parse("sites/+site/+device/+metric")
    payload = b'{"value": 1, "pad": "' + b"x" * 2000 + b'"}'
    result = payload_to_reading(
        "sites/s/d/temp", payload, pattern, 1.7e9, ReadingDecoder(max_bytes=1024)
    )
    assert isinstance(result, Rejection) and result.reason == "too_large", result


def test_a_restored_episode_pages_once_when_the_forwarder_reads_its_older_events_after() -> None:
    """The database is ahead of the forwarder's committed offset (a backlog, or events a
    worker publishes again since its last checkpoint): an episode restored critical, then
    its older high ``updated`` read, was resolved as critical and fired high, and then
    fired critical again when its critical event came: a second page for one incident."""
    book, now = AlertBook(resend_every_s=60), 1_767_610_000.0
    row = _event("updated", "critical", ts="2026-01-05T10:10:00Z")
    assert book.restore([row], now) == 1
    assert [a["labels"]["severity"] for a in book.due(now)] == ["critical"]  # paged
    older = [
        _event("opened", "high", ts="2026-01-05T10:00:00Z"),
        _event("updated", "high", ts="2026-01-05T10:05:00Z"),
    ]
    assert book.plan(older, now + 1) == []  # nothing older than what fired is posted
    again = book.plan([_event("updated", "critical", ts="2026-01-05T10:10:00Z")], now + 2)
    assert [("endsAt" in a, a["labels"]["severity"]) for a in again] == [(False, "critical")]
    newer = book.plan([_event("updated", "critical", ts="2026-01-05T10:15:00Z")], now + 3)
    assert [a["labels"]["severity"] for a in newer] == ["critical"]
    out = book.plan([_event("resolved", "critical", ended_at="2026-01-05T10:20:00Z")], now + 4)
    assert [("endsAt" in a, a["labels"]["severity"]) for a in out] == [(True, "critical")]
    assert len(book) == 0


def test_an_episode_told_again_from_an_older_event_does_not_page_twice() -> None:
    """A worker taking over partitions publishes again the events sent since their last
    checkpoint: a repeated ``updated`` at high after the critical one resolved the
    critical alert, and the repeated critical one fired it again."""
    book, now = AlertBook(resend_every_s=60), 1_767_610_000.0
    first = [
        _event("opened", "high", ts="2026-01-05T10:00:00Z"),
        _event("updated", "critical", ts="2026-01-05T10:05:00Z"),
    ]
    assert [a["labels"]["severity"] for a in book.plan(first, now) if "endsAt" not in a] == [
        "high",
        "critical",
    ]
    repeated = book.plan(first, now + 1)
    assert [("endsAt" in a, a["labels"]["severity"]) for a in repeated] == [(False, "critical")]
