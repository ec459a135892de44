-- Retention also forgets the series whose last point it deleted: `series` grew for
-- ever where a producer invents entity ids (1,000 entities last seen 60 days ago kept
-- their rows after their points went), and the API's series list and Grafana's entity
-- variable offered series without a point. A series that reports again is listed again
-- at the sink's next write of its span. One with an episode still open stays listed
-- while its alert fires.
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
    RETURN removed;
END;
$$;
