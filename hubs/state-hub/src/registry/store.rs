//! SQL of the `hub_kinds`, `hubs`, `manifests` and `registered_types` tables.

use super::rules::{self, Declared, Registry, Taken, ValidKind, ValidRegistration};
use chrono::{DateTime, Utc};
use hub_core::api::manifest::Manifest;
use hub_core::api::registry::{Hub, HubHealth, HubKind, ManifestRecord, RegisteredType};
use hub_core::http::problem::ApiError;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

fn corrupt(what: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!("corrupt registry row: {what}"))
}

// ---------------------------------------------------------------------------------------------
// Kinds
// ---------------------------------------------------------------------------------------------

fn kind_from_row(r: &Row) -> Result<HubKind, ApiError> {
    Ok(HubKind {
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Every hub kind, by name.
pub async fn kinds(client: &impl GenericClient) -> Result<Vec<HubKind>, ApiError> {
    let rows = client
        .query(
            "SELECT name, description, created_at FROM hub_kinds ORDER BY name",
            &[],
        )
        .await?;
    rows.iter().map(kind_from_row).collect()
}

/// One hub kind.
pub async fn kind(client: &impl GenericClient, name: &str) -> Result<Option<HubKind>, ApiError> {
    let row = client
        .query_opt(
            "SELECT name, description, created_at FROM hub_kinds WHERE name = $1",
            &[&name],
        )
        .await?;
    row.as_ref().map(kind_from_row).transpose()
}

/// Inserts a kind.
pub async fn insert_kind(
    client: &impl GenericClient,
    k: &ValidKind,
    by: &str,
    now: DateTime<Utc>,
) -> Result<HubKind, ApiError> {
    let row = client
        .query_one(
            "INSERT INTO hub_kinds (name, description, created_by, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING name, description, created_at",
            &[&k.name, &k.description, &by, &now],
        )
        .await?;
    kind_from_row(&row)
}

// ---------------------------------------------------------------------------------------------
// Hubs
// ---------------------------------------------------------------------------------------------

/// A hub as stored: the wire [`Hub`] needs a judgement of its health at some instant.
#[derive(Debug, Clone)]
pub struct HubRow {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Base URL.
    pub base_url: String,
    /// Promised interval.
    pub heartbeat_seconds: u32,
    /// What the hub last said.
    pub reported: HubHealth,
    /// Its detail.
    pub detail: Option<String>,
    /// Last heartbeat.
    pub last_seen: Option<DateTime<Utc>>,
    /// Version of the active manifest.
    pub active_manifest: Option<String>,
    /// First registration.
    pub registered_at: DateTime<Utc>,
    /// Who registered it.
    pub registered_by: String,
    /// Registration version (`ETag`).
    pub version: i64,
}

impl HubRow {
    /// The wire form, with its health judged at `now`.
    pub fn at(&self, now: DateTime<Utc>) -> Hub {
        Hub {
            name: self.name.clone(),
            kind: self.kind.clone(),
            base_url: self.base_url.clone(),
            health: rules::judged_health(
                self.reported,
                self.last_seen,
                self.heartbeat_seconds,
                now,
            ),
            detail: self.detail.clone(),
            last_seen: self.last_seen,
            heartbeat_seconds: self.heartbeat_seconds,
            active_manifest: self.active_manifest.clone(),
            registered_at: self.registered_at,
        }
    }

    /// Whether `r` would change nothing.
    pub fn same_registration(&self, r: &ValidRegistration) -> bool {
        self.kind == r.kind
            && self.base_url == r.base_url
            && self.heartbeat_seconds == r.heartbeat_seconds
    }
}

const HUB_COLUMNS: &str = "h.name, h.kind, h.base_url, h.heartbeat_seconds, h.reported_status, h.detail, \
h.last_seen, h.registered_at, h.registered_by, h.version, \
(SELECT m.version FROM manifests m WHERE m.hub = h.name AND m.status = 'active') AS active_manifest";

fn hub_from_row(r: &Row) -> Result<HubRow, ApiError> {
    let reported: String = r.try_get("reported_status")?;
    let interval: i32 = r.try_get("heartbeat_seconds")?;
    Ok(HubRow {
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        base_url: r.try_get("base_url")?,
        heartbeat_seconds: u32::try_from(interval).map_err(|_| corrupt("heartbeat_seconds"))?,
        reported: rules::parse_health(&reported).ok_or_else(|| corrupt("reported_status"))?,
        detail: r.try_get("detail")?,
        last_seen: r.try_get("last_seen")?,
        active_manifest: r.try_get("active_manifest")?,
        registered_at: r.try_get("registered_at")?,
        registered_by: r.try_get("registered_by")?,
        version: r.try_get("version")?,
    })
}

/// One hub; `for_update` locks its row.
pub async fn hub(
    client: &impl GenericClient,
    name: &str,
    for_update: bool,
) -> Result<Option<HubRow>, ApiError> {
    let lock = if for_update { " FOR UPDATE OF h" } else { "" };
    let row = client
        .query_opt(
            &format!("SELECT {HUB_COLUMNS} FROM hubs h WHERE h.name = $1{lock}"),
            &[&name],
        )
        .await?;
    row.as_ref().map(hub_from_row).transpose()
}

/// One hub or 404.
pub async fn require_hub(
    client: &impl GenericClient,
    name: &str,
    for_update: bool,
) -> Result<HubRow, ApiError> {
    hub(client, name, for_update).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no hub `{name}`; it registers itself with PUT /api/v1/hubs/{name}"
        ))
    })
}

