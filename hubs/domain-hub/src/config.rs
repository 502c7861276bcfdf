//! A domain hub instance's configuration file: which hub it is, where its manifest and the state
//! hub are, and hub-core's sections (server, database, identity, limits, capabilities, log).

use crate::manifest;
use hub_core::api::manifest::Manifest;
use hub_core::auth::Scope;
use hub_core::capability::CapabilityClientConfig;
use hub_core::config::{self, ConfigError, DatabaseConfig, LogConfig, Problems, ServerConfig};
use hub_core::http::ratelimit::LimitConfig;
use hub_core::identity::IdentityConfig;
use hub_core::retention::{RetentionConfig, Window};
use hub_core::secret::{self, SecretSource};
use secrecy::SecretString;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Top-level sections, for `HUB_*` overrides.
pub const SECTIONS: &[&str] = &[
    "dev_mode",
    "hub",
    "state_hub",
    "server",
    "database",
    "identity",
    "limits",
    "capabilities",
    "log",
    "retention",
];

/// The commented example config, printed by `domain-hub default-config`.
pub const EXAMPLE: &str = include_str!("../domain-hub.example.toml");

/// The systemd credential the state hub token is read from when `token_file` is unset.
pub const TOKEN_CREDENTIAL: &str = "state-hub-token";

fn default_heartbeat() -> u32 {
    30
}
fn default_observations_kept() -> u32 {
    100
}

/// `[hub]`: which instance this process is.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct HubSection {
    /// Instance name, e.g. `ops-hub`; the manifest's `hub` must equal it.
    pub name: String,
    /// The hub's kind, e.g. `ops`; the manifest's `kind` must equal it.
    pub kind: String,
    /// The capability manifest (JSON) this instance submits and works from.
    pub manifest_file: PathBuf,
    /// Seconds between heartbeats to the state hub (10–3600).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: u32,
    /// Observations kept per (capability, path); older ones are deleted as new ones arrive.
    #[serde(default = "default_observations_kept")]
    pub observations_kept: u32,
}

fn default_timeout() -> u64 {
    10
}
fn default_callable_refresh() -> u64 {
    60
}
fn default_retry_max() -> u64 {
    60
}

/// `[state_hub]`: where the journal, the registries and the decisions live.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct StateHubSection {
    /// The state hub's base URL (https://, or http:// for loopback or in dev mode).
    pub url: String,
    /// File holding this hub's API token for the state hub; else the credential `state-hub-token`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Extra PEM root certificate(s) for the state hub's TLS.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds one request to the state hub may take.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Seconds between refreshes of the callable capability list.
    #[serde(default = "default_callable_refresh")]
    pub callable_refresh_seconds: u64,
    /// Longest pause, in seconds, between two attempts while the state hub is unreachable.
    #[serde(default = "default_retry_max")]
    pub retry_max_seconds: u64,
}

impl StateHubSection {
    /// Where the token comes from, if anywhere.
    pub fn token_source(&self) -> Option<SecretSource> {
        secret::locate(self.token_file.as_deref(), TOKEN_CREDENTIAL)
    }

    /// The token, read from its file or credential.
    pub fn token(&self) -> Result<SecretString, String> {
        let src = self.token_source().ok_or_else(|| {
            format!(
                "state_hub.token_file: not set and no systemd credential `{TOKEN_CREDENTIAL}`; \
                 name the file holding this hub's state hub token"
            )
        })?;
        secret::read(&src, hub_core::auth::tokens::MIN_TOKEN_LEN)
            .map_err(|e| format!("state_hub.token_file: {e}"))
    }

    /// Time allowed for one request.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    /// Longest back-off while the state hub is down.
    pub fn retry_max(&self) -> Duration {
        Duration::from_secs(self.retry_max_seconds)
    }
}

/// The whole file.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DomainHubConfig {
    /// Relaxes production checks (plain http, inline passwords) for local development.
    #[serde(default)]
    pub dev_mode: bool,
    /// Which hub this is.
    pub hub: HubSection,
    /// The state hub.
    pub state_hub: StateHubSection,
    /// HTTP.
    pub server: ServerConfig,
    /// PostgreSQL: this instance's own database.
    pub database: DatabaseConfig,
    /// People: OIDC, LDAP, roles, scopes, sessions, break-glass.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Rate limits.
    #[serde(default)]
    pub limits: LimitConfig,
    /// How the capability interfaces of the cluster are called.
    #[serde(default)]
    pub capabilities: CapabilityClientConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// How long rows outside the journal are kept, and the purge job.
    #[serde(default)]
    pub retention: RetentionConfig,
}

