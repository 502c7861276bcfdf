//! Hub registry wire types: hub kinds, hub instances with heartbeat health, and the manifests
//! they submit. Shared by the state hub (server), domain hubs and `hubctl` (clients).

use super::manifest::Manifest;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A kind of hub, e.g. `ops`; instances name one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HubKind {
    /// Name, lowercase.
    pub name: String,
    /// What hubs of this kind do.
    pub description: String,
    /// When an admin registered it.
    pub created_at: DateTime<Utc>,
}

/// `POST /api/v1/hub-kinds`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHubKind {
    /// Name, lowercase.
    pub name: String,
    /// What hubs of this kind do.
    #[serde(default)]
    pub description: String,
}

/// A hub's health as the state hub judges it from heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HubHealth {
    /// Heartbeats arrive and say all is well.
    Passing,
    /// The hub reports a problem, or heartbeats are late.
    Warning,
    /// The hub reports it cannot work, or heartbeats stopped.
    Critical,
    /// Registered, never heard from.
    Unknown,
}

/// A registered hub instance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Hub {
    /// Instance name, e.g. `ops-hub`.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Where people reach it.
    pub base_url: String,
    /// Judged health (late heartbeats downgrade what the hub reported).
    pub health: HubHealth,
    /// What the last heartbeat said.
    pub detail: Option<String>,
    /// Last heartbeat.
    pub last_seen: Option<DateTime<Utc>>,
    /// Seconds between heartbeats the hub promised.
    pub heartbeat_seconds: u32,
    /// Version of its active manifest.
    pub active_manifest: Option<String>,
    /// First registration.
    pub registered_at: DateTime<Utc>,
}

/// `PUT /api/v1/hubs/{name}`: register or update a hub instance (idempotent).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HubRegistration {
    /// A registered kind.
    pub kind: String,
    /// Where people reach it (https://, or http:// on loopback in dev mode).
    pub base_url: String,
    /// Seconds between heartbeats (10–3600).
    pub heartbeat_seconds: u32,
}

/// `POST /api/v1/hubs/{name}/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The hub's own view: `passing`, `warning` or `critical`.
    pub status: HubHealth,
    /// One line, e.g. "cluster unreachable since 12:03".
    #[serde(default)]
    pub detail: Option<String>,
}

/// A manifest's place in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ManifestStatus {
    /// Editable, not in force.
    Draft,
    /// In force: its types are registered. One per hub.
    Active,
    /// Replaced or withdrawn; kept for the record.
    Retired,
}

/// A stored manifest.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ManifestRecord {
    /// Id.
    pub id: Uuid,
    /// Hub instance.
    pub hub: String,
    /// Version.
    pub version: String,
    /// Lifecycle state.
    pub status: ManifestStatus,
    /// The document.
    pub manifest: Manifest,
    /// Who submitted it.
    pub submitted_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Who activated it.
    pub activated_by: Option<String>,
    /// When.
    pub activated_at: Option<DateTime<Utc>>,
    /// When it was retired.
    pub retired_at: Option<DateTime<Utc>>,
    /// Optimistic concurrency (`ETag`).
    pub revision: i64,
}

/// One entry of a type registry (event types, widget types, annotation categories, scopes),
/// filled when a manifest is activated.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisteredType {
    /// `event`, `widget`, `annotation_category` or `policy_scope`.
    pub registry: String,
    /// The declared name.
    pub name: String,
    /// The declaring hub.
    pub hub: String,
    /// From manifest version.
    pub manifest_version: String,
    /// Its description.
    pub description: String,
}
