-- Retention also forgets the series whose last point is older than what is kept (see
-- 006_series_retention.pg.sql). Here the observations go by the 30-day policy of
-- migration 002, so a series is kept at least that long.
CREATE OR REPLACE FUNCTION tsguard_apply_retention(keep interval)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
BEGIN
    DELETE FROM anomalies WHERE status = 'resolved' AND ended_at < now() - keep;
    GET DIAGNOSTICS removed = ROW_COUNT;
    DELETE FROM series s WHERE s.last_ts < now() - greatest(keep, INTERVAL '30 days')
        AND NOT EXISTS (SELECT 1 FROM anomalies a WHERE a.entity = s.entity
                        AND a.metric = s.metric AND a.status = 'open');
    RETURN removed;
END;
$$;
