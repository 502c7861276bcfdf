-- Raw PostgreSQL baseline for the Hubplane state hub's journal: the hub's own `events` table
-- (copied from migrations/state-hub/V1__foundation.sql: same columns, checks and indexes), with
-- a sequence as the default for seq (the hub assigns seq itself) and without the foreign keys
-- (the baseline has no parent tables; the referencing columns are NULL in every row anyway).
CREATE SEQUENCE events_seq;

CREATE TABLE events (
    seq           bigint PRIMARY KEY DEFAULT nextval('events_seq') CHECK (seq > 0),
    id            uuid NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    event_type    text NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_]{0,62}\.[a-z][a-z0-9_]{0,62}$'),
    summary       text NOT NULL,
    author        text NOT NULL,
    workstream_id uuid,
    workplan_id   uuid,
    task_id       uuid,
    decision_id   uuid,
    detail        jsonb NOT NULL DEFAULT '{}',
    prev_hash     bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash          bytea NOT NULL UNIQUE CHECK (length(hash) = 32)
);
CREATE INDEX events_by_type ON events (event_type, seq);
CREATE INDEX events_by_author ON events (author, seq);
CREATE INDEX events_by_workstream ON events (workstream_id, seq) WHERE workstream_id IS NOT NULL;
CREATE INDEX events_by_workplan ON events (workplan_id, seq) WHERE workplan_id IS NOT NULL;
CREATE INDEX events_by_task ON events (task_id, seq) WHERE task_id IS NOT NULL;
CREATE INDEX events_by_decision ON events (decision_id, seq) WHERE decision_id IS NOT NULL;
CREATE INDEX events_by_time ON events USING brin (created_at);

ALTER SEQUENCE events_seq OWNED BY events.seq;

-- Append-only, enforced by the database itself.
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only: % on events is forbidden', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

