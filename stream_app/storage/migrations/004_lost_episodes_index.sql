-- Episodes the worker resolved because their model was lost (ended after their last
-- event: no model's resolve leaves that; see _RESOLVE_ORPHANS in postgres.py). A load of
-- an entity looks for the ones it resolved before, to send their events again after a
-- crash; without this index that looked through every resolved episode of the entities
-- loaded (a sequential scan of the table after a restart).
CREATE INDEX IF NOT EXISTS anomalies_lost_idx ON anomalies (entity)
    WHERE status = 'resolved' AND ended_at > last_ts;
