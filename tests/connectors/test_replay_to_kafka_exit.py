"""``tsguard replay-to-kafka`` ends as ``tsguard replay`` does on the same file.

A row that cannot be read at all (not CSV, a wrong field count, a time that is no time)
makes ``replay`` refuse the file, exit 2; ``replay-to-kafka`` sends the other rows,
dead-letters that one, and ends with exit 2 too. A value the stream refuses (not a
number, infinite) is a status to ``replay`` (exit 0) and a dead letter to
``replay-to-kafka`` (exit 0). replay-to-kafka exited 1 when nothing was sent (every
row malformed, or a file of a header only) and 0 when a single row was good, whatever
the others were.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream_app.settings import Settings
from tests.cli import tsguard
from tests.connectors.helpers import consume

pytestmark = pytest.mark.integration

GOOD = ["2026-01-05T00:00:00Z,1.5", "2026-01-05T00:01:00Z,1.6"]
FILES = {
    # name: (rows after the header, exit code of both commands, rows dead-lettered)
    "every_row_unreadable": (["not-a-time,1", "2026-01-05T00:02:00Z,1,2"], 2, 2),
    "one_row_unreadable": ([*GOOD, "yesterday,1.7"], 2, 1),
    "every_value_refused": (["2026-01-05T00:00:00Z,abc", "2026-01-05T00:01:00Z,inf"], 0, 2),
    "header_only": ([], 0, 0),
    "good": (GOOD, 0, 0),
}


@pytest.mark.parametrize("name", list(FILES))
async def test_replay_to_kafka_ends_as_replay_does(
    name: str, settings: Settings, fresh_topic: Any, tmp_path: Path
) -> None:
    rows, code, dead = FILES[name]
    source = tmp_path / f"{name}.csv"
    source.write_text("\n".join(["timestamp,value", *rows]) + "\n")
    replayed = tsguard("replay", str(source), "-o", str(tmp_path / "out.csv"))
    assert replayed.returncode == code, replayed.stderr

    topics = {"readings": await fresh_topic("readings"), "deadletter": await fresh_topic("dl")}
    env = {f"TSGUARD_TOPIC_{k.upper()}": v for k, v in topics.items()}
    env["TSGUARD_KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    sent = tsguard("replay-to-kafka", str(source), **env)
    assert sent.returncode == code, sent.stderr
    summary = [line for line in sent.stderr.splitlines() if line.startswith("readings: ")]
    assert summary and f"; {dead} malformed rows dead-lettered" in summary[0], sent.stderr
    if code == 2:
        assert sent.stderr.splitlines()[-1] == (
            f"tsguard: {dead} row(s) could not be read (see above): dead-lettered, the rest"
            " replayed; exit 2, as `tsguard replay` refuses such a file"
        )
    s = settings.model_copy(update={f"topic_{k}": v for k, v in topics.items()})
    letters = await consume(s, s.topic_deadletter, dead, deadline_s=5 if dead == 0 else 20)
    assert len(letters) == dead
    readings = await consume(s, s.topic_readings, len(rows) - dead, deadline_s=5)
    assert len(readings) == len(rows) - dead
