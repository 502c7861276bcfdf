//! The config loader: TOML text plus `HUB_*` overrides → typed config → validate. Never panics;
//! a refusal always carries at least one line saying why.
//!
//! The config type is assembled from hub-core's sections the way every hub assembles its own.
//! Keys naming files (`*_file`) are cleared before validation: validation reads them, and a
//! fuzzer must not make the process open arbitrary paths (a FIFO would hang it).
#![no_main]

use hub_core::capability::CapabilityClientConfig;
use hub_core::config::{load_text, ConfigError, DatabaseConfig, LogConfig, Problems, ServerConfig};
use hub_core::http::ratelimit::LimitConfig;
use hub_core::identity::IdentityConfig;
use hub_core::retention::{RetentionConfig, Window};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

const SECTIONS: &[&str] = &[
    "dev_mode",
    "server",
    "database",
    "identity",
    "limits",
    "log",
    "capabilities",
    "retention",
];

/// Unlike a hub's own type, unknown top-level sections are ignored, so either hub's example
/// config (with its hub-specific sections) seeds the corpus.
#[derive(Deserialize)]
struct HubConfig {
    #[serde(default)]
    dev_mode: bool,
    server: ServerConfig,
    database: DatabaseConfig,
    #[serde(default)]
    identity: IdentityConfig,
    #[serde(default)]
    limits: LimitConfig,
    #[serde(default)]
    #[allow(dead_code)]
    log: LogConfig,
    #[serde(default)]
    capabilities: CapabilityClientConfig,
    #[serde(default)]
    retention: RetentionConfig,
}

fn refused_with_reasons(e: &ConfigError) {
    assert!(!e.0.is_empty(), "a refusal without a reason");
    assert!(!e.to_string().is_empty());
}

// Input: the TOML text, then optionally a NUL and `NAME=VALUE` lines as the environment
// (a line `--database-url=URL` is checked as the command-line database URL instead). Empty
// TOML text loads without a file, from the environment alone.
fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml_text, env_text) = text.split_once('\0').unwrap_or((text, ""));
    let mut env: Vec<(String, String)> = Vec::new();
    for line in env_text.lines().take(32) {
        let (name, value) = line.split_once('=').unwrap_or((line, ""));
        if name == "--database-url" {
            match DatabaseConfig::from_url(value) {
                Ok(c) => assert_eq!(c.url, value),
                Err(lines) => assert!(!lines.is_empty(), "a refused URL without a reason"),
            }
        } else {
            env.push((name.to_owned(), value.to_owned()));
        }
    }
    let file = (!toml_text.is_empty()).then_some(("fuzz.toml", toml_text));

    // The generic table form: everything that is TOML loads.
    if let Err(e) = load_text::<toml_table::Table>(file, SECTIONS, &env) {
        refused_with_reasons(&e);
    }

    let loaded = match load_text::<HubConfig>(file, SECTIONS, &env) {
        Ok(l) => l,
        Err(e) => return refused_with_reasons(&e),
    };
    for w in &loaded.warnings {
        assert!(!w.is_empty());
    }
    let mut cfg = loaded.config;
    cfg.database.password_file = None;
    cfg.capabilities.ca_file = None;
    if let Some(o) = cfg.identity.oidc.as_mut() {
        o.client_secret_file = None;
        o.ca_file = None;
    }
    if let Some(l) = cfg.identity.ldap.as_mut() {
        l.bind_password_file = None;
        l.ca_file = None;
    }
    let mut p = Problems::default();
    cfg.server.validate(cfg.dev_mode, &mut p);
    cfg.database.validate(cfg.dev_mode, &mut p);
    cfg.identity.validate(cfg.dev_mode, &mut p);
    cfg.limits.validate(&mut p);
    cfg.capabilities.validate(&mut p);
    cfg.retention.validate(
        &[
            Window::Idempotency,
            Window::Observations,
            Window::OutboxDelivered,
        ],
        &mut p,
    );
    let lines = p.lines().len();
    match p.into_result() {
        Ok(()) => assert_eq!(lines, 0),
        Err(e) => {
            refused_with_reasons(&e);
            assert_eq!(e.0.len(), lines, "problems lost on the way out");
        }
    }
    let _ = cfg.server.shutdown_grace();
    let _ = cfg.server.is_tls();
    let _ = cfg.capabilities.connect_timeout();
});

/// A config type that accepts any table, to drive the loader's TOML and overlay steps alone.
mod toml_table {
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    #[serde(transparent)]
    pub struct Table(#[allow(dead_code)] pub BTreeMap<String, serde_json::Value>);
}
