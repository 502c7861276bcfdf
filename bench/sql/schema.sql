-- Raw PostgreSQL baseline for the Hubplane state hub's journal.
-- The same table as the hub's `events` journal, plus a sequence as the
-- default for seq (the hub assigns seq itself) and the append-only triggers
-- the hub installs (they do not fire on INSERT or COPY).
CREATE SEQUENCE events_seq;

CREATE TABLE events (
  seq bigint PRIMARY KEY DEFAULT nextval('events_seq'),
  id uuid NOT NULL UNIQUE,
  created_at timestamptz NOT NULL,
  event_type text NOT NULL,
  summary text NOT NULL,
  author text NOT NULL,
  workstream_id uuid, workplan_id uuid, task_id uuid, decision_id uuid,
  detail jsonb NOT NULL DEFAULT '{}',
  prev_hash bytea NOT NULL,
  hash bytea NOT NULL UNIQUE
);
ALTER SEQUENCE events_seq OWNED BY events.seq;
CREATE INDEX ON events (event_type, seq);
CREATE INDEX ON events (created_at);

CREATE FUNCTION events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'events is append-only';
END
$$;
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