impl DomainHubConfig {
    /// Loads and validates the file; every problem is reported. Returns the manifest it names.
    pub fn load(path: Option<&Path>) -> Result<(Self, Manifest, Vec<String>), ConfigError> {
        let loaded = config::load::<DomainHubConfig>(path, SECTIONS)?;
        let manifest = loaded.config.validate()?;
        Ok((loaded.config, manifest, loaded.warnings))
    }

    /// Checks everything that can be checked before connecting anywhere, the manifest file
    /// included, and returns the manifest.
    pub fn validate(&self) -> Result<Manifest, ConfigError> {
        let mut p = Problems::default();
        self.validate_hub(&mut p);
        self.server.validate(self.dev_mode, &mut p);
        self.database.validate(self.dev_mode, &mut p);
        self.identity.validate(self.dev_mode, &mut p);
        self.limits.validate(&mut p);
        self.capabilities.validate(&mut p);
        self.retention
            .validate(&[Window::Observations, Window::OutboxDelivered], &mut p);
        self.validate_state_hub(&mut p);
        let manifest = match manifest::load(&self.hub.manifest_file, &self.hub.name, &self.hub.kind)
        {
            Ok(m) => {
                self.validate_scopes(&m, &mut p);
                Some(m)
            }
            Err(problems) => {
                for line in problems {
                    p.push(format!("hub.manifest_file: {line}"));
                }
                None
            }
        };
        p.into_result()?;
        manifest.ok_or_else(|| ConfigError(vec!["hub.manifest_file: not loaded".to_owned()]))
    }

    fn validate_hub(&self, p: &mut Problems) {
        for (key, value) in [("hub.name", &self.hub.name), ("hub.kind", &self.hub.kind)] {
            if !manifest::name_ok(value) {
                p.push(format!(
                    "{key}: `{value}` must be 1-64 lowercase letters, digits, - or _, starting with a letter"
                ));
            }
        }
        if !(10..=3600).contains(&self.hub.heartbeat_seconds) {
            p.push("hub.heartbeat_seconds: must be between 10 and 3600");
        }
        if !(1..=100_000).contains(&self.hub.observations_kept) {
            p.push("hub.observations_kept: must be between 1 and 100000");
        }
    }

    fn validate_state_hub(&self, p: &mut Problems) {
        let s = &self.state_hub;
        match url::Url::parse(&s.url) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" => {
                if !self.dev_mode && !config::is_loopback_host(&u) {
                    p.push(format!(
                        "state_hub.url: plain http ({}) is only allowed for loopback or with dev_mode = true",
                        s.url
                    ));
                }
            }
            Ok(u) => p.push(format!(
                "state_hub.url: scheme `{}` is not http or https",
                u.scheme()
            )),
            Err(e) => p.push(format!("state_hub.url: `{}` is not a URL: {e}", s.url)),
        }
        if let Err(e) = s.token() {
            p.push(e);
        }
        if let Some(ca) = &s.ca_file {
            if let Err(e) = read_pem_bundle(ca) {
                p.push(format!("state_hub.ca_file: {e}"));
            }
        }
        // The relay holds its outbox row locked in a transaction across the call; PostgreSQL
        // ends transactions idle for 60 s (hub-core's idle_in_transaction_session_timeout).
        if !(1..=50).contains(&s.timeout_seconds) {
            p.push("state_hub.timeout_seconds: must be between 1 and 50");
        }
        if !(1..=3600).contains(&s.callable_refresh_seconds) {
            p.push("state_hub.callable_refresh_seconds: must be between 1 and 3600");
        }
        if !(1..=3600).contains(&s.retry_max_seconds) {
            p.push("state_hub.retry_max_seconds: must be between 1 and 3600");
        }
    }

    /// A scope granted in `[identity.scopes]` that the manifest does not declare guards nothing:
    /// almost always a typo that would leave an action unreachable.
    fn validate_scopes(&self, m: &Manifest, p: &mut Problems) {
        for scope in self.identity.scopes.keys() {
            if Scope::parse(scope).is_ok() && !m.policy_scopes.iter().any(|s| &s.name == scope) {
                p.push(format!(
                    "identity.scopes: `{scope}` is not one of the manifest's policy_scopes"
                ));
            }
        }
    }
}

/// Reads a PEM bundle of root certificates; at least one must be in it.
pub fn read_pem_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{} is not a PEM certificate bundle: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}
