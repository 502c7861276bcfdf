//! `[nats]`: where the journal fan-out publishes, and with which credentials.
//!
//! Every credential is a file: a `.creds` file (JWT + NKey seed), an NKey seed, or a user's
//! password. Unset, the systemd credentials `nats-creds` and `nats-password` are looked up in
//! `$CREDENTIALS_DIRECTORY`, so the NixOS module passes them with `LoadCredential=`.

use super::subject;
use hub_core::config::Problems;
use hub_core::secret::{self, SecretSource};
use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// systemd credential holding a NATS `.creds` file.
pub const CREDS_CREDENTIAL: &str = "nats-creds";
/// systemd credential holding the password of `nats.user`.
pub const PASSWORD_CREDENTIAL: &str = "nats-password";

fn default_stream() -> String {
    "STATEHUB".to_owned()
}
fn default_prefix() -> String {
    "org.statehub".to_owned()
}
fn default_duplicate_window() -> u64 {
    120
}
fn default_max_in_flight() -> usize {
    256
}

/// `[nats]`. No `Debug` derive: it names credential files, and a hand-written one shows only
/// which kind of credential is configured.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Publish every journal event to JetStream.
    #[serde(default)]
    pub enabled: bool,
    /// Server URL, `nats://host:4222` or `tls://host:4222`.
    #[serde(default)]
    pub url: Option<String>,
    /// More server URLs (a cluster); tried together with `url`.
    #[serde(default)]
    pub urls: Vec<String>,
    /// JetStream stream the hub creates or checks at start.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Subjects are `<subject_prefix>.<noun>.<verb>`; the stream captures `<subject_prefix>.>`.
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// NATS `.creds` file (user JWT and NKey seed); else the credential `nats-creds`.
    #[serde(default)]
    pub creds_file: Option<PathBuf>,
    /// File holding a user NKey seed (`SU…`).
    #[serde(default)]
    pub nkey_seed_file: Option<PathBuf>,
    /// User name for user/password authentication.
    #[serde(default)]
    pub user: Option<String>,
    /// File holding that user's password; else the credential `nats-password`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// CA (PEM) the server's certificate is checked against, for a private CA.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Refuse a connection without TLS.
    #[serde(default)]
    pub require_tls: bool,
    /// The stream's de-duplication window: a re-published event within it is stored once.
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window_seconds: u64,
    /// Events published and not yet acknowledged, at most.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: None,
            urls: Vec::new(),
            stream: default_stream(),
            subject_prefix: default_prefix(),
            creds_file: None,
            nkey_seed_file: None,
            user: None,
            password_file: None,
            tls_ca_file: None,
            require_tls: false,
            duplicate_window_seconds: default_duplicate_window(),
            max_in_flight: default_max_in_flight(),
        }
    }
}

impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConfig")
            .field("enabled", &self.enabled)
            .field("servers", &self.servers())
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("auth", &self.auth_kind())
            .field("require_tls", &self.require_tls)
            .field("duplicate_window_seconds", &self.duplicate_window_seconds)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

/// How the hub authenticates to NATS, with the secret already read.
pub enum NatsAuth {
    /// No credentials (a loopback server without accounts).
    None,
    /// The text of a `.creds` file.
    Creds(SecretString),
    /// A user NKey seed.
    NKey(SecretString),
    /// User and password.
    UserPassword(String, SecretString),
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NatsAuth::None => "none",
            NatsAuth::Creds(_) => "creds(***)",
            NatsAuth::NKey(_) => "nkey(***)",
            NatsAuth::UserPassword(..) => "user-password(***)",
        })
    }
}

/// A credential that cannot be used; names the key and the file, never the content.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file cannot be read or is empty.
    #[error("nats.{key}: {source}")]
    Unreadable {
        /// Config key.
        key: &'static str,
        /// Why.
        source: secret::SecretError,
    },
    /// The file is not what the key says it is.
    #[error("nats.{key}: {source_name} {why}")]
    Malformed {
        /// Config key.
        key: &'static str,
        /// Which file.
        source_name: SecretSource,
        /// What is wrong with it (never its content).
        why: &'static str,
    },
    /// Two kinds of credential are configured.
    #[error("nats: set only one of creds_file, nkey_seed_file and user (+ password_file)")]
    Ambiguous,
    /// A user without a password.
    #[error(
        "nats.password_file: nats.user is set but no password is configured (password_file or \
         the systemd credential `nats-password`)"
    )]
    MissingPassword,
    /// A password without a user.
    #[error("nats.user: password_file is set but no user")]
    MissingUser,
}

impl NatsConfig {
    /// Every configured server URL, `url` first.
    pub fn servers(&self) -> Vec<String> {
        self.url.iter().chain(self.urls.iter()).cloned().collect()
    }

    /// The stream's duplicate window.
    pub fn duplicate_window(&self) -> Duration {
        Duration::from_secs(self.duplicate_window_seconds)
    }

