-- The list of known series (for the API and Grafana template variables).
CREATE TABLE IF NOT EXISTS series (
    entity      text        NOT NULL,
    metric      text        NOT NULL,
    first_ts    timestamptz NOT NULL,
    last_ts     timestamptz NOT NULL,
    PRIMARY KEY (entity, metric)
);
