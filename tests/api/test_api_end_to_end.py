"""End to end: readings in through the API, scored by a real worker, episodes out.

A real ``tsguard worker`` subprocess consumes a private pipeline (topics,
consumer group, schema; see tests/integration/pipeline/harness.py) and the
real app runs in-process on the same topics and schema. Readings go in as
NDJSON and as a JSON array; an injected spike must come back as one episode
through the list and both exports; an operator acknowledges it and labels it
a false positive; the database, the feedback topic and the worker's feedback
counter must all show it, and the worker closing the episode later must not
erase the operator's ack or label.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from pydantic import SecretStr

from stream_app.api.app import create_app
from stream_app.settings import Settings
from tests.api.conftest import Tokens, api_settings, auth, wait_until_ready
from tests.integration.conftest import (  # noqa: F401  (fixtures used by name)
    FreshSchema,
    fresh_schema,
    kafka_bootstrap,
    settings,
)
from tests.integration.pipeline.harness import Pipeline, WorkerProcess, make_pipeline

pytestmark = pytest.mark.integration
T = TypeVar("T")

STEP_S = 60.0
POINTS = 400  # the default policy scores the first 30 as warm-up
SPIKE_AT = (300, 301)  # +25 on a series whose noise is 0.3: unmistakable
SPLIT = 302  # first post ends just after the spike; the rest resolves the episode


@pytest.fixture
def e2e_pipeline(
    settings: Settings,  # noqa: F811
    kafka_bootstrap: str,  # noqa: F811
    fresh_schema: FreshSchema,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Pipeline]:
    """Private topics (2 partitions: the feedback must find the readings' owner) and schema."""
    pipe = make_pipeline(settings, fresh_schema.conninfo, tmp_path, partitions=2)
    pipe.env["TSGUARD_WORKER_SESSION_TIMEOUT_S"] = "6"
    try:
        yield pipe
    finally:
        for worker in pipe.workers:
            print(f"--- {worker.name} log tail ---\n{worker.log_tail(60)}")
        pipe.close()


def readings(entity: str, start_ts: float) -> list[dict[str, Any]]:
    """A daily-ish cycle with small noise on two metrics; a spike on ``temperature`` only."""
    rng = random.Random(11)
    out = []
    for i in range(POINTS):
        temperature = 20 + 2 * math.sin(2 * math.pi * i / 90) + rng.gauss(0, 0.3)
        if i in SPIKE_AT:
            temperature += 25
        pressure = 101.3 + 0.5 * math.cos(2 * math.pi * i / 90) + rng.gauss(0, 0.05)
        out.append(
            {
                "entity": entity,
                "ts": start_ts + i * STEP_S,
                "metrics": {"temperature": round(temperature, 3), "pressure": round(pressure, 3)},
                "source": "e2e",
            }
        )
    return out


async def poll(
    probe: Callable[[], Awaitable[T | None]], *, within_s: float, what: str, every: float = 0.25
) -> T:
    """Await ``probe`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + within_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {within_s:.0f}s waiting for {what} (last: {last!r})")


def labelled_sample(worker: WorkerProcess, name: str, **labels: str) -> float:
    """One labelled sample of the worker's /metrics (0 when absent)."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    for line in worker.metrics_text().splitlines():
        if not line.startswith(name + "{"):
            continue
        label_text, value = line[len(name) + 1 :].rsplit("} ", 1)
        if set(label_text.split(",")) == wanted:
            return float(value)
    return 0.0


def api_for(pipe: Pipeline, dev_key_file: Path) -> Settings:
    """The API's settings: the pipeline's topics and schema, the test issuer's keys."""
    ps = pipe.settings
    return api_settings(
        dev_key_file,
        pg_dsn=SecretStr(ps.pg_dsn.get_secret_value()),
        kafka_bootstrap_servers=ps.kafka_bootstrap_servers,
        topic_readings=ps.topic_readings,
        topic_anomalies=ps.topic_anomalies,
        topic_deadletter=ps.topic_deadletter,
        topic_feedback=ps.topic_feedback,
        topic_control=ps.topic_control,
        topic_partitions=ps.topic_partitions,
    )


async def test_posted_spike_becomes_an_episode_that_is_acked_and_labelled(
    e2e_pipeline: Pipeline, dev_key_file: Path, tokens: Tokens
) -> None:
    pipe = e2e_pipeline
    worker = pipe.start_worker("w1")
    entity = f"e2e-{uuid.uuid4().hex[:8]}/pump-1"
    data = readings(entity, start_ts=time.time() - POINTS * STEP_S - 3600)
    spike_ts = data[SPIKE_AT[0]]["ts"]
    ingest = auth(tokens.role("ingest", sub="loader"))
    viewer = auth(tokens.role("viewer", sub="vera"))
    operator = auth(tokens.role("operator", sub="olivia"))

    app = create_app(api_for(pipe, dev_key_file))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api.test") as client,
    ):
        await wait_until_ready(app)
        await asyncio.to_thread(worker.wait_ready)  # it has migrated the schema by then

        # Warm-up and spike as NDJSON; one bad line is rejected with a pointer, not fatal.
        ndjson = b"".join(orjson.dumps(r) + b"\n" for r in data[:SPLIT])
        ndjson += orjson.dumps({"entity": entity, "ts": "yesterday", "metrics": {"t": 1}}) + b"\n"
        r = await client.post(
            "/v1/readings",
            content=ndjson,
            headers={**ingest, "Content-Type": "application/x-ndjson"},
        )
        assert r.status_code == 202, r.text
        assert (r.json()["accepted"], r.json()["rejected"]) == (SPLIT, 1), r.json()
        assert r.json()["errors"][0]["index"] == SPLIT and r.json()["errors"][0]["field"] == "ts"

        async def listed() -> list[dict[str, Any]]:
            r = await client.get("/v1/anomalies", params={"entity_prefix": entity}, headers=viewer)
            assert r.status_code == 200, r.text
            items: list[dict[str, Any]] = r.json()["items"]
            return items

        items = await poll(listed, within_s=20, what="the spike's episode in GET /v1/anomalies")
        assert len(items) == 1, items
        episode = items[0]
        episode_id = episode["id"]
        assert (episode["entity"], episode["metric"]) == (entity, "temperature")
        assert (episode["kind"], episode["direction"], episode["status"]) == ("value", "up", "open")
        assert abs(_epoch(episode["started_at"]) - spike_ts) < 1e-3, (episode, spike_ts)
        assert episode["acknowledged_by"] is None and episode["label"] is None

        # Both exports carry it.
        r = await client.get(
            "/v1/anomalies/export",
            params={"format": "ndjson", "entity_prefix": entity},
            headers=viewer,
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/x-ndjson")
        exported = [orjson.loads(line) for line in r.content.splitlines() if line.strip()]
        assert [(e["id"], e["metric"], e["severity"]) for e in exported] == [
            (episode_id, "temperature", episode["severity"])
        ]
        r = await client.get(
            "/v1/anomalies/export",
            params={"format": "csv", "entity_prefix": entity},
            headers=viewer,
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [(row["id"], row["entity"], row["status"]) for row in rows] == [
            (episode_id, entity, "open")
        ], r.text

        # An operator acknowledges it and calls it a false positive.
        r = await client.post(
            f"/v1/anomalies/{episode_id}/ack", json={"comment": "looking"}, headers=operator
        )
        assert r.status_code == 200, r.text
        assert (r.json()["acknowledged_by"], r.json()["ack_comment"]) == ("olivia", "looking")
        r = await client.post(
            f"/v1/anomalies/{episode_id}/label",
            json={"label": "false_positive", "comment": "sensor was being cleaned"},
            headers=operator,
        )
        assert r.status_code == 200, r.text
        assert (r.json()["label"], r.json()["labelled_by"]) == ("false_positive", "olivia")

        def stored() -> list[tuple[Any, ...]]:
            return pipe.sql(
                "SELECT acknowledged_by, ack_comment, acknowledged_at IS NOT NULL, label,"
                " label_comment, labelled_by, labelled_at IS NOT NULL FROM anomalies WHERE id = %s",
                (episode_id,),
            )

        operator_fields = ("olivia", "looking", True, "false_positive",
                           "sensor was being cleaned", "olivia", True)  # fmt: skip
        assert stored() == [operator_fields]

        feedback = await asyncio.to_thread(
            pipe.consume, pipe.settings.topic_feedback, min_count=1, timeout=10
        )
        assert [
            (f["episode_id"], f["entity"], f["metric"], f["label"], f["by"]) for f in feedback
        ] == [(episode_id, entity, "temperature", "false_positive", "olivia")], feedback

        await poll(
            lambda: asyncio.to_thread(
                labelled_sample, worker, "tsguard_feedback_total", label="false_positive"
            ),
            within_s=15,
            what='tsguard_feedback_total{label="false_positive"} on the worker',
        )
        assert labelled_sample(worker, "tsguard_feedback_total", label="false_positive") == 1.0
        assert labelled_sample(worker, "tsguard_feedback_total", label="true_positive") == 0.0

        # The rest as a JSON array: the worker resolves the episode, keeping the operator's fields.
        r = await client.post("/v1/readings", json=data[SPLIT:], headers=ingest)
        assert r.status_code == 202, r.text
        assert (r.json()["accepted"], r.json()["rejected"]) == (POINTS - SPLIT, 0)

        async def resolved() -> dict[str, Any] | None:
            r = await client.get(f"/v1/anomalies/{episode_id}", headers=viewer)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body if body["status"] == "resolved" else None

        final = await poll(resolved, within_s=20, what="the episode resolved by the worker")
        assert (final["acknowledged_by"], final["label"], final["labelled_by"]) == (
            "olivia", "false_positive", "olivia"
        )  # fmt: skip
        assert _epoch(final["ended_at"]) >= spike_ts
        assert stored() == [operator_fields]
        every_point = 2 * POINTS  # two metrics per reading

        async def all_scored() -> bool:
            n = await asyncio.to_thread(pipe.count, "SELECT count(*) FROM observations")
            return n >= every_point

        await poll(all_scored, within_s=10, what=f"{every_point} observations")
        assert pipe.count("SELECT count(*) FROM observations") == every_point
        assert pipe.count("SELECT count(*) FROM anomalies") == 1  # nothing on pressure
        assert worker.alive()


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
