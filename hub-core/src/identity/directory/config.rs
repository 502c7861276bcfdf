//! `[identity.ldap]`: where the directory is, how it is reached safely, and as whom.

use super::dn::Dn;
use super::DirectoryError;
use crate::config::Problems;
use crate::secret;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The systemd credential holding the service account's password when no file is configured.
pub const BIND_PASSWORD_CREDENTIAL: &str = "ldap-bind-password";

/// Upper bound of `timeout_seconds`: a picker or a login page waiting longer is broken anyway.
const MAX_TIMEOUT_SECONDS: u64 = 300;

fn default_base_dn() -> String {
    "dc=example,dc=com".to_owned()
}
fn default_users_ou() -> String {
    "ou=people".to_owned()
}
fn default_groups_ou() -> String {
    "ou=groups".to_owned()
}
fn default_timeout() -> u64 {
    5
}

/// `[identity.ldap]`: the management host's LLDAP (or any directory with LLDAP's layout).
///
/// No `Debug` derive: the URL could carry credentials, so the hand-written one masks them.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:3890` (loopback only, or with `starttls`) or `ldaps://host:6360`.
    #[serde(deserialize_with = "deserialize_url")]
    pub url: url::Url,
    /// Upgrade a plain `ldap://` connection with StartTLS before binding.
    #[serde(default)]
    pub starttls: bool,
    /// PEM file with the CA(s) that sign the directory's certificate; when set, only these are
    /// trusted (the management host's directory has a private CA, public roots add only risk).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The directory's base DN.
    #[serde(default = "default_base_dn")]
    pub base_dn: String,
    /// The service account; defaults to LLDAP's admin, `uid=admin,<users_ou>,<base_dn>`. A member of
    /// `lldap_strict_readonly` is enough and is the better choice.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// File holding the service account's password; else the systemd credential
    /// `ldap-bind-password`.
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Where users live, relative to `base_dn`.
    #[serde(default = "default_users_ou")]
    pub users_ou: String,
    /// Where groups live, relative to `base_dn`.
    #[serde(default = "default_groups_ou")]
    pub groups_ou: String,
    /// Upper bound, in seconds, on every directory operation including connecting.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn deserialize_url<'de, D: Deserializer<'de>>(d: D) -> Result<url::Url, D::Error> {
    let raw = String::deserialize(d)?;
    url::Url::parse(&raw)
        .map_err(|e| serde::de::Error::custom(format!("`{raw}` is not a URL: {e}")))
}

impl std::fmt::Debug for LdapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapConfig")
            .field("url", &crate::config::mask_url_password(self.url.as_str()))
            .field("starttls", &self.starttls)
            .field("ca_file", &self.ca_file)
            .field("base_dn", &self.base_dn)
            .field("bind_dn", &self.bind_dn())
            .field("bind_password_file", &self.bind_password_file)
            .field("users_ou", &self.users_ou)
            .field("groups_ou", &self.groups_ou)
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

impl LdapConfig {
    /// A config for `url` with every other key at its default, e.g. for tests and `configtest`.
    pub fn for_url(url: url::Url) -> Self {
        Self {
            url,
            starttls: false,
            ca_file: None,
            base_dn: default_base_dn(),
            bind_dn: None,
            bind_password_file: None,
            users_ou: default_users_ou(),
            groups_ou: default_groups_ou(),
            timeout_seconds: default_timeout(),
        }
    }

    /// One line per problem: scheme not ldap/ldaps; plain `ldap://` without StartTLS to a host
    /// that is not loopback (refused in dev mode too: it would send passwords in clear text);
    /// StartTLS with `ldaps://`; malformed DNs; missing or empty password; unreadable `ca_file`;
    /// timeout out of range.
    pub fn validate(&self, p: &mut Problems) {
        for line in self.structural_problems() {
            p.push(line);
        }
        match secret::locate(self.bind_password_file.as_deref(), BIND_PASSWORD_CREDENTIAL) {
            None => p.push(format!(
                "identity.ldap.bind_password_file: not set, and no systemd credential `{BIND_PASSWORD_CREDENTIAL}` is present"
            )),
            Some(src) => {
                if let Err(e) = secret::read(&src, 1) {
                    p.push(format!("identity.ldap.bind_password_file: {e}"));
                }
            }
        }
        if let Some(path) = &self.ca_file {
            if let Err(e) = load_ca(path) {
                p.push(format!("identity.ldap.ca_file: {e}"));
            }
        }
    }

