//! `[identity.oidc]`: which provider, which client, and how patient to be with it.

use crate::config::{is_loopback_host, Problems};
use crate::secret::{self, SecretError, SecretSource};
use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;

/// The systemd credential looked up when `client_secret_file` is not set.
pub const CLIENT_SECRET_CREDENTIAL: &str = "oidc-client-secret";
/// Shortest client secret accepted; Authelia's generated secrets are far longer.
pub const MIN_CLIENT_SECRET_LEN: usize = 16;

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email", "groups"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}
fn default_groups_claim() -> String {
    "groups".to_owned()
}
fn default_discovery_ttl() -> u64 {
    3600
}
fn default_timeout() -> u64 {
    10
}

/// `[identity.oidc]` in a hub's config. It holds only the path of the client secret, so its
/// `Debug` cannot print the secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer, e.g. `https://auth.example.com`.
    pub issuer: url::Url,
    /// This hub's client id at the provider.
    pub client_id: String,
    /// File holding the client secret; else the systemd credential `oidc-client-secret`.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Where the provider sends the browser back, e.g. `https://hub.example.com/auth/callback`.
    pub redirect_url: url::Url,
    /// Scopes requested; must include `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Extra PEM root certificate(s) trusted for the provider's TLS.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The claim holding the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Seconds discovery and the JWKS are cached.
    #[serde(default = "default_discovery_ttl")]
    pub discovery_ttl_seconds: u64,
    /// Seconds any single request to the provider may take.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

impl OidcConfig {
    /// Pushes one line per problem: plain-http issuer or redirect unless dev mode and a loopback
    /// host, issuer with query or fragment, empty client id, scopes without `openid`, missing or
    /// short client secret, unreadable `ca_file`, zero timeouts.
    pub fn validate(&self, dev_mode: bool, p: &mut Problems) {
        check_url("identity.oidc.issuer", &self.issuer, dev_mode, p);
        if self.issuer.query().is_some() || self.issuer.fragment().is_some() {
            p.push("identity.oidc.issuer: must not have a query or fragment");
        }
        check_url(
            "identity.oidc.redirect_url",
            &self.redirect_url,
            dev_mode,
            p,
        );
        if self.redirect_url.fragment().is_some() {
            p.push("identity.oidc.redirect_url: must not have a fragment");
        }
        if self.client_id.trim().is_empty() {
            p.push("identity.oidc.client_id: must not be empty");
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            p.push("identity.oidc.scopes: must include \"openid\"");
        }
        if self.scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
            p.push("identity.oidc.scopes: a scope is empty or contains a space");
        }
        match secret::locate(self.client_secret_file.as_deref(), CLIENT_SECRET_CREDENTIAL) {
            None => p.push(format!(
                "identity.oidc.client_secret_file: not set, and no systemd credential `{CLIENT_SECRET_CREDENTIAL}` was passed"
            )),
            Some(src) => {
                if let Err(e) = secret::read(&src, MIN_CLIENT_SECRET_LEN) {
                    p.push(format!("identity.oidc.client_secret_file: {e}"));
                }
            }
        }
        if let Some(path) = &self.ca_file {
            if let Err(e) = super::client::read_ca_file(path) {
                p.push(format!("identity.oidc.ca_file: {e}"));
            }
        }
        if self.groups_claim.trim().is_empty() {
            p.push("identity.oidc.groups_claim: must not be empty");
        }
        if self.discovery_ttl_seconds == 0 {
            p.push("identity.oidc.discovery_ttl_seconds: must be at least 1");
        }
        if self.timeout_seconds == 0 {
            p.push("identity.oidc.timeout_seconds: must be at least 1");
        }
    }

    /// Reads the client secret from `client_secret_file` or the `oidc-client-secret` credential.
    pub fn client_secret(&self) -> Result<SecretString, SecretError> {
        let Some(source) =
            secret::locate(self.client_secret_file.as_deref(), CLIENT_SECRET_CREDENTIAL)
        else {
            return Err(SecretError::Unreadable {
                source_name: SecretSource::Credential(PathBuf::from(CLIENT_SECRET_CREDENTIAL)),
                error: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "client_secret_file is not set and no such systemd credential was passed",
                ),
            });
        };
        secret::read(&source, MIN_CLIENT_SECRET_LEN)
    }
}

