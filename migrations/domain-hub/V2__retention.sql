-- Indexes for the retention purge (hub_core::retention): it picks old observations by
-- fetched_at and delivered outbox rows by delivered_at, in batches, every purge interval.
CREATE INDEX observations_age ON observations (fetched_at);
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