    fn auth_kind(&self) -> &'static str {
        match self.auth_sources() {
            Ok(Sources::None) => "none",
            Ok(Sources::Creds(_)) => "creds",
            Ok(Sources::NKey(_)) => "nkey",
            Ok(Sources::UserPassword(..)) => "user-password",
            Err(_) => "invalid",
        }
    }

    fn auth_sources(&self) -> Result<Sources, AuthError> {
        let explicit = [
            self.creds_file.is_some(),
            self.nkey_seed_file.is_some(),
            self.user.is_some(),
        ];
        if explicit.iter().filter(|x| **x).count() > 1 {
            return Err(AuthError::Ambiguous);
        }
        if let Some(p) = &self.creds_file {
            return Ok(Sources::Creds(SecretSource::File(p.clone())));
        }
        if let Some(p) = &self.nkey_seed_file {
            return Ok(Sources::NKey(SecretSource::File(p.clone())));
        }
        if let Some(user) = &self.user {
            let pw = secret::locate(self.password_file.as_deref(), PASSWORD_CREDENTIAL)
                .ok_or(AuthError::MissingPassword)?;
            return Ok(Sources::UserPassword(user.clone(), pw));
        }
        if self.password_file.is_some() {
            return Err(AuthError::MissingUser);
        }
        Ok(match secret::locate(None, CREDS_CREDENTIAL) {
            Some(src) => Sources::Creds(src),
            None => Sources::None,
        })
    }

    /// Reads the configured credential.
    pub fn auth(&self) -> Result<NatsAuth, AuthError> {
        let read = |key: &'static str, src: &SecretSource| {
            secret::read(src, 1).map_err(|source| AuthError::Unreadable { key, source })
        };
        Ok(match self.auth_sources()? {
            Sources::None => NatsAuth::None,
            Sources::Creds(src) => {
                let text = read("creds_file", &src)?;
                let t = secrecy::ExposeSecret::expose_secret(&text);
                if !(t.contains("BEGIN NATS USER JWT") && t.contains("BEGIN USER NKEY SEED")) {
                    return Err(AuthError::Malformed {
                        key: "creds_file",
                        source_name: src,
                        why: "is not a NATS .creds file (it needs the user JWT and the NKey seed \
                              blocks that `nsc generate creds` writes)",
                    });
                }
                NatsAuth::Creds(text)
            }
            Sources::NKey(src) => {
                let seed = read("nkey_seed_file", &src)?;
                let s = secrecy::ExposeSecret::expose_secret(&seed);
                if !(s.starts_with("SU") && s.len() == 58) {
                    return Err(AuthError::Malformed {
                        key: "nkey_seed_file",
                        source_name: src,
                        why: "does not hold a user NKey seed (58 characters starting with SU)",
                    });
                }
                NatsAuth::NKey(seed)
            }
            Sources::UserPassword(user, src) => {
                NatsAuth::UserPassword(user, read("password_file", &src)?)
            }
        })
    }

    /// Checks everything that can be checked without connecting; only when enabled.
    pub fn validate(&self, dev_mode: bool, p: &mut Problems) {
        if !self.enabled {
            return;
        }
        let servers = self.servers();
        if servers.is_empty() {
            p.push(
                "nats.url: [nats] enabled = true needs the server's URL, e.g. url = \
                 \"nats://127.0.0.1:4222\"",
            );
        }
        for raw in &servers {
            self.validate_url(raw, dev_mode, p);
        }
        if let Err(e) = subject::check_stream_name(&self.stream) {
            p.push(format!("nats.stream: {e}"));
        }
        if let Err(e) = subject::check_prefix(&self.subject_prefix) {
            p.push(format!("nats.subject_prefix: {e}"));
        }
        if let Err(e) = self.auth() {
            p.push(e.to_string());
        }
        if let Some(ca) = &self.tls_ca_file {
            if let Err(e) = std::fs::metadata(ca) {
                p.push(format!(
                    "nats.tls_ca_file: cannot read {}: {e}",
                    ca.display()
                ));
            }
        }
        if !(1..=7 * 86_400).contains(&self.duplicate_window_seconds) {
            p.push("nats.duplicate_window_seconds: must be between 1 and 604800");
        }
        if !(1..=65_536).contains(&self.max_in_flight) {
            p.push("nats.max_in_flight: must be between 1 and 65536");
        }
    }

    fn validate_url(&self, raw: &str, dev_mode: bool, p: &mut Problems) {
        let u = match url::Url::parse(raw) {
            Ok(u) => u,
            Err(e) => {
                p.push(format!("nats.url: `{raw}` is not a URL: {e}"));
                return;
            }
        };
        let shown = hub_core::config::mask_url_password(raw);
        if !matches!(u.scheme(), "nats" | "tls") {
            p.push(format!(
                "nats.url: scheme `{}` of {shown} is not nats:// or tls://",
                u.scheme()
            ));
            return;
        }
        if u.host().is_none() {
            p.push(format!("nats.url: {shown} names no host"));
        }
        if !u.username().is_empty() || u.password().is_some() {
            // A user or token in the URL would sit in the config file and the Nix store.
            p.push(format!(
                "nats.url: {shown} carries credentials; use creds_file, nkey_seed_file or user + \
                 password_file"
            ));
        }
        let tls = u.scheme() == "tls" || self.require_tls;
        if !tls && !dev_mode && !is_loopback(&u) {
            p.push(format!(
                "nats.url: {shown} is plain nats:// to a remote host; use tls:// or require_tls = \
                 true (plain only on loopback or with dev_mode = true)"
            ));
        }
    }
}

