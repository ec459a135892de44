-- Retention also forgets the sources (migration 009) no worker has seen move for the
-- time kept, and at least 8 days: what hours a source reports in is learned over a
-- week, and a market quiet over a long weekend is no new source on Tuesday. A producer
-- that puts a request id in `source` adds a row per reading, gone with its points.
CREATE OR REPLACE FUNCTION tsguard_apply_retention(keep interval)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
BEGIN
    DELETE FROM observations WHERE ts < now() - keep;
    GET DIAGNOSTICS removed = ROW_COUNT;
    DELETE FROM anomalies WHERE status = 'resolved' AND ended_at < now() - keep;
    DELETE FROM series s WHERE s.last_ts < now() - keep
        AND NOT EXISTS (SELECT 1 FROM anomalies a WHERE a.entity = s.entity
                        AND a.metric = s.metric AND a.status = 'open');
    DELETE FROM sources WHERE seen_at < now() - greatest(keep, interval '8 days');
    RETURN removed;
END;
$$;
