-- The hours a source reports in forget what it has not done for a while: a fleet moved
-- from a day shift to nights, or a market whose hours changed, paged at its old hours
-- for good (the slots and weekdays of migration 009 were only ever ORed). The slots and
-- weekdays now come in two generations: those seen since live_since (live_tod,
-- live_dow) and those of the generation before (prev_tod, prev_dow). A write 7 days or
-- more after live_since starts a new generation (the current one becomes the one
-- before; after 14 days without a write both go), so a slot or weekday not seen for 7
-- to 14 days is no longer usual: bounded state, and a source seen every week keeps
-- every hour and weekday it reports in. The alert reads the OR of the two.
ALTER TABLE sources
    ADD COLUMN IF NOT EXISTS prev_tod bit(288) NOT NULL DEFAULT repeat('0', 288)::bit(288),
    ADD COLUMN IF NOT EXISTS prev_dow integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS live_since timestamptz NOT NULL DEFAULT now();