/// Every hub, by name.
pub async fn hubs(client: &impl GenericClient) -> Result<Vec<HubRow>, ApiError> {
    let rows = client
        .query(
            &format!("SELECT {HUB_COLUMNS} FROM hubs h ORDER BY h.name"),
            &[],
        )
        .await?;
    rows.iter().map(hub_from_row).collect()
}

fn interval(r: &ValidRegistration) -> Result<i32, ApiError> {
    i32::try_from(r.heartbeat_seconds)
        .map_err(|_| ApiError::field("heartbeat_seconds", "out of range"))
}

/// Inserts a hub, never heard from yet.
pub async fn insert_hub(
    client: &impl GenericClient,
    name: &str,
    r: &ValidRegistration,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    client
        .execute(
            "INSERT INTO hubs (name, kind, base_url, heartbeat_seconds, registered_by, registered_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            &[&name, &r.kind, &r.base_url, &interval(r)?, &by, &now],
        )
        .await?;
    Ok(())
}

/// Changes a hub's registration.
pub async fn update_hub(
    client: &impl GenericClient,
    name: &str,
    r: &ValidRegistration,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE hubs SET kind = $2, base_url = $3, heartbeat_seconds = $4, updated_at = $5, \
             version = version + 1 WHERE name = $1",
            &[&name, &r.kind, &r.base_url, &interval(r)?, &now],
        )
        .await?;
    Ok(())
}

/// Records a heartbeat that repeats the reported status; returns whether the hub was found
/// with that status. Runs outside the journal writer: it writes no event, so the writer
/// (which every journaled change waits for) never queues behind heartbeats.
pub async fn repeat_heartbeat(
    client: &impl GenericClient,
    name: &str,
    status: HubHealth,
    detail: Option<&str>,
) -> Result<bool, ApiError> {
    let n = client
        .execute(
            "UPDATE hubs SET last_seen = now(), detail = $3 WHERE name = $1 AND reported_status = $2",
            &[&name, &rules::health_str(status), &detail],
        )
        .await?;
    Ok(n == 1)
}

/// Records a heartbeat with its status.
pub async fn record_heartbeat(
    client: &impl GenericClient,
    name: &str,
    status: HubHealth,
    detail: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE hubs SET last_seen = $4, reported_status = $2, detail = $3 WHERE name = $1",
            &[&name, &rules::health_str(status), &detail, &now],
        )
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------------

const MANIFEST_COLUMNS: &str = "id, hub, version, status, document, submitted_by, created_at, \
activated_by, activated_at, retired_at, revision";

fn manifest_from_row(r: &Row) -> Result<ManifestRecord, ApiError> {
    let status: String = r.try_get("status")?;
    let document: serde_json::Value = r.try_get("document")?;
    Ok(ManifestRecord {
        id: r.try_get("id")?,
        hub: r.try_get("hub")?,
        version: r.try_get("version")?,
        status: rules::parse_status(&status).ok_or_else(|| corrupt("manifest status"))?,
        manifest: serde_json::from_value(document).map_err(|_| corrupt("manifest document"))?,
        submitted_by: r.try_get("submitted_by")?,
        created_at: r.try_get("created_at")?,
        activated_by: r.try_get("activated_by")?,
        activated_at: r.try_get("activated_at")?,
        retired_at: r.try_get("retired_at")?,
        revision: r.try_get("revision")?,
    })
}

