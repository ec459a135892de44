-- Each source's clock as the workers see it, one row per partition its readings come
-- through: when a worker last saw it move (seen_at, the worker's wall clock), its usual
-- step, and the five-minute slots of the UTC day and the weekdays it has reported in
-- (ORed over every write). The alert "Source stopped sending" reads it: a whole source
-- (a fleet, a feed) that went quiet moves no clock, so the worker judges no silence
-- (it runs on event time), and only the wall clock can tell; but a market closed at
-- night or at the weekend, or a fleet quiet at hours it is always quiet, is no outage.
CREATE TABLE IF NOT EXISTS sources (
    source      text             NOT NULL,
    partition   integer          NOT NULL,
    first_seen  timestamptz      NOT NULL,
    seen_at     timestamptz      NOT NULL,
    watermark   timestamptz      NOT NULL,
    step_s      double precision,
    live_tod    bit(288)         NOT NULL,
    live_dow    integer          NOT NULL,
    PRIMARY KEY (source, partition)
);

-- Whether a source that reported in the slots live_tod on the weekdays live_dow, for
-- `history` (its first to its last sight), usually reports at `t`: as the worker's
-- silence judges each series (SeriesCleaner._expected_time), a source seen for less than
-- a day has no pattern yet (any time is usual), and a weekday it was never seen on is
-- usual only for a source younger than a week that reported around the clock.
CREATE OR REPLACE FUNCTION tsguard_usual_at(live_tod bit, live_dow integer, history interval,
                                            t timestamptz)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT history < interval '1 day'
        OR (get_bit(live_tod, (floor(extract(epoch FROM t) / 300)::bigint % 288)::int) = 1
            AND ((live_dow >> ((floor(extract(epoch FROM t) / 86400)::bigint + 3) % 7)::int) & 1 = 1
                 OR (bit_count(live_tod) = 288 AND history < interval '7 days')))
$$;
