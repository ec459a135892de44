-- TimescaleDB: hypertables, compression, retention and continuous aggregates.
-- The rollups keep the same names and columns as the plain-PostgreSQL views.
SELECT create_hypertable('observations', by_range('ts', INTERVAL '1 day'), migrate_data => true,
                         if_not_exists => true);

ALTER TABLE observations SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'entity, metric',
    timescaledb.compress_orderby = 'ts DESC'
);
SELECT add_compression_policy('observations', INTERVAL '7 days', if_not_exists => true);

CREATE MATERIALIZED VIEW IF NOT EXISTS observations_5m
WITH (timescaledb.continuous) AS
SELECT time_bucket(INTERVAL '5 minutes', ts) AS bucket,
       entity, metric,
       count(*)                        AS n,
       avg(value)                      AS avg_value,
       min(value)                      AS min_value,
       max(value)                      AS max_value,
       avg(expected)                   AS avg_expected,
       min(lower)                      AS min_lower,
       max(upper)                      AS max_upper,
       max(score)                      AS max_score,
       count(*) FILTER (WHERE is_anomaly) AS anomalous_points
FROM observations
GROUP BY 1, entity, metric
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS observations_1h
WITH (timescaledb.continuous) AS
SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket,
       entity, metric,
       count(*)                        AS n,
       avg(value)                      AS avg_value,
       min(value)                      AS min_value,
       max(value)                      AS max_value,
       avg(expected)                   AS avg_expected,
       min(lower)                      AS min_lower,
       max(upper)                      AS max_upper,
       max(score)                      AS max_score,
       count(*) FILTER (WHERE is_anomaly) AS anomalous_points
FROM observations
GROUP BY 1, entity, metric
WITH NO DATA;

SELECT add_continuous_aggregate_policy('observations_5m', start_offset => INTERVAL '1 day',
       end_offset => INTERVAL '5 minutes', schedule_interval => INTERVAL '5 minutes', if_not_exists => true);
SELECT add_continuous_aggregate_policy('observations_1h', start_offset => INTERVAL '7 days',
       end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour', if_not_exists => true);

-- Retention by policy; the function keeps the same signature as on plain PostgreSQL
-- so the sink can call it on both (here it only prunes resolved episodes).
SELECT add_retention_policy('observations', INTERVAL '30 days', if_not_exists => true);

CREATE OR REPLACE FUNCTION tsguard_apply_retention(keep interval)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
BEGIN
    DELETE FROM anomalies WHERE status = 'resolved' AND ended_at < now() - keep;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END;
$$;
