-- Plain PostgreSQL: rollups are views over observations (TimescaleDB gets
-- continuous aggregates with the same names and columns instead).
CREATE OR REPLACE VIEW observations_5m AS
SELECT to_timestamp(floor(extract(epoch FROM ts) / 300) * 300) AS bucket,
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
GROUP BY 1, entity, metric;

CREATE OR REPLACE VIEW observations_1h AS
SELECT to_timestamp(floor(extract(epoch FROM ts) / 3600) * 3600) AS bucket,
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
GROUP BY 1, entity, metric;

-- Retention on plain PostgreSQL: the sink calls this periodically (the delete job).
CREATE OR REPLACE FUNCTION tsguard_apply_retention(keep interval)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
BEGIN
    DELETE FROM observations WHERE ts < now() - keep;
    GET DIAGNOSTICS removed = ROW_COUNT;
    DELETE FROM anomalies WHERE status = 'resolved' AND ended_at < now() - keep;
    RETURN removed;
END;
$$;
