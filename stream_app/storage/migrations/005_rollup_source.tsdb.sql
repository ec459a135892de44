-- Whether the rollups are stored (here: continuous aggregates, read by the dashboards
-- from 5-minute intervals up) or computed at each read (plain PostgreSQL's views, which
-- the dashboards do not read). See 005_rollup_source.pg.sql.
CREATE OR REPLACE FUNCTION tsguard_rollups_stored() RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT true';
