//! Capability registry wire types: the interfaces the application domain offers hubs, their
//! request lifecycle, probes, and what a hub receives to call them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Where a registration is in its request lifecycle. Only `Completed` ones are callable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapabilityStatus {
    /// Asked for.
    Requested,
    /// The platform team agreed to provide it.
    Accepted,
    /// Being built on the cluster side.
    InProgress,
    /// Built; waiting for a reviewer.
    ReadyForReview,
    /// Reviewed and callable.
    Completed,
    /// Refused.
    Rejected,
    /// Withdrawn by its requester.
    Withdrawn,
}

/// The probe verdict of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeHealth {
    /// Health path answered 2xx and the contract is unchanged.
    Healthy,
    /// Answered, but the live contract's sha256 differs from the registered one.
    Drifted,
    /// No 2xx answer.
    Unhealthy,
    /// Never probed.
    Unknown,
}

/// A registration as listed (never the credential).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Capability {
    /// Id.
    pub id: Uuid,
    /// Unique name, e.g. `deployments`.
    pub name: String,
    /// The cluster-side service that provides it.
    pub owning_service: String,
    /// `https://` base URL.
    pub base_url: String,
    /// Health path under the base URL.
    pub health_path: String,
    /// Path of the live contract under the base URL (for drift checks).
    pub contract_path: String,
    /// sha256 (hex) of the registered contract document.
    pub contract_sha256: String,
    /// Interface version.
    pub version: String,
    /// Lifecycle state.
    pub status: CapabilityStatus,
    /// Who asked for it.
    pub requested_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Key id of the stored (age-sealed) credential, when one is set.
    pub credential_key_id: Option<String>,
    /// Latest probe verdict.
    pub health: ProbeHealth,
    /// Latest probe time.
    pub last_probe_at: Option<DateTime<Utc>>,
    /// Latest probe error, if any.
    pub last_error: Option<String>,
    /// Optimistic concurrency (`ETag`).
    pub revision: i64,
}

/// `POST /api/v1/capabilities`: request a registration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCapability {
    /// Unique name.
    pub name: String,
    /// Providing service.
    pub owning_service: String,
    /// `https://` base URL.
    pub base_url: String,
    /// Health path, e.g. `/healthz`.
    pub health_path: String,
    /// Live contract path, e.g. `/deployments/contract`.
    pub contract_path: String,
    /// The contract document (OpenAPI or JSON Schema); its sha256 is computed from its bytes.
    pub contract: serde_json::Value,
    /// Interface version.
    pub version: String,
}

/// `POST /api/v1/capabilities/{name}/transition`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapabilityTransition {
    /// Target state.
    pub to: CapabilityStatus,
    /// Why (kept in the event).
    #[serde(default)]
    pub note: Option<String>,
}

/// `PUT /api/v1/capabilities/{name}/credential`: sealed to the state hub's age identity at once.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialInput {
    /// The bearer credential, or an age file (armored) already sealed to the state hub's recipient.
    #[schema(value_type = String)]
    pub credential: secrecy::SecretString,
}

/// One probe of a registration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Probe {
    /// When.
    pub at: DateTime<Utc>,
    /// Verdict.
    pub health: ProbeHealth,
    /// HTTP status of the health path, when it answered.
    pub status: Option<u16>,
    /// Milliseconds.
    pub latency_ms: Option<i64>,
    /// sha256 of the live contract, when fetched.
    pub contract_sha256: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
}

/// What a hub gets to call a completed registration its active manifest uses. The credential is
/// in clear text here only: hubs receive it over their authenticated TLS connection and keep it
/// in memory.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct CallableCapability {
    /// Name.
    pub name: String,
    /// `https://` base URL.
    pub base_url: String,
    /// Health path.
    pub health_path: String,
    /// Bearer credential, if the registration has one.
    pub credential: Option<String>,
    /// Registered contract sha256.
    pub contract_sha256: String,
}

impl std::fmt::Debug for CallableCapability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallableCapability")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// `GET /api/v1/capabilities/callable`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallableList {
    /// The registrations this hub may call.
    pub items: Vec<CallableCapability>,
}

/// `GET /api/v1/secrets/recipient`: the public key credentials are sealed to, for
/// `hubctl secret encrypt -r` or `age -r`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretsRecipient {
    /// The current identity's recipient (`age1…` or `ssh-ed25519 …`).
    pub recipient: String,
    /// Its key id, as stored next to each sealed credential.
    pub key_id: String,
}

/// `POST /api/v1/secrets/rotate`: what re-sealing every stored credential to the current
/// identity did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RotationReport {
    /// Key id of the current identity, which every credential is now sealed to.
    pub key_id: String,
    /// Credentials re-sealed from an older identity.
    pub resealed: u64,
    /// Credentials already sealed to the current identity.
    pub already_current: u64,
    /// Capabilities whose credential no identity of the keyring opens (left as they were).
    pub failed: Vec<String>,
}
