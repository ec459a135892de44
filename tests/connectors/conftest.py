"""Shared helpers of the connector tests; the stack fixtures come from tests/integration."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from tests.integration.conftest import (  # noqa: F401  (fixtures, used by name)
    alertmanager_url,
    fresh_schema,
    fresh_topic,
    kafka_bootstrap,
    mqtt_port,
    pg_conninfo,
    settings,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _validator(name: str) -> Draft202012Validator:
    schema = orjson.loads((SCHEMAS / name).read_bytes())
    return Draft202012Validator(schema, format_checker=FormatChecker())


@pytest.fixture(scope="session")
def reading_schema() -> Draft202012Validator:
    return _validator("reading.schema.json")


@pytest.fixture(scope="session")
def deadletter_schema() -> Draft202012Validator:
    return _validator("deadletter.schema.json")