/// Plain http leaks codes and tokens on the wire, so it is only for a developer's own machine.
fn check_url(key: &str, u: &url::Url, dev_mode: bool, p: &mut Problems) {
    match u.scheme() {
        "https" => {}
        "http" if dev_mode && is_loopback_host(u) => {}
        "http" => p.push(format!(
            "{key}: plain http ({u}) is only allowed with dev_mode = true and a loopback host"
        )),
        other => p.push(format!("{key}: scheme `{other}` is not https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("hub-oidc-cfg-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn parse(dir: &TempDir, extra: &str) -> OidcConfig {
        let secret = dir.write("secret", "a-long-enough-client-secret-0123\n");
        let text = format!(
            "issuer = \"https://auth.example.com\"\nclient_id = \"state-hub\"\nredirect_url = \"https://hub.example.com/auth/callback\"\nclient_secret_file = \"{}\"\n{extra}",
            secret.display()
        );
        toml::from_str(&text).unwrap()
    }

    fn problems(cfg: &OidcConfig, dev_mode: bool) -> Vec<String> {
        let mut p = Problems::default();
        cfg.validate(dev_mode, &mut p);
        p.lines().to_vec()
    }

    #[test]
    fn defaults_are_authelia_friendly_and_valid() {
        let dir = TempDir::new();
        let cfg = parse(&dir, "");
        assert_eq!(cfg.scopes, ["openid", "profile", "email", "groups"]);
        assert_eq!(cfg.groups_claim, "groups");
        assert_eq!(cfg.discovery_ttl_seconds, 3600);
        assert_eq!(cfg.timeout_seconds, 10);
        assert!(cfg.ca_file.is_none());
        assert!(problems(&cfg, false).is_empty());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = "issuer = \"https://a.example\"\nclient_id = \"x\"\nredirect_url = \"https://b.example/cb\"\nclient_secret = \"inline\"\n";
        let err = toml::from_str::<OidcConfig>(text)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("client_secret"), "{err}");
    }

    #[test]
    fn plain_http_needs_dev_mode_and_loopback() {
        let dir = TempDir::new();
        let mut cfg = parse(&dir, "");
        cfg.issuer = url::Url::parse("http://127.0.0.1:9091").unwrap();
        cfg.redirect_url = url::Url::parse("http://localhost:8080/auth/callback").unwrap();
        assert!(problems(&cfg, true).is_empty());
        let lines = problems(&cfg, false);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("identity.oidc.issuer: plain http"));
        assert!(lines[1].starts_with("identity.oidc.redirect_url: plain http"));

        cfg.issuer = url::Url::parse("http://auth.example.com").unwrap();
        let lines = problems(&cfg, true);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("identity.oidc.issuer: plain http"));
    }

    #[test]
    fn every_problem_gets_its_own_line() {
        let dir = TempDir::new();
        let short = dir.write("short", "too-short");
        let ca = dir.write("ca.pem", "not a certificate");
        let mut cfg = parse(&dir, "");
        cfg.issuer = url::Url::parse("https://auth.example.com/?tenant=x#frag").unwrap();
        cfg.client_id = " ".to_owned();
        cfg.scopes = vec!["profile".to_owned()];
        cfg.client_secret_file = Some(short);
        cfg.ca_file = Some(ca);
        cfg.discovery_ttl_seconds = 0;
        cfg.timeout_seconds = 0;
        let lines = problems(&cfg, false);
        let expected = [
            "identity.oidc.issuer: must not have a query or fragment",
            "identity.oidc.client_id: must not be empty",
            "identity.oidc.scopes: must include \"openid\"",
            "identity.oidc.client_secret_file: secret in file",
            "identity.oidc.ca_file:",
            "identity.oidc.discovery_ttl_seconds: must be at least 1",
            "identity.oidc.timeout_seconds: must be at least 1",
        ];
        assert_eq!(lines.len(), expected.len(), "{lines:#?}");
        for (line, start) in lines.iter().zip(expected) {
            assert!(
                line.starts_with(start),
                "{line:?} should start with {start:?}"
            );
        }
        assert!(lines[3].contains("too short"), "{}", lines[3]);
        assert!(
            !lines[3].contains("too-short"),
            "the secret leaked: {}",
            lines[3]
        );
    }

    #[test]
    fn missing_secret_and_missing_ca_file_are_named() {
        let dir = TempDir::new();
        let mut cfg = parse(&dir, "");
        cfg.client_secret_file = Some(dir.0.join("absent"));
        cfg.ca_file = Some(dir.0.join("absent-ca.pem"));
        let lines = problems(&cfg, false);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("cannot read secret"), "{}", lines[0]);
        assert!(lines[1].contains("absent-ca.pem"), "{}", lines[1]);
    }

    #[test]
    fn client_secret_is_read_and_not_printed() {
        let dir = TempDir::new();
        let cfg = parse(&dir, "");
        let secret = cfg.client_secret().unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&secret),
            "a-long-enough-client-secret-0123"
        );
        assert!(!format!("{secret:?}").contains("a-long-enough"));
        assert!(!format!("{cfg:?}").contains("a-long-enough"));
    }
}
