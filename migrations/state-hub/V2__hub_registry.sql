-- The hub registry: hub kinds, hub instances with heartbeat health, their capability manifests
-- (draft → active → retired), and the type registries an active manifest fills.

CREATE TABLE hub_kinds (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,63}$'),
    description text NOT NULL DEFAULT '',
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hubs (
    name              text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,63}$'),
    kind              text NOT NULL REFERENCES hub_kinds (name),
    base_url          text NOT NULL,
    heartbeat_seconds integer NOT NULL CHECK (heartbeat_seconds BETWEEN 10 AND 3600),
    -- What the hub itself last said; the health served is judged from it and last_seen at read
    -- time, so no background job has to downgrade silent hubs.
    reported_status   text NOT NULL DEFAULT 'unknown'
                      CHECK (reported_status IN ('passing', 'warning', 'critical', 'unknown')),
    detail            text,
    last_seen         timestamptz,
    registered_by     text NOT NULL,
    registered_at     timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    -- Versions the registration (kind, URL, interval), not heartbeats: a hub heartbeating every
    -- ten seconds must not make every admin's If-Match stale.
    version           bigint NOT NULL DEFAULT 1,
    CHECK ((reported_status = 'unknown') = (last_seen IS NULL))
);

CREATE TABLE manifests (
    id           uuid PRIMARY KEY,
    hub          text NOT NULL REFERENCES hubs (name),
    version      text NOT NULL,
    status       text NOT NULL CHECK (status IN ('draft', 'active', 'retired')),
    document     jsonb NOT NULL,
    submitted_by text NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    activated_by text,
    activated_at timestamptz,
    retired_by   text,
    retired_at   timestamptz,
    revision     bigint NOT NULL DEFAULT 1,
    -- One manifest per hub and version: a changed document needs a new version once it was in force.
    UNIQUE (hub, version),
    CHECK ((status = 'retired') = (retired_at IS NOT NULL)),
    CHECK (status = 'draft' OR status = 'retired' OR activated_at IS NOT NULL)
);
-- At most one manifest in force per hub.
CREATE UNIQUE INDEX manifests_one_active ON manifests (hub) WHERE status = 'active';
CREATE INDEX manifests_by_hub ON manifests (hub, created_at);

-- Names declared by active manifests. A name belongs to one hub across all hubs, so two hubs
-- cannot both claim an event type; the primary key is the last line of that defence.
CREATE TABLE registered_types (
    registry      text NOT NULL CHECK (registry IN ('event', 'widget', 'annotation_category', 'policy_scope')),
    name          text NOT NULL,
    hub           text NOT NULL REFERENCES hubs (name),
    manifest_id   uuid NOT NULL REFERENCES manifests (id),
    description   text NOT NULL DEFAULT '',
    registered_at timestamptz NOT NULL,
    PRIMARY KEY (registry, hub, name)
);
-- Registrations are per hub: every domain hub emits `capability.unreachable`, and two hubs may
-- both have a `deployments` widget. Policy scopes are one namespace (`<hub>:<action>`, and the
-- manifest validator already ties the prefix to the hub); the index is the database's backstop.
CREATE UNIQUE INDEX registered_types_global ON registered_types (registry, name)
    WHERE registry = 'policy_scope';
CREATE INDEX registered_types_by_manifest ON registered_types (manifest_id);
