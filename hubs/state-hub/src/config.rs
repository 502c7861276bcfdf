//! The state hub's configuration file.

use hub_core::auth::Subject;
use hub_core::config::{self, ConfigError, DatabaseConfig, LogConfig, Problems, ServerConfig};
use hub_core::http::ratelimit::LimitConfig;
use hub_core::identity::IdentityConfig;
use hub_core::retention::{RetentionConfig, Window};
use hub_core::secret;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Top-level sections, for `HUB_*` overrides.
pub const SECTIONS: &[&str] = &[
    "dev_mode",
    "server",
    "database",
    "auth",
    "identity",
    "limits",
    "journal",
    "log",
    "capabilities",
    "secrets",
    "nats",
    "retention",
];

/// The commented example config, printed by `state-hub default-config`.
pub const EXAMPLE: &str = include_str!("../state-hub.example.toml");

/// `[auth]`.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// File holding the first admin token (≥ 32 characters). Also read from the systemd
    /// credential `bootstrap-admin-token` when unset.
    #[serde(default)]
    pub bootstrap_admin_token_file: Option<PathBuf>,
    /// Subject the bootstrap token authenticates as.
    #[serde(default = "default_admin_subject")]
    pub bootstrap_admin_subject: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            bootstrap_admin_token_file: None,
            bootstrap_admin_subject: default_admin_subject(),
        }
    }
}

fn default_admin_subject() -> String {
    "admin".to_owned()
}

fn default_max_batch() -> usize {
    512
}
fn default_queue() -> usize {
    4096
}

/// `[journal]`: the single writer.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// Most writes committed together in one transaction.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Writes waiting for the writer before new ones get 503.
    #[serde(default = "default_queue")]
    pub queue_depth: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            max_batch: default_max_batch(),
            queue_depth: default_queue(),
        }
    }
}

/// The whole file.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct StateHubConfig {
    /// Relaxes production checks (plain http, inline passwords) for local development.
    #[serde(default)]
    pub dev_mode: bool,
    /// HTTP.
    pub server: ServerConfig,
    /// PostgreSQL.
    pub database: DatabaseConfig,
    /// Tokens.
    #[serde(default)]
    pub auth: AuthConfig,
    /// People: OIDC, LDAP, roles, sessions, break-glass.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Rate limits.
    #[serde(default)]
    pub limits: LimitConfig,
    /// Writer tuning.
    #[serde(default)]
    pub journal: JournalConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Reaching and probing capabilities.
    #[serde(default)]
    pub capabilities: crate::capabilities::CapabilitiesConfig,
    /// The age identities that seal stored capability credentials.
    #[serde(default)]
    pub secrets: crate::capabilities::SecretsConfig,
    /// Journal fan-out to NATS JetStream.
    #[serde(default)]
    pub nats: crate::fanout::NatsConfig,
    /// How long rows outside the journal are kept, and the purge job.
    #[serde(default)]
    pub retention: RetentionConfig,
}

impl StateHubConfig {
    /// Loads and validates the file; every problem is reported.
    pub fn load(path: Option<&Path>) -> Result<(Self, Vec<String>), ConfigError> {
        let loaded = config::load::<StateHubConfig>(path, SECTIONS)?;
        loaded.config.validate()?;
        Ok((loaded.config, loaded.warnings))
    }

    /// Checks everything that can be checked before connecting anywhere.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        self.server.validate(self.dev_mode, &mut p);
        self.database.validate(self.dev_mode, &mut p);
        self.identity.validate(self.dev_mode, &mut p);
        self.limits.validate(&mut p);
        self.capabilities.validate(&mut p);
        self.secrets.validate(&mut p);
        self.nats.validate(self.dev_mode, &mut p);
        self.retention.validate(&[Window::Idempotency], &mut p);
        if let Err(e) = Subject::parse(&self.auth.bootstrap_admin_subject) {
            p.push(format!("auth.bootstrap_admin_subject: {e}"));
        }
        if let Some(src) = self.bootstrap_source() {
            if let Err(e) = secret::read(&src, hub_core::auth::tokens::MIN_TOKEN_LEN) {
                p.push(format!("auth.bootstrap_admin_token_file: {e}"));
            }
        }
        if !(1..=10_000).contains(&self.journal.max_batch) {
            p.push("journal.max_batch: must be between 1 and 10000");
        }
        if !(16..=1_000_000).contains(&self.journal.queue_depth) {
            p.push("journal.queue_depth: must be between 16 and 1000000");
        }
        p.into_result()
    }

    /// Where the bootstrap token comes from, if anywhere.
    pub fn bootstrap_source(&self) -> Option<secret::SecretSource> {
        secret::locate(
            self.auth.bootstrap_admin_token_file.as_deref(),
            "bootstrap-admin-token",
        )
    }
}