    /// Problems visible without reading any file; [`super::Directory::new`] refuses these too.
    pub(crate) fn structural_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let scheme = self.url.scheme();
        match scheme {
            "ldap" | "ldaps" => {}
            other => p.push(format!(
                "identity.ldap.url: scheme `{other}` is not ldap or ldaps"
            )),
        }
        match self.url.host_str() {
            None | Some("") => p.push("identity.ldap.url: names no host".to_owned()),
            Some(host) => {
                if scheme == "ldap" && !self.starttls && !is_loopback(&self.url) {
                    p.push(format!(
                        "identity.ldap.url: plain ldap:// to `{host}` would send passwords in clear text; \
                         use ldaps:// or set starttls = true (plain ldap:// is only allowed to a loopback host, in dev mode too)"
                    ));
                }
            }
        }
        if !self.url.username().is_empty() || self.url.password().is_some() {
            p.push(
                "identity.ldap.url: must not carry credentials; use bind_dn and bind_password_file"
                    .to_owned(),
            );
        }
        if scheme == "ldaps" && self.starttls {
            p.push(
                "identity.ldap.starttls: cannot be combined with ldaps://, which is TLS already"
                    .to_owned(),
            );
        }
        for (key, value) in [
            ("base_dn", self.base_dn.as_str()),
            ("users_ou", self.users_ou.as_str()),
            ("groups_ou", self.groups_ou.as_str()),
        ] {
            if let Err(e) = Dn::parse(value) {
                p.push(format!("identity.ldap.{key}: `{value}` is not a DN: {e}"));
            }
        }
        if let Some(bind_dn) = &self.bind_dn {
            if let Err(e) = Dn::parse(bind_dn) {
                p.push(format!(
                    "identity.ldap.bind_dn: `{bind_dn}` is not a DN: {e}"
                ));
            }
        }
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&self.timeout_seconds) {
            p.push(format!(
                "identity.ldap.timeout_seconds: must be between 1 and {MAX_TIMEOUT_SECONDS}"
            ));
        }
        p
    }

    /// The service account's DN, with LLDAP's admin as the default.
    pub fn bind_dn(&self) -> String {
        match &self.bind_dn {
            Some(dn) => dn.clone(),
            None => format!("uid=admin,{}", self.users_base()),
        }
    }

    /// `<users_ou>,<base_dn>`.
    pub fn users_base(&self) -> String {
        format!("{},{}", self.users_ou, self.base_dn)
    }

    /// `<groups_ou>,<base_dn>`.
    pub fn groups_base(&self) -> String {
        format!("{},{}", self.groups_ou, self.base_dn)
    }

    /// The per-operation time limit.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    /// Reads the service account's password from `bind_password_file` or the systemd credential.
    pub fn bind_password(&self) -> Result<SecretString, DirectoryError> {
        let src = secret::locate(self.bind_password_file.as_deref(), BIND_PASSWORD_CREDENTIAL)
            .ok_or_else(|| {
                DirectoryError::Config(format!(
                    "no bind_password_file and no systemd credential `{BIND_PASSWORD_CREDENTIAL}`"
                ))
            })?;
        secret::read(&src, 1).map_err(|e| DirectoryError::Config(e.to_string()))
    }
}

/// True for `localhost`, 127.0.0.0/8 and ::1. `ldap:` is not a special scheme to the `url`
/// crate, so an IPv4 host arrives as a domain string and is parsed here.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Reads every certificate of a PEM file into a trust store.
pub(crate) fn load_ca(path: &Path) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{} holds an unusable certificate: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(roots)
}
