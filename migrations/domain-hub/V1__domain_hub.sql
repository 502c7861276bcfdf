-- The domain hub's own tables. hub-core's identity tables (users, sessions) come first from
-- migrations/hub-core; each domain hub instance has its own database.

-- API tokens, the same table the state hub has: hub-core's TokenAuthenticator reads it in every
-- hub's database, and hub-core's migrations do not carry it. Keep it identical to
-- migrations/state-hub/V1__foundation.sql.
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

-- What the pollers saw: one row per distinct answer of a capability path. A poll whose body is
-- byte-identical to the newest row stores nothing (poll_state says when it was last seen).
CREATE TABLE observations (
    id          bigserial PRIMARY KEY,
    capability  text NOT NULL,
    path        text NOT NULL,
    fetched_at  timestamptz NOT NULL,
    status      integer NOT NULL,
    body        jsonb NOT NULL,
    sha256      text NOT NULL CHECK (length(sha256) = 64)
);
CREATE INDEX observations_newest ON observations (capability, path, fetched_at DESC, id DESC);

-- One row per polled (capability, path): the job row replicas claim (next_due_at) and what the
-- widgets need to say how fresh their data is.
CREATE TABLE poll_state (
    capability        text NOT NULL,
    path              text NOT NULL,
    poll_seconds      integer NOT NULL CHECK (poll_seconds > 0),
    next_due_at       timestamptz NOT NULL DEFAULT now(),
    last_attempt_at   timestamptz,
    last_success_at   timestamptz,
    last_sha256       text,
    last_error        text,
    unreachable_since timestamptz,
    PRIMARY KEY (capability, path)
);

-- Notes people attach to widgets and items, in the manifest's categories.
CREATE TABLE annotations (
    id          uuid PRIMARY KEY,
    category    text NOT NULL,
    target      text NOT NULL,
    text        text NOT NULL,
    author      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX annotations_target ON annotations (target, created_at DESC);
CREATE INDEX annotations_newest ON annotations (created_at DESC, id DESC);

-- Events on their way to the state hub's journal, written in the transaction of the change they
-- record. `seq` is the delivery order; `kind` 'review' rows first open an escalated decision in
-- the state hub (decision_id, escalated_at record how far that got) and then deliver the event.
CREATE TABLE outbox (
    seq             bigserial PRIMARY KEY,
    id              uuid NOT NULL UNIQUE,
    kind            text NOT NULL DEFAULT 'event' CHECK (kind IN ('event', 'review')),
    event           jsonb NOT NULL,
    review          jsonb,
    idempotency_key text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    rejected_at     timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    decision_id     uuid,
    escalated_at    timestamptz,
    CHECK (kind = 'event' OR review IS NOT NULL)
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE delivered_at IS NULL AND rejected_at IS NULL;

-- Every action a caller asked for that passed the scope and decision checks. `request_key`
-- (the caller's Idempotency-Key, or the backing decision) makes a retried request the same run;
-- the run id is the Idempotency-Key the cluster sees.
CREATE TABLE action_runs (
    id            uuid PRIMARY KEY,
    action        text NOT NULL,
    request_key   text NOT NULL,
    params        jsonb NOT NULL,
    decision_id   uuid,
    caller        text NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'executed', 'failed')),
    response_status integer,
    response      jsonb,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    UNIQUE (action, request_key)
);
CREATE INDEX action_runs_newest ON action_runs (created_at DESC, id DESC);
