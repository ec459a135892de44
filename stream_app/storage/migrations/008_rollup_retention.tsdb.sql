-- The rollups are kept a bounded time too: migration 002's retention policy drops the
-- raw points' chunks after 30 days, but each continuous aggregate is a hypertable of
-- its own that nothing pruned (100,000 series add 29 million 5-minute rows a day).
-- A quarter of 5-minute buckets and a year of hourly ones: the dashboards read the
-- 5-minute rollup for ranges from about a week, the hourly one from about a month.
SELECT add_retention_policy('observations_5m', INTERVAL '90 days', if_not_exists => true);
SELECT add_retention_policy('observations_1h', INTERVAL '365 days', if_not_exists => true);
