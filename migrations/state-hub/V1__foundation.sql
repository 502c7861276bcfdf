-- State hub foundation: API tokens, the hash-chained journal, idempotency records, decisions,
-- workstreams, workplans and tasks.

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    token_prefix text NOT NULL,
    subject      text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('human', 'service')),
    roles        text[] NOT NULL CHECK (cardinality(roles) > 0),
    scopes       text[] NOT NULL DEFAULT '{}',
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    revoked_by   text,
    last_used_at timestamptz
);
CREATE INDEX api_tokens_active ON api_tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE workstreams (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE,
    title       text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    version     bigint NOT NULL DEFAULT 1
);

CREATE TABLE workplans (
    id             uuid PRIMARY KEY,
    workstream_id  uuid NOT NULL REFERENCES workstreams (id),
    title          text NOT NULL,
    description    text NOT NULL DEFAULT '',
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'finished', 'accepted')),
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_by    text,
    finished_at    timestamptz,
    accepted_by    text,
    accepted_at    timestamptz,
    review_comment text,
    version        bigint NOT NULL DEFAULT 1,
    -- Acceptance is a review by someone else than whoever finished the plan.
    CHECK (accepted_by IS NULL OR accepted_by <> finished_by)
);
CREATE INDEX workplans_by_stream ON workplans (workstream_id, id);

CREATE TABLE tasks (
    id              uuid PRIMARY KEY,
    workplan_id     uuid NOT NULL REFERENCES workplans (id),
    title           text NOT NULL,
    description     text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'todo' CHECK (status IN ('wait', 'todo', 'progress', 'done', 'cancel')),
    needs_human     boolean NOT NULL DEFAULT false,
    blocking_reason text,
    assignee        text,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         bigint NOT NULL DEFAULT 1,
    CHECK (status <> 'wait' OR blocking_reason IS NOT NULL)
);
CREATE INDEX tasks_by_plan ON tasks (workplan_id, id);
CREATE INDEX tasks_by_assignee ON tasks (assignee, id) WHERE assignee IS NOT NULL;

CREATE TABLE decisions (
    id                uuid PRIMARY KEY,
    title             text NOT NULL,
    context           text NOT NULL DEFAULT '',
    options           text[] NOT NULL DEFAULT '{}',
    decision_type     text NOT NULL CHECK (decision_type IN ('pending', 'made')),
    status            text NOT NULL CHECK (status IN ('open', 'escalated', 'resolved', 'superseded')),
    proposed_by       text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    escalated_by      text,
    escalated_at      timestamptz,
    escalation_reason text,
    outcome_choice    text,
    outcome_rationale text,
    decided_by        text,
    decided_at        timestamptz,
    superseded_by     uuid REFERENCES decisions (id),
    supersedes        uuid REFERENCES decisions (id),
    version           bigint NOT NULL DEFAULT 1,
    CHECK ((decision_type = 'made') = (outcome_choice IS NOT NULL)),
    CHECK ((outcome_choice IS NULL) = (decided_by IS NULL) AND (outcome_choice IS NULL) = (decided_at IS NULL)),
    CHECK ((status = 'superseded') = (superseded_by IS NOT NULL)),
    CHECK (status <> 'resolved' OR outcome_choice IS NOT NULL)
);
CREATE INDEX decisions_by_status ON decisions (status, id);

CREATE TABLE decision_tasks (
    decision_id uuid NOT NULL REFERENCES decisions (id),
    task_id     uuid NOT NULL REFERENCES tasks (id),
    linked_by   text NOT NULL,
    linked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (decision_id, task_id)
);
CREATE INDEX decision_tasks_by_task ON decision_tasks (task_id);

-- A decision is never deleted, and its outcome never changes once recorded.
CREATE FUNCTION decisions_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'decisions are never deleted (decision %)', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.outcome_choice IS NOT NULL AND (
        NEW.outcome_choice IS DISTINCT FROM OLD.outcome_choice OR
        NEW.outcome_rationale IS DISTINCT FROM OLD.outcome_rationale OR
        NEW.decided_by IS DISTINCT FROM OLD.decided_by OR
        NEW.decided_at IS DISTINCT FROM OLD.decided_at) THEN
        RAISE EXCEPTION 'the outcome of decision % is immutable', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.proposed_by IS DISTINCT FROM OLD.proposed_by OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'the proposer of decision % is immutable', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER decisions_guard BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION decisions_guard();

-- The journal. seq is assigned by the single writer under an advisory lock, gapless from 1.
CREATE TABLE events (
    seq           bigint PRIMARY KEY CHECK (seq > 0),
    id            uuid NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    event_type    text NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_]{0,62}\.[a-z][a-z0-9_]{0,62}$'),
    summary       text NOT NULL,
    author        text NOT NULL,
    workstream_id uuid REFERENCES workstreams (id),
    workplan_id   uuid REFERENCES workplans (id),
    task_id       uuid REFERENCES tasks (id),
    decision_id   uuid REFERENCES decisions (id),
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

-- Takes the journal's writer lock for this transaction and returns the chain head.
CREATE FUNCTION journal_lock_head(lock_key bigint, OUT head_seq bigint, OUT head_hash bytea)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT e.seq, e.hash INTO head_seq, head_hash FROM events e ORDER BY e.seq DESC LIMIT 1;
    IF head_seq IS NULL THEN
        head_seq := 0;
        head_hash := decode(repeat('00', 32), 'hex');
    END IF;
END;
$$;

-- The writer's fast path: takes the lock and fails unless the chain head is the one the writer
-- expects, so events it sealed in memory are inserted only right after their predecessor.
CREATE FUNCTION journal_lock_expect(lock_key bigint, expected_seq bigint, expected_hash bytea)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT e.seq, e.hash INTO head_seq, head_hash FROM events e ORDER BY e.seq DESC LIMIT 1;
    IF COALESCE(head_seq, 0) <> expected_seq
        OR COALESCE(head_hash, decode(repeat('00', 32), 'hex')) <> expected_hash THEN
        RAISE EXCEPTION 'journal head moved: expected %, found %', expected_seq, COALESCE(head_seq, 0)
            USING ERRCODE = 'serialization_failure';
    END IF;
END;
$$;

-- Idempotency records: same principal + key + body returns the same events.
CREATE TABLE idempotency_keys (
    principal    text NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    event_seqs   bigint[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
