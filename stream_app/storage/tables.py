"""The tables' columns, defined once for the sink that writes them and the API that reads them.

>>> ANOMALY_COLUMNS[: len(EPISODE_COLUMNS)] == EPISODE_COLUMNS
True
>>> OBSERVATION_COLUMNS[:3]
('entity', 'metric', 'ts')
"""

from __future__ import annotations

# observations: every scored point, in the order the sink copies them, with their types
OBSERVATIONS: tuple[tuple[str, str], ...] = (
    ("entity", "text"),
    ("metric", "text"),
    ("ts", "timestamptz"),
    ("value", "float8"),
    ("expected", "float8"),
    ("lower", "float8"),
    ("upper", "float8"),
    ("score", "float8"),
    ("is_anomaly", "bool"),
    ("status", "text"),
    ("detector", "text"),
)
OBSERVATION_COLUMNS = tuple(name for name, _ in OBSERVATIONS)
OBSERVATION_TYPES = tuple(kind for _, kind in OBSERVATIONS)

# anomalies: the columns an episode event writes (the sink's upsert) ...
EPISODE_COLUMNS = (
    "id",
    "entity",
    "metric",
    "kind",
    "status",
    "started_at",
    "ended_at",
    "last_ts",
    "value",
    "expected",
    "lower",
    "upper",
    "score",
    "peak_score",
    "severity",
    "direction",
    "detector",
    "explanation",
    "updated_at",
)
# ... and the whole row the API serves: those plus what operators add
ANOMALY_COLUMNS = (
    *EPISODE_COLUMNS,
    "acknowledged_at",
    "acknowledged_by",
    "ack_comment",
    "label",
    "label_comment",
    "labelled_by",
    "labelled_at",
)
