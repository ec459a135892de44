-- Retention also forgets the sources (migration 009) no worker has seen move for the
-- time kept, and at least 8 days (see 010_sources_retention.pg.sql).
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
    DELETE FROM sources WHERE seen_at < now() - greatest(keep, interval '8 days');
    RETURN removed;
END;
$$;
