-- Identity tables every hub carries: people (created just in time at login), their server-side
-- sessions, and login flows in progress. Owned by hub-core; history in hub_core_schema_history.

-- A person, keyed on the identity provider's (issuer, subject), never on a user name: a renamed
-- or re-created directory account with the same name is a different person.
CREATE TABLE users (
    id               uuid PRIMARY KEY,
    issuer           text NOT NULL CHECK (length(issuer) BETWEEN 1 AND 512),
    subject          text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    username         text NOT NULL CHECK (username ~ '^[a-z0-9][a-z0-9._@-]{0,127}$'),
    display_name     text CHECK (length(display_name) <= 200),
    email            text CHECK (length(email) <= 320),
    groups           text[] NOT NULL DEFAULT '{}',
    roles            text[] NOT NULL DEFAULT '{}'
                     CHECK (roles <@ ARRAY['admin', 'member', 'viewer']::text[]),
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_login_at    timestamptz,
    groups_synced_at timestamptz,
    UNIQUE (issuer, subject)
);
CREATE INDEX users_username ON users (username);

-- Only a hash of the session secret is kept: a copy of this table does not log anyone in.
CREATE TABLE sessions (
    id                  uuid PRIMARY KEY,
    secret_hash         bytea NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    method              text NOT NULL CHECK (method IN ('oidc', 'break_glass')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz NOT NULL DEFAULT now(),
    idle_expires_at     timestamptz NOT NULL,
    absolute_expires_at timestamptz NOT NULL,
    revoked_at          timestamptz,
    revoked_reason      text,
    client_ip           text,
    user_agent          text CHECK (length(user_agent) <= 300),
    CHECK (idle_expires_at <= absolute_expires_at)
);
CREATE INDEX sessions_user_active ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_expiry ON sessions (absolute_expires_at);

-- A login between the redirect to the provider and the callback. The row is keyed by the hash of
-- a cookie set in the browser that started it (so a callback cannot be finished elsewhere), and
-- deleted when used, so a replayed callback finds nothing.
CREATE TABLE login_flows (
    flow_hash  bytea PRIMARY KEY CHECK (length(flow_hash) = 32),
    pending    jsonb NOT NULL,
    next_path  text NOT NULL CHECK (next_path LIKE '/%' AND length(next_path) <= 2000),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_flows_age ON login_flows (created_at);
