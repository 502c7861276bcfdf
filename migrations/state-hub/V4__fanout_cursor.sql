-- Journal fan-out to NATS JetStream: per stream, the newest journal seq JetStream has
-- acknowledged. The publisher only moves it forward over a gapless run of acknowledged events,
-- so after a crash it re-publishes at most the unacknowledged tail.
CREATE TABLE fanout_cursor (
    stream     text PRIMARY KEY CHECK (stream ~ '^[A-Za-z0-9_-]{1,255}$'),
    seq        bigint NOT NULL CHECK (seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
