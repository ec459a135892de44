-- The rollups answer up to now: from TimescaleDB 2.13 a continuous aggregate reads
-- only what its policy has materialized unless told otherwise, and the policies of
-- migration 002 stop 5 minutes (observations_5m) and an hour (observations_1h) short
-- of now and run that often, so every panel reading a rollup ended 5-10 minutes or
-- 1-2 hours early. Real-time aggregation adds the points after the last refresh,
-- aggregated at each read (a few minutes to two hours of points).
ALTER MATERIALIZED VIEW observations_5m SET (timescaledb.materialized_only = false);
ALTER MATERIALIZED VIEW observations_1h SET (timescaledb.materialized_only = false);
