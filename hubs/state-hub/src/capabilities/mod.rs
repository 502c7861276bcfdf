//! The capability registry: the interfaces the application domain offers hubs, their request
//! lifecycle, their credentials (stored only age-sealed to the hub's identity) and the probes
//! that watch them.
//!
//! Rules live in [`rules`] as plain functions; [`store`] owns the SQL; [`service`] runs each
//! operation with its journal event; [`handlers`] are thin; [`probe`] is the background job.

pub mod handlers;
pub mod probe;
pub mod rules;
pub mod service;
pub mod store;

use hub_core::capability::{CapabilityClient, CapabilityClientConfig};
use hub_core::config::Problems;
use hub_core::sealed::{Keyring, SealError, CREDENTIAL_NAME};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn default_probe_interval() -> u64 {
    30
}

/// `[capabilities]`: how the state hub reaches capabilities to probe them — the hub-core
/// capability client's settings — and how often.
#[derive(Debug, Clone)]
pub struct CapabilitiesConfig {
    /// The capability client (`ca_file`, `allow_cidrs`, time-outs, retries, breaker, sizes).
    pub client: CapabilityClientConfig,
    /// Seconds between two probes of one registration (default 30).
    pub probe_interval_seconds: u64,
}

impl Default for CapabilitiesConfig {
    fn default() -> Self {
        Self {
            client: CapabilityClientConfig::default(),
            probe_interval_seconds: default_probe_interval(),
        }
    }
}

// One flat section, as operators write it: the client's keys keep refusing unknown ones, which
// `#[serde(flatten)]` would switch off.
impl<'de> Deserialize<'de> for CapabilitiesConfig {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = serde_json::Map::<String, serde_json::Value>::deserialize(de)?;
        let probe_interval_seconds = match table.remove("probe_interval_seconds") {
            None => default_probe_interval(),
            Some(v) => v.as_u64().ok_or_else(|| {
                D::Error::custom("probe_interval_seconds: expected a whole number of seconds")
            })?,
        };
        let client = CapabilityClientConfig::deserialize(serde_json::Value::Object(table))
            .map_err(|e| {
                // The client's message lists its own keys; this section has one more.
                let text = e.to_string().replace(
                    "expected one of",
                    "expected `probe_interval_seconds` or one of",
                );
                D::Error::custom(text)
            })?;
        Ok(Self {
            client,
            probe_interval_seconds,
        })
    }
}

impl CapabilitiesConfig {
    /// Pushes one line per problem.
    pub fn validate(&self, p: &mut Problems) {
        self.client.validate(p);
        if !(1..=86_400).contains(&self.probe_interval_seconds) {
            p.push("capabilities.probe_interval_seconds: must be between 1 and 86400");
        }
    }

    /// Time between two probes of one registration.
    pub fn probe_interval(&self) -> Duration {
        Duration::from_secs(self.probe_interval_seconds)
    }
}

/// `[secrets]`: the state hub's age identities, which seal stored capability credentials.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// Identity files, the current one first (new seals go to it); older ones after it only
    /// open what was sealed to them until `hubctl secret rotate --hub`. Empty: the systemd
    /// credential `age-identity`, if present.
    #[serde(default)]
    pub age_identity_files: Vec<PathBuf>,
}

impl SecretsConfig {
    /// The keyring, `None` when no identity is configured at all. A configured identity that
    /// cannot be read is an error, never a silent `None`.
    pub fn keyring(&self) -> Result<Option<Keyring>, SealError> {
        match Keyring::load_configured(&self.age_identity_files) {
            Ok(k) => Ok(Some(k)),
            Err(SealError::NoIdentity)
                if self.age_identity_files.is_empty() && !credential_present() =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Pushes a problem when the configured identities cannot be loaded.
    pub fn validate(&self, p: &mut Problems) {
        if let Err(e) = self.keyring() {
            p.push(format!("secrets.age_identity_files: {e}"));
        }
    }
}

/// Whether the systemd credential holding the identity exists.
fn credential_present() -> bool {
    hub_core::secret::locate(None, CREDENTIAL_NAME).is_some()
}

/// What the capability operations share: the keyring (if any), the client probes use, and
/// the probe interval.
pub struct Runtime {
    /// The hub's age identities; `None` when none is configured (no credential can be stored).
    pub keyring: Option<Arc<Keyring>>,
    /// The hub-core capability client, its registrations set by each probe round.
    pub client: CapabilityClient,
    /// Time between two probes of one registration.
    pub probe_interval: Duration,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("keyring", &self.keyring)
            .field("probe_interval", &self.probe_interval)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// The keyring, or a refusal explaining how to configure one.
    pub fn keyring(&self) -> Result<Arc<Keyring>, hub_core::http::problem::ApiError> {
        self.keyring.clone().ok_or_else(|| {
            hub_core::http::problem::ApiError::Conflict(
                "the state hub has no age identity: set [secrets] age_identity_files (or the \
                 systemd credential `age-identity`) and restart it"
                    .to_owned(),
            )
        })
    }
}
