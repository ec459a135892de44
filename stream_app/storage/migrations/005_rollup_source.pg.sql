-- Whether the rollups are stored (TimescaleDB's continuous aggregates) or computed
-- from observations at each read (the views of plain PostgreSQL). The dashboards read
-- the rollups only where they are stored: a filter on a view's bucket cannot reach the
-- index on observations.ts, so every read of a view aggregated the whole table (a
-- 7-day panel over 3 million points took 4.4-6.3 s through the view and 0.66 s from
-- the raw points). IMMUTABLE, so the planner drops the branches it rules out.
CREATE OR REPLACE FUNCTION tsguard_rollups_stored() RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT false';
