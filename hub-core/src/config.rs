//! Configuration: one TOML file, overridden by `HUB_*` environment variables, validated at start.
//!
//! `HUB_SERVER__LISTEN=0.0.0.0:8080` overrides `[server] listen`; `__` separates nesting levels and
//! values are parsed as TOML scalars when they parse (numbers, booleans), else kept as strings.
//! Every problem is collected and reported one per line, so an operator fixes them all in one go.

use crate::secret::{self, SecretSource};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "HUB_";

/// Every problem found while loading or validating a config, one per line.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// Records one problem.
    pub fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }
    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The problems, in the order found.
    pub fn lines(&self) -> &[String] {
        &self.0
    }
    /// `Ok(())` when empty, else the collected problems as an error.
    pub fn into_result(self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(self.0))
        }
    }
}

/// A config that could not be loaded; `Display` prints one line per problem.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "config: {p}")?;
        }
        Ok(())
    }
}

/// A parsed config plus warnings worth logging (e.g. `HUB_` variables that match no section).
pub struct Loaded<T> {
    /// The deserialized config.
    pub config: T,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
}

/// Loads `path`, applies `HUB_*` overrides whose first segment is one of `sections`, and
/// deserializes into `T`. Variables naming no known section are reported as warnings.
pub fn load<T: DeserializeOwned>(
    path: Option<&Path>,
    sections: &[&str],
) -> Result<Loaded<T>, ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    load_with_env(path, sections, &vars)
}

/// [`load`] with an explicit environment, for tests.
pub fn load_with_env<T: DeserializeOwned>(
    path: Option<&Path>,
    sections: &[&str],
    env: &[(String, String)],
) -> Result<Loaded<T>, ConfigError> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", p.display())]))?;
            load_text(Some((&p.display().to_string(), &text)), sections, env)
        }
        None => load_text(None, sections, env),
    }
}

/// [`load_with_env`] on a file's text (`(name for errors, text)`) instead of its path; the
/// fuzz targets under `fuzz/` drive the loader through this.
#[doc(hidden)]
pub fn load_text<T: DeserializeOwned>(
    file: Option<(&str, &str)>,
    sections: &[&str],
    env: &[(String, String)],
) -> Result<Loaded<T>, ConfigError> {
    let mut table = match file {
        Some((name, text)) => toml::from_str::<toml::Table>(text)
            .map_err(|e| ConfigError(vec![format!("{name} is not valid TOML: {}", e.message())]))?,
        None => toml::Table::new(),
    };
    let mut warnings = Vec::new();
    let mut problems = Problems::default();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let segments: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if !sections.contains(&segments[0].as_str()) {
            warnings.push(format!(
                "environment variable {name} matches no config section and is ignored"
            ));
            continue;
        }
        if let Err(e) = overlay(&mut table, &segments, value) {
            problems.push(format!("{name}: {e}"));
        }
    }
    problems.into_result()?;
    let de = toml::Value::Table(table);
    let config = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().message().to_owned();
        ConfigError(vec![if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        }])
    })?;
    Ok(Loaded { config, warnings })
}