/// `localhost` or a loopback address. `nats://` is not a scheme the URL standard knows, so its
/// host arrives as an opaque name, never as a parsed address.
fn is_loopback(u: &url::Url) -> bool {
    let host = u.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

enum Sources {
    None,
    Creds(SecretSource),
    NKey(SecretSource),
    UserPassword(String, SecretSource),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled(extra: &str) -> NatsConfig {
        toml::from_str(&format!("enabled = true\n{extra}")).unwrap()
    }

    fn problems(cfg: &NatsConfig, dev: bool) -> Vec<String> {
        let mut p = Problems::default();
        cfg.validate(dev, &mut p);
        p.lines().to_vec()
    }

    #[test]
    fn disabled_needs_nothing_and_enabled_needs_a_url() {
        assert!(problems(&NatsConfig::default(), false).is_empty());
        let p = problems(&enabled(""), false);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("nats.url:") && p[0].contains("enabled = true"));
    }

    #[test]
    fn urls_must_be_nats_without_credentials_and_tls_off_loopback() {
        let p = problems(
            &enabled(
                r#"url = "http://127.0.0.1:4222"
                   urls = ["nats://user:hunter2hunter2@127.0.0.1:4222", "nats://nats.example.org:4222"]"#,
            ),
            false,
        );
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("not nats:// or tls://"));
        assert!(p[1].contains("carries credentials"));
        assert!(!p.iter().any(|l| l.contains("hunter2")), "{p:?}");
        assert!(p[2].contains("plain nats:// to a remote host"));
        assert!(problems(&enabled(r#"url = "tls://nats.example.org:4222""#), false).is_empty());
        assert!(problems(&enabled(r#"url = "nats://nats.example.org:4222""#), true).is_empty());
    }

    #[test]
    fn credential_files_are_read_and_never_printed() {
        let dir = std::env::temp_dir().join(format!("hub-nats-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.creds");
        let cfg = enabled(&format!(
            "url = \"nats://127.0.0.1:4222\"\ncreds_file = \"{}\"",
            missing.display()
        ));
        let p = problems(&cfg, false);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("nats.creds_file:") && p[0].contains("missing.creds"));

        let seed = dir.join("seed");
        std::fs::write(&seed, "not-a-seed-but-secret-text").unwrap();
        let cfg = enabled(&format!(
            "url = \"nats://127.0.0.1:4222\"\nnkey_seed_file = \"{}\"",
            seed.display()
        ));
        let p = problems(&cfg, false);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("user NKey seed") && !p[0].contains("secret-text"));

        let cfg = enabled("url = \"nats://127.0.0.1:4222\"\nuser = \"hub\"");
        let p = problems(&cfg, false);
        assert!(p[0].contains("no password is configured"), "{p:?}");

        let pw = dir.join("pw");
        std::fs::write(&pw, "correct-horse-battery\n").unwrap();
        let cfg = enabled(&format!(
            "url = \"nats://127.0.0.1:4222\"\nuser = \"hub\"\npassword_file = \"{}\"",
            pw.display()
        ));
        assert!(problems(&cfg, false).is_empty());
        let auth = cfg.auth().unwrap();
        assert!(matches!(&auth, NatsAuth::UserPassword(u, _) if u == "hub"));
        assert!(!format!("{auth:?} {cfg:?}").contains("horse"));

        let cfg = enabled(&format!(
            "url = \"nats://127.0.0.1:4222\"\nuser = \"hub\"\npassword_file = \"{}\"\nnkey_seed_file = \"{}\"",
            pw.display(),
            seed.display()
        ));
        assert!(problems(&cfg, false)[0].contains("only one of"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn names_and_limits_are_checked() {
        let cfg = enabled(
            r#"url = "nats://127.0.0.1:4222"
               stream = "STATE.HUB"
               subject_prefix = "org.*"
               duplicate_window_seconds = 0
               max_in_flight = 0"#,
        );
        let p = problems(&cfg, false);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].starts_with("nats.stream:"));
        assert!(p[1].starts_with("nats.subject_prefix:"));
        assert!(p[2].starts_with("nats.duplicate_window_seconds:"));
        assert!(p[3].starts_with("nats.max_in_flight:"));
    }
}
