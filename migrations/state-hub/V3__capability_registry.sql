-- The capability registry: the interfaces the application domain offers hubs, their request
-- lifecycle, their age-sealed credentials and the state hub's probes of them.

CREATE TABLE capabilities (
    id                  uuid PRIMARY KEY,
    name                text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9-]{0,62}$'),
    owning_service      text NOT NULL,
    base_url            text NOT NULL CHECK (base_url LIKE 'https://%'),
    health_path         text NOT NULL CHECK (health_path LIKE '/%'),
    contract_path       text NOT NULL CHECK (contract_path LIKE '/%'),
    -- The canonical JSON text the sha256 is computed over, served back byte for byte.
    contract            text NOT NULL,
    contract_sha256     text NOT NULL CHECK (contract_sha256 ~ '^[0-9a-f]{64}$'),
    version             text NOT NULL,
    status              text NOT NULL DEFAULT 'requested' CHECK (status IN
                            ('requested', 'accepted', 'in_progress', 'ready_for_review',
                             'completed', 'rejected', 'withdrawn')),
    requested_by        text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    status_changed_by   text NOT NULL,
    status_changed_at   timestamptz NOT NULL DEFAULT now(),
    completed_by        text,
    -- Only the sealed form is ever stored: the hub's `key-id: …` line and the age armor.
    credential_key_id   text CHECK (credential_key_id ~ '^([0-9a-f]{16}|unknown)$'),
    credential_sealed   text CHECK (credential_sealed LIKE 'key-id: %-----BEGIN AGE ENCRYPTED FILE-----%'),
    credential_set_by   text,
    credential_set_at   timestamptz,
    health              text NOT NULL DEFAULT 'unknown' CHECK (health IN ('healthy', 'drifted', 'unhealthy', 'unknown')),
    last_probe_at       timestamptz,
    last_error          text,
    -- Probes claim due rows with FOR UPDATE SKIP LOCKED and move this forward, so replicas
    -- never probe the same registration in the same round.
    next_probe_at       timestamptz NOT NULL DEFAULT now(),
    revision            bigint NOT NULL DEFAULT 1,
    CHECK ((credential_key_id IS NULL) = (credential_sealed IS NULL)),
    -- Completion is a review by someone other than the requester, of a registration with a
    -- credential to hand out.
    CHECK (status <> 'completed' OR (completed_by IS NOT NULL AND credential_sealed IS NOT NULL)),
    CHECK (completed_by IS NULL OR completed_by <> requested_by)
);
CREATE INDEX capabilities_due ON capabilities (next_probe_at) WHERE status = 'completed';

CREATE TABLE capability_probes (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    capability_id   uuid NOT NULL REFERENCES capabilities (id),
    at              timestamptz NOT NULL,
    health          text NOT NULL CHECK (health IN ('healthy', 'drifted', 'unhealthy')),
    status          integer,
    latency_ms      bigint,
    contract_sha256 text,
    error           text
);
CREATE INDEX capability_probes_by_capability ON capability_probes (capability_id, id DESC);