fn overlay(table: &mut toml::Table, segments: &[String], raw: &str) -> Result<(), String> {
    let (last, parents) = segments
        .split_last()
        .ok_or_else(|| "empty key".to_owned())?;
    let mut current = table;
    for seg in parents {
        let entry = current
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{seg}` is not a section"))?;
    }
    current.insert(last.clone(), scalar(raw));
    Ok(())
}

/// Interprets an environment value as a TOML scalar or array when it parses as one, else a string.
fn scalar(raw: &str) -> toml::Value {
    let probe = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&probe) {
        Ok(mut t) => match t.remove("v") {
            Some(
                v @ (toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Boolean(_)
                | toml::Value::Array(_)),
            ) => v,
            _ => toml::Value::String(raw.to_owned()),
        },
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_body_limit() -> usize {
    1024 * 1024
}
fn default_grace() -> u64 {
    20
}

/// `[server]`: where the hub listens and how it presents itself.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Socket address to bind, e.g. `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The URL users and hubs reach this hub at (behind the ops-bridge).
    pub public_url: String,
    /// Largest accepted request body in bytes.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// Seconds in-flight requests get to finish on shutdown.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// HTTP worker threads; defaults to the number of cores.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Reverse proxies (the ops-bridge) whose `X-Forwarded-For` is believed, as CIDRs. A
    /// request from anywhere else is attributed to its peer address, whatever it claims.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl ServerConfig {
    /// Validates URLs and limits.
    pub fn validate(&self, dev_mode: bool, problems: &mut Problems) {
        match url::Url::parse(&self.public_url) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" => {
                if !dev_mode && !is_loopback_host(&u) {
                    problems.push(format!(
                        "server.public_url: plain http ({}) is only allowed for loopback or with dev_mode = true",
                        self.public_url
                    ));
                }
            }
            Ok(u) => problems.push(format!(
                "server.public_url: scheme `{}` is not http or https",
                u.scheme()
            )),
            Err(e) => problems.push(format!(
                "server.public_url: `{}` is not a URL: {e}",
                self.public_url
            )),
        }
        if self.body_limit_bytes < 1024 || self.body_limit_bytes > 64 * 1024 * 1024 {
            problems.push("server.body_limit_bytes: must be between 1 KiB and 64 MiB");
        }
        if self.shutdown_grace_seconds == 0 || self.shutdown_grace_seconds > 600 {
            problems.push("server.shutdown_grace_seconds: must be between 1 and 600");
        }
        if self.workers == Some(0) {
            problems.push("server.workers: must be at least 1");
        }
    }

    /// True when the public URL is HTTPS, so HSTS is sent.
    pub fn is_tls(&self) -> bool {
        self.public_url.starts_with("https://")
    }
    /// Grace period for draining requests.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}

/// True for `localhost`, 127.0.0.0/8 and ::1.
pub fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn default_pool() -> usize {
    16
}
fn default_health_pool() -> usize {
    2
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_statement_timeout() -> u64 {
    15_000
}

/// `[database]`: the hub's own PostgreSQL database.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// libpq-style URL or key/value string, without a password
    /// (`postgres:///state_hub?host=/run/postgresql` for a local socket with peer auth).
    pub url: String,
    /// File holding the password, when the server wants one.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Connections for requests and background work.
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    /// Connections reserved for `/readyz`, so a busy request pool never makes the hub look dead.
    #[serde(default = "default_health_pool")]
    pub health_pool_size: usize,
    /// Seconds to wait for a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    /// Server-side statement timeout in milliseconds.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_ms: u64,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &mask_url_password(&self.url))
            .field("password_file", &self.password_file)
            .field("pool_size", &self.pool_size)
            .field("health_pool_size", &self.health_pool_size)
            .finish()
    }
}

/// Replaces the password of a URL-form connection string with `***`.
pub fn mask_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => raw.to_owned(),
        Err(_) if raw.contains("password") => "<connection string with password>".to_owned(),
        Err(_) => raw.to_owned(),
    }
}

impl DatabaseConfig {
    /// Validates the URL and pool sizes; an inline password is refused outside dev mode.
    pub fn validate(&self, dev_mode: bool, problems: &mut Problems) {
        match tokio_postgres::Config::from_str(&self.url) {
            Ok(c) => {
                if c.get_password().is_some() && !dev_mode {
                    problems.push(
                        "database.url: contains a password; put it in a file and set database.password_file",
                    );
                }
                if c.get_dbname().is_none() {
                    problems.push("database.url: names no database");
                }
            }
            Err(e) => problems.push(format!(
                "database.url: not a PostgreSQL connection string ({e})"
            )),
        }
        if let Some(p) = &self.password_file {
            if let Err(e) = secret::read(&SecretSource::File(p.clone()), 1) {
                problems.push(format!("database.password_file: {e}"));
            }
        }
        if !(1..=512).contains(&self.pool_size) {
            problems.push("database.pool_size: must be between 1 and 512");
        }
        if !(1..=8).contains(&self.health_pool_size) {
            problems.push("database.health_pool_size: must be between 1 and 8");
        }
        if self.connect_timeout_seconds == 0 {
            problems.push("database.connect_timeout_seconds: must be at least 1");
        }
    }

