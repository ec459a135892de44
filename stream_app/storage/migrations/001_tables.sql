-- Core tables. Same columns and indexes on plain PostgreSQL and TimescaleDB.
CREATE TABLE IF NOT EXISTS observations (
    entity      text             NOT NULL,
    metric      text             NOT NULL,
    ts          timestamptz      NOT NULL,
    value       double precision,
    expected    double precision,
    lower       double precision,
    upper       double precision,
    score       double precision,
    is_anomaly  boolean          NOT NULL DEFAULT false,
    status      text             NOT NULL DEFAULT 'ok',
    detector    text,
    PRIMARY KEY (entity, metric, ts)
);
CREATE INDEX IF NOT EXISTS observations_ts_idx ON observations (ts DESC);
CREATE INDEX IF NOT EXISTS observations_anomaly_idx ON observations (ts DESC) WHERE is_anomaly;

CREATE TABLE IF NOT EXISTS anomalies (
    id               text             PRIMARY KEY,
    entity           text             NOT NULL,
    metric           text             NOT NULL,
    kind             text             NOT NULL DEFAULT 'value',
    status           text             NOT NULL CHECK (status IN ('open', 'resolved')),
    started_at       timestamptz      NOT NULL,
    ended_at         timestamptz,
    last_ts          timestamptz      NOT NULL,
    value            double precision,
    expected         double precision,
    lower            double precision,
    upper            double precision,
    score            double precision NOT NULL,
    peak_score       double precision NOT NULL,
    severity         text             NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    direction        text             NOT NULL DEFAULT 'none',
    detector         text             NOT NULL,
    explanation      text             NOT NULL DEFAULT '',
    updated_at       timestamptz      NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    ack_comment      text,
    label            text CHECK (label IN ('true_positive', 'false_positive')),
    label_comment    text,
    labelled_by      text,
    labelled_at      timestamptz
);
CREATE INDEX IF NOT EXISTS anomalies_started_idx ON anomalies (started_at DESC);
CREATE INDEX IF NOT EXISTS anomalies_series_idx ON anomalies (entity, metric, started_at DESC);
CREATE INDEX IF NOT EXISTS anomalies_open_idx ON anomalies (status) WHERE status = 'open';
