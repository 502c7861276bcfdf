//! `[capabilities]`: how a hub reaches the application cluster's capability interfaces.

use crate::config::Problems;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most retries an idempotent call may get: more only piles load on a struggling cluster.
pub const MAX_RETRIES_LIMIT: u32 = 5;

fn default_connect_timeout_ms() -> u64 {
    2_000
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_max_retries() -> u32 {
    2
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_open_seconds() -> u64 {
    30
}
fn default_max_response_bytes() -> usize {
    4 * 1024 * 1024
}

/// `[capabilities]` in a hub's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityClientConfig {
    /// Extra PEM root certificate(s) trusted for the cluster's TLS, e.g. its private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Networks the SSRF guard lets through although they are loopback, private, link-local, …
    /// (the cluster's ingress network, say). Empty by default: only public addresses.
    #[serde(default)]
    pub allow_cidrs: Vec<ipnet::IpNet>,
    /// Milliseconds to establish a TCP connection.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Milliseconds one attempt may take, connection, TLS, headers and body included.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Retries of an idempotent call after a connect error, a time-out or HTTP 502/503/504.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Consecutive failed calls after which a capability's circuit breaker opens.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// Seconds an open breaker refuses calls before it lets one trial call through.
    #[serde(default = "default_breaker_open_seconds")]
    pub breaker_open_seconds: u64,
    /// Largest response body accepted, in bytes.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

impl Default for CapabilityClientConfig {
    fn default() -> Self {
        Self {
            ca_file: None,
            allow_cidrs: Vec::new(),
            connect_timeout_ms: default_connect_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            max_retries: default_max_retries(),
            breaker_failures: default_breaker_failures(),
            breaker_open_seconds: default_breaker_open_seconds(),
            max_response_bytes: default_max_response_bytes(),
        }
    }
}

impl CapabilityClientConfig {
    /// Pushes one line per problem: unreadable `ca_file`, an allowlist entry that would switch the
    /// guard off, time-outs, retries, breaker and size limits out of range.
    pub fn validate(&self, p: &mut Problems) {
        if let Some(path) = &self.ca_file {
            if let Err(e) = read_ca_file(path) {
                p.push(format!("capabilities.ca_file: {e}"));
            }
        }
        for net in &self.allow_cidrs {
            if net.prefix_len() == 0 {
                p.push(format!(
                    "capabilities.allow_cidrs: {net} would switch the SSRF guard off; name the cluster's networks instead"
                ));
            }
        }
        if !(50..=60_000).contains(&self.connect_timeout_ms) {
            p.push("capabilities.connect_timeout_ms: must be between 50 and 60000");
        }
        if !(100..=300_000).contains(&self.request_timeout_ms) {
            p.push("capabilities.request_timeout_ms: must be between 100 and 300000");
        } else if self.request_timeout_ms < self.connect_timeout_ms {
            p.push("capabilities.request_timeout_ms: must not be shorter than connect_timeout_ms");
        }
        if self.max_retries > MAX_RETRIES_LIMIT {
            p.push(format!(
                "capabilities.max_retries: must be at most {MAX_RETRIES_LIMIT}"
            ));
        }
        if !(1..=1_000).contains(&self.breaker_failures) {
            p.push("capabilities.breaker_failures: must be between 1 and 1000");
        }
        if !(1..=3_600).contains(&self.breaker_open_seconds) {
            p.push("capabilities.breaker_open_seconds: must be between 1 and 3600");
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_response_bytes) {
            p.push("capabilities.max_response_bytes: must be between 1 KiB and 64 MiB");
        }
    }

    /// Time allowed to establish a connection.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// Time allowed for one attempt.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    /// How long an open breaker refuses calls.
    pub fn breaker_open(&self) -> Duration {
        Duration::from_secs(self.breaker_open_seconds)
    }
}

/// Reads a PEM bundle of extra root certificates; at least one certificate must be in it.
pub(super) fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{} is not a PEM certificate bundle: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(cfg: &CapabilityClientConfig) -> Vec<String> {
        let mut p = Problems::default();
        cfg.validate(&mut p);
        p.lines().to_vec()
    }

    #[test]
    fn an_empty_section_gets_the_documented_defaults() {
        let cfg: CapabilityClientConfig = toml::from_str("").unwrap();
        assert!(cfg.ca_file.is_none());
        assert!(cfg.allow_cidrs.is_empty());
        assert_eq!(cfg.connect_timeout_ms, 2_000);
        assert_eq!(cfg.request_timeout_ms, 10_000);
        assert_eq!(cfg.max_retries, 2);
        assert_eq!(cfg.breaker_failures, 5);
        assert_eq!(cfg.breaker_open_seconds, 30);
        assert_eq!(cfg.max_response_bytes, 4 * 1024 * 1024);
        assert!(problems(&cfg).is_empty(), "{:?}", problems(&cfg));
        assert!(problems(&CapabilityClientConfig::default()).is_empty());
    }

    #[test]
    fn unknown_keys_and_bad_cidrs_are_refused() {
        assert!(toml::from_str::<CapabilityClientConfig>("allow_cidr = []").is_err());
        assert!(
            toml::from_str::<CapabilityClientConfig>("allow_cidrs = [\"10.0.0.0/33\"]").is_err()
        );
        let cfg: CapabilityClientConfig =
            toml::from_str("allow_cidrs = [\"10.20.0.0/16\", \"fd00::/8\"]").unwrap();
        assert_eq!(cfg.allow_cidrs.len(), 2);
        assert!(problems(&cfg).is_empty());
    }

    #[test]
    fn every_out_of_range_value_is_named() {
        let cfg = CapabilityClientConfig {
            ca_file: Some(PathBuf::from("/nonexistent/hub/cluster-ca.pem")),
            allow_cidrs: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
            connect_timeout_ms: 0,
            request_timeout_ms: 1_000_000,
            max_retries: 6,
            breaker_failures: 0,
            breaker_open_seconds: 0,
            max_response_bytes: 10,
        };
        let found = problems(&cfg);
        for key in [
            "capabilities.ca_file: cannot read /nonexistent/hub/cluster-ca.pem",
            "capabilities.allow_cidrs: 0.0.0.0/0",
            "capabilities.allow_cidrs: ::/0",
            "capabilities.connect_timeout_ms",
            "capabilities.request_timeout_ms",
            "capabilities.max_retries",
            "capabilities.breaker_failures",
            "capabilities.breaker_open_seconds",
            "capabilities.max_response_bytes",
        ] {
            assert!(
                found.iter().any(|line| line.starts_with(key)),
                "{key} missing from {found:?}"
            );
        }
        assert_eq!(found.len(), 9, "{found:?}");

        let shorter = CapabilityClientConfig {
            connect_timeout_ms: 5_000,
            request_timeout_ms: 1_000,
            max_retries: 5,
            ..CapabilityClientConfig::default()
        };
        assert_eq!(
            problems(&shorter),
            ["capabilities.request_timeout_ms: must not be shorter than connect_timeout_ms"]
        );
    }
}