fn document(m: &Manifest) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(m).map_err(ApiError::internal)
}

/// One manifest; `for_update` locks its row.
pub async fn manifest(
    client: &impl GenericClient,
    id: Uuid,
    for_update: bool,
) -> Result<Option<ManifestRecord>, ApiError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!("SELECT {MANIFEST_COLUMNS} FROM manifests WHERE id = $1{lock}"),
            &[&id],
        )
        .await?;
    row.as_ref().map(manifest_from_row).transpose()
}

/// One manifest or 404.
pub async fn require_manifest(
    client: &impl GenericClient,
    id: Uuid,
    for_update: bool,
) -> Result<ManifestRecord, ApiError> {
    manifest(client, id, for_update)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no manifest {id}")))
}

/// A hub's manifest of one version.
pub async fn manifest_by_version(
    client: &impl GenericClient,
    hub: &str,
    version: &str,
    for_update: bool,
) -> Result<Option<ManifestRecord>, ApiError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!(
                "SELECT {MANIFEST_COLUMNS} FROM manifests WHERE hub = $1 AND version = $2{lock}"
            ),
            &[&hub, &version],
        )
        .await?;
    row.as_ref().map(manifest_from_row).transpose()
}

/// A hub's manifests, newest first.
pub async fn manifests(
    client: &impl GenericClient,
    hub: &str,
) -> Result<Vec<ManifestRecord>, ApiError> {
    let rows = client
        .query(
            &format!(
                "SELECT {MANIFEST_COLUMNS} FROM manifests WHERE hub = $1 ORDER BY created_at DESC, id DESC"
            ),
            &[&hub],
        )
        .await?;
    rows.iter().map(manifest_from_row).collect()
}

/// The hub's manifest in force, as stored; `for_update` locks it.
pub async fn active_record(
    client: &impl GenericClient,
    hub: &str,
    for_update: bool,
) -> Result<Option<ManifestRecord>, ApiError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!(
                "SELECT {MANIFEST_COLUMNS} FROM manifests WHERE hub = $1 AND status = 'active'{lock}"
            ),
            &[&hub],
        )
        .await?;
    row.as_ref().map(manifest_from_row).transpose()
}

/// The manifest in force for `hub`, if any: what it may emit, show, read (`capabilities`) and do.
pub async fn active_manifest(
    client: &impl GenericClient,
    hub: &str,
) -> Result<Option<Manifest>, ApiError> {
    Ok(active_record(client, hub, false).await?.map(|r| r.manifest))
}

/// Stores a new draft.
pub async fn insert_manifest(
    client: &impl GenericClient,
    m: &Manifest,
    by: &str,
    now: DateTime<Utc>,
) -> Result<ManifestRecord, ApiError> {
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO manifests (id, hub, version, status, document, submitted_by, created_at, updated_at) \
             VALUES ($1, $2, $3, 'draft', $4, $5, $6, $6)",
            &[&id, &m.hub, &m.version, &document(m)?, &by, &now],
        )
        .await?;
    require_manifest(client, id, false).await
}

/// Replaces a draft's document.
pub async fn replace_document(
    client: &impl GenericClient,
    id: Uuid,
    m: &Manifest,
    now: DateTime<Utc>,
) -> Result<ManifestRecord, ApiError> {
    client
        .execute(
            "UPDATE manifests SET document = $2, updated_at = $3, revision = revision + 1 WHERE id = $1",
            &[&id, &document(m)?, &now],
        )
        .await?;
    require_manifest(client, id, false).await
}

/// Puts a manifest in force.
pub async fn set_active(
    client: &impl GenericClient,
    id: Uuid,
    by: &str,
    now: DateTime<Utc>,
) -> Result<ManifestRecord, ApiError> {
    client
        .execute(
            "UPDATE manifests SET status = 'active', activated_by = $2, activated_at = $3, updated_at = $3, \
             revision = revision + 1 WHERE id = $1",
            &[&id, &by, &now],
        )
        .await?;
    require_manifest(client, id, false).await
}