    /// Settings for a bare connection URL (a command line's `--database-url`), every other key
    /// at its default, checked as a config file's outside dev mode: a password inside the URL
    /// is refused, since it would show in `ps`.
    pub fn from_url(url: &str) -> Result<DatabaseConfig, Vec<String>> {
        let cfg = DatabaseConfig {
            url: url.to_owned(),
            password_file: None,
            pool_size: default_pool(),
            health_pool_size: default_health_pool(),
            connect_timeout_seconds: default_connect_timeout(),
            statement_timeout_ms: default_statement_timeout(),
        };
        let mut problems = Problems::default();
        cfg.validate(false, &mut problems);
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(problems.0)
        }
    }

    /// The password, read from its file, if one is configured or passed as a credential.
    pub fn password(&self) -> Result<Option<SecretString>, secret::SecretError> {
        match secret::locate(self.password_file.as_deref(), "database-password") {
            Some(src) => secret::read(&src, 1).map(Some),
            None => Ok(None),
        }
    }
}

/// Output format of log lines on stdout (journald is used automatically under systemd).
#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, for terminals.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

fn default_filter() -> String {
    "info".to_owned()
}

/// `[log]`: verbosity and format.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Format on stdout.
    #[serde(default)]
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info,state_hub=debug`; `RUST_LOG` wins when set.
    #[serde(default = "default_filter")]
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: default_filter(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        server: ServerConfig,
        #[serde(default)]
        dev_mode: bool,
    }

    fn write(text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("hub-cfg-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn env_overrides_nested_keys_with_typed_values() {
        let p = write("[server]\npublic_url = \"https://hub.example.org\"\n");
        let env = vec![
            ("HUB_SERVER__LISTEN".to_owned(), "0.0.0.0:9000".to_owned()),
            ("HUB_SERVER__BODY_LIMIT_BYTES".to_owned(), "4096".to_owned()),
            ("HUB_DEV_MODE".to_owned(), "true".to_owned()),
            ("HUB_TEST_DATABASE_URL".to_owned(), "x".to_owned()),
        ];
        let loaded: Loaded<Sample> =
            load_with_env(Some(&p), &["server", "dev_mode"], &env).unwrap();
        assert_eq!(loaded.config.server.listen.port(), 9000);
        assert_eq!(loaded.config.server.body_limit_bytes, 4096);
        assert!(loaded.config.dev_mode);
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("HUB_TEST_DATABASE_URL"));
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let p = write("[server]\npublic_url = \"https://x\"\nlisten_addr = \"1\"\n");
        let err = load_with_env::<Sample>(Some(&p), &["server"], &[])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("server"), "{err}");
        assert!(err.contains("listen_addr"), "{err}");
    }

    #[test]
    fn validation_lists_every_problem_one_per_line() {
        let p = write(
            "[server]\npublic_url = \"http://hub.example.org\"\nbody_limit_bytes = 10\nworkers = 0\n",
        );
        let s: Sample = load_with_env(Some(&p), &["server"], &[]).unwrap().config;
        let mut problems = Problems::default();
        s.server.validate(false, &mut problems);
        let text = problems.into_result().unwrap_err().to_string();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("plain http"));
        assert!(text.contains("body_limit_bytes"));
        assert!(text.contains("workers"));
    }

    #[test]
    fn database_password_is_masked_and_refused_inline() {
        let db = DatabaseConfig {
            url: "postgres://hub:hunter2hunter2@db.internal/state".to_owned(),
            password_file: None,
            pool_size: 4,
            health_pool_size: 1,
            connect_timeout_seconds: 5,
            statement_timeout_ms: 1000,
        };
        assert!(!format!("{db:?}").contains("hunter2"));
        let mut problems = Problems::default();
        db.validate(false, &mut problems);
        assert!(problems.lines()[0].contains("password_file"));
    }
}