/// Retires a manifest.
pub async fn set_retired(
    client: &impl GenericClient,
    id: Uuid,
    by: &str,
    now: DateTime<Utc>,
) -> Result<ManifestRecord, ApiError> {
    client
        .execute(
            "UPDATE manifests SET status = 'retired', retired_by = $2, retired_at = $3, updated_at = $3, \
             revision = revision + 1 WHERE id = $1",
            &[&id, &by, &now],
        )
        .await?;
    require_manifest(client, id, false).await
}

// ---------------------------------------------------------------------------------------------
// Type registries
// ---------------------------------------------------------------------------------------------

fn split(declared: &[Declared]) -> (Vec<&'static str>, Vec<&str>, Vec<&str>) {
    (
        declared.iter().map(|d| d.registry.as_str()).collect(),
        declared.iter().map(|d| d.name.as_str()).collect(),
        declared.iter().map(|d| d.description.as_str()).collect(),
    )
}

/// The declared policy scopes another hub than `hub` already holds (scopes are one namespace;
/// event types, widgets and annotation categories are registered per hub and never conflict).
pub async fn taken_by_others(
    client: &impl GenericClient,
    hub: &str,
    declared: &[Declared],
) -> Result<Vec<Taken>, ApiError> {
    if declared.is_empty() {
        return Ok(Vec::new());
    }
    let (registries, names, _) = split(declared);
    let rows = client
        .query(
            "SELECT t.registry, t.name, t.hub FROM registered_types t \
             JOIN unnest($1::text[], $2::text[]) AS d(registry, name) ON d.registry = t.registry AND d.name = t.name \
             WHERE t.hub <> $3 AND t.registry = 'policy_scope' \
             ORDER BY t.registry, t.name",
            &[&registries, &names, &hub],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let registry: String = r.try_get(0)?;
            Ok(Taken {
                registry: Registry::parse(&registry).ok_or_else(|| corrupt("registry"))?,
                name: r.try_get(1)?,
                hub: r.try_get(2)?,
            })
        })
        .collect()
}

/// Registers the declared names for an activated manifest.
pub async fn register_types(
    client: &impl GenericClient,
    rec: &ManifestRecord,
    declared: &[Declared],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    if declared.is_empty() {
        return Ok(());
    }
    let (registries, names, descriptions) = split(declared);
    client
        .execute(
            "INSERT INTO registered_types (registry, name, hub, manifest_id, description, registered_at) \
             SELECT d.registry, d.name, $4, $5, d.description, $6 \
             FROM unnest($1::text[], $2::text[], $3::text[]) AS d(registry, name, description)",
            &[&registries, &names, &descriptions, &rec.hub, &rec.id, &now],
        )
        .await
        .map_err(|e| {
            // Another replica's writer cannot interleave (one journal lock), but if the check
            // above were ever bypassed, the primary key still refuses a second owner.
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                ApiError::Conflict(format!(
                    "a name declared by manifest {} is already registered by another hub",
                    rec.id
                ))
            } else {
                e.into()
            }
        })?;
    Ok(())
}

/// Removes the names a manifest registered; returns how many.
pub async fn unregister_types(client: &impl GenericClient, id: Uuid) -> Result<u64, ApiError> {
    Ok(client
        .execute(
            "DELETE FROM registered_types WHERE manifest_id = $1",
            &[&id],
        )
        .await?)
}

/// The registered names, of one registry or all, by registry and name.
pub async fn types(
    client: &impl GenericClient,
    registry: Option<Registry>,
) -> Result<Vec<RegisteredType>, ApiError> {
    let registry = registry.map(Registry::as_str);
    let rows = client
        .query(
            "SELECT t.registry, t.name, t.hub, m.version, t.description FROM registered_types t \
             JOIN manifests m ON m.id = t.manifest_id \
             WHERE ($1::text IS NULL OR t.registry = $1) ORDER BY t.registry, t.name",
            &[&registry],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(RegisteredType {
                registry: r.try_get(0)?,
                name: r.try_get(1)?,
                hub: r.try_get(2)?,
                manifest_version: r.try_get(3)?,
                description: r.try_get(4)?,
            })
        })
        .collect()
}
