//! The LDAP directory (LLDAP layout): user and group look-ups, group sync and break-glass binds.
//!
//! Every public call is bounded by `timeout_seconds` as a whole: connecting, TLS, binding,
//! searching and the one retry. Look-ups share one connection bound as the service account
//! (LLDAP hashes every bind with Argon2, so a bind per picker keystroke would be felt); it is
//! dropped and re-opened when it is found closed or fails at the transport level, so a directory
//! restart costs at most one retried search, never a permanently broken client. Break-glass
//! binds use a connection of their own that is closed right after.

mod config;
mod dn;

pub use config::{LdapConfig, BIND_PASSWORD_CREDENTIAL};

use dn::Dn;
use ldap3::{
    ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry,
    SearchOptions, SearchResult,
};
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

const RC_TIME_LIMIT_EXCEEDED: u32 = 3;
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
const RC_NO_SUCH_OBJECT: u32 = 32;
const RC_INAPPROPRIATE_AUTHENTICATION: u32 = 48;
const RC_INVALID_CREDENTIALS: u32 = 49;
const RC_INSUFFICIENT_ACCESS: u32 = 50;
const RC_BUSY: u32 = 51;
const RC_UNAVAILABLE: u32 = 52;

/// Most entries one search asks for; a management plane's directory is far smaller, and a
/// runaway filter must not pull a whole large directory into memory.
const SEARCH_SIZE_LIMIT: i32 = 1000;
/// Above this many users without `memberOf`, one listing of all groups is cheaper than a filter
/// with a clause per user.
const MAX_MEMBER_CLAUSES: usize = 50;

const USER_ATTRS: [&str; 5] = ["uid", "cn", "mail", "entryUUID", "memberOf"];
const GROUP_ATTRS: [&str; 3] = ["cn", "member", "uniqueMember"];
const USER_FILTER: &str = "(objectClass=person)";
const GROUP_FILTER: &str = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))";

/// A person in the directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DirectoryUser {
    /// The user name (`uid`).
    pub uid: String,
    /// The entry's DN.
    pub dn: String,
    /// `cn`, which LLDAP fills with the display name.
    pub display_name: Option<String>,
    /// `mail`.
    pub email: Option<String>,
    /// `entryUUID`, stable across renames.
    pub entry_uuid: Option<String>,
    /// Names (`cn`) of the groups the user belongs to, sorted.
    pub groups: Vec<String>,
}

/// A group in the directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DirectoryGroup {
    /// The group name (`cn`).
    pub name: String,
    /// The entry's DN.
    pub dn: String,
    /// The members' user names, sorted; members outside the users subtree are left out.
    pub members: Vec<String>,
}

/// Why a directory call failed. `Display` is a short message that never contains a password.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No connection could be made or kept (refused, reset, DNS, server busy or unavailable).
    #[error("directory unreachable: {0}")]
    Unreachable(String),
    /// The directory did not answer within `timeout_seconds`.
    #[error("directory did not answer in time")]
    Timeout,
    /// The directory refused the service account's bind: wrong `bind_dn` or password.
    #[error("directory refused the service account's bind; check identity.ldap.bind_dn and its password")]
    ServiceBindRefused,
    /// The directory answered, but not as expected.
    #[error("directory error: {0}")]
    Protocol(String),
    /// The TLS handshake failed, typically an untrusted or mismatched certificate.
    #[error("directory TLS: {0}")]
    Tls(String),
    /// The configuration cannot work.
    #[error("directory configuration: {0}")]
    Config(String),
}

impl DirectoryError {
    /// True when the directory is down or unreachable, as opposed to misconfigured or misbehaving:
    /// callers show "directory unavailable" and try again later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Timeout)
    }
}

/// The LDAP directory client. `Send + Sync`; share it in an `Arc`.
pub struct Directory {
    url: url::Url,
    settings: LdapConnSettings,
    bind_dn: String,
    bind_password: SecretString,
    users_base: String,
    users_base_dn: Dn,
    groups_base: String,
    groups_base_dn: Dn,
    timeout: Duration,
    /// The shared service-bound connection; never held across an `.await`.
    service: Mutex<Option<Ldap>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.url.as_str())
            .field("bind_dn", &self.bind_dn)
            .field("users_base", &self.users_base)
            .field("groups_base", &self.groups_base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A user as read, plus whether the server sent `memberOf` (else groups come from a search).
struct Found {
    user: DirectoryUser,
    has_member_of: bool,
}

impl Directory {
    /// Checks the config and prepares TLS; touches no network.
    pub fn new(cfg: &LdapConfig, bind_password: SecretString) -> Result<Self, DirectoryError> {
        let problems = cfg.structural_problems();
        if !problems.is_empty() {
            return Err(DirectoryError::Config(problems.join("; ")));
        }
        // An empty simple bind is an anonymous bind that many servers accept.
        if bind_password.expose_secret().is_empty() {
            return Err(DirectoryError::Config(
                "the service account's password is empty".to_owned(),
            ));
        }
        let parse = |what: &str, text: &str| {
            Dn::parse(text).map_err(|e| DirectoryError::Config(format!("{what} `{text}`: {e}")))
        };
        let users_base = cfg.users_base();
        let groups_base = cfg.groups_base();
        let users_base_dn = parse("users base", &users_base)?;
        let groups_base_dn = parse("groups base", &groups_base)?;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(cfg.timeout())
            .set_starttls(cfg.starttls);
        if let Some(path) = &cfg.ca_file {
            let roots = config::load_ca(path)
                .map_err(|e| DirectoryError::Config(format!("ca_file: {e}")))?;
            // An explicit provider: `ClientConfig::builder()` panics when the dependency tree
            // enables more than one rustls crypto provider.
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| DirectoryError::Config(format!("TLS: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            settings = settings.set_config(Arc::new(tls));
        }
        Ok(Self {
            url: cfg.url.clone(),
            settings,
            bind_dn: cfg.bind_dn(),
            bind_password,
            users_base,
            users_base_dn,
            groups_base,
            groups_base_dn,
            timeout: cfg.timeout(),
            service: Mutex::new(None),
        })
    }

    /// The user with this `uid`, or `None` when there is none.
    pub async fn find_user(&self, uid: &str) -> Result<Option<DirectoryUser>, DirectoryError> {
        if uid.is_empty() {
            return Ok(None);
        }
        self.bounded(self.find_user_inner(uid)).await
    }

    /// Users whose uid, display name or email starts with `prefix` (case-insensitive), at most
    /// `limit`, sorted by uid — for pickers. An empty prefix lists users from the start.
    pub async fn search_users(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<DirectoryUser>, DirectoryError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.bounded(async {
            let prefix = prefix.trim();
            let entries = self
                .search(
                    &self.users_base,
                    Scope::Subtree,
                    &user_prefix_filter(prefix),
                    &USER_ATTRS,
                )
                .await?;
            // The server's matching is only a pre-selection: LLDAP turns substrings into SQL
            // LIKE patterns, where `_` and `%` in the input would match anything.
            let needle = prefix.to_lowercase();
            let mut found: Vec<Found> = entries
                .into_iter()
                .filter_map(|e| self.user_from(e))
                .filter(|f| f.user.starts_with(&needle))
                .collect();
            found.sort_by(|a, b| a.user.uid.cmp(&b.user.uid));
            found.truncate(limit);
            self.complete_groups(&mut found).await?;
            Ok(found.into_iter().map(|f| f.user).collect())
        })
        .await
    }

    /// Every group with its members, sorted by name.
    pub async fn list_groups(&self) -> Result<Vec<DirectoryGroup>, DirectoryError> {
        self.bounded(self.groups_matching(GROUP_FILTER)).await
    }

    /// Group names of one user (memberOf, or a `(member=<dn>)` search under groups_ou when
    /// memberOf is absent); empty for an unknown user.
    pub async fn groups_of(&self, uid: &str) -> Result<Vec<String>, DirectoryError> {
        Ok(self
            .find_user(uid)
            .await?
            .map(|u| u.groups)
            .unwrap_or_default())
    }

    /// Break-glass: binds AS the user with `password`. `Ok(Some(user))` on success, `Ok(None)`
    /// on invalid credentials (LDAP rc 49) or an unknown user.
    ///
    /// An empty password is refused before any bind (an empty simple bind is an unauthenticated
    /// bind that "succeeds" on many servers), and so is a `uid` that is not a plain user name
    /// (lowercase letters, digits, `.`, `_`, `-`). The bind uses the DN the directory returned
    /// for that uid, never one built from the input.
    pub async fn verify_password(
        &self,
        uid: &str,
        password: &SecretString,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        if password.expose_secret().is_empty() {
            tracing::debug!("break-glass bind refused before binding: empty password");
            return Ok(None);
        }
        if !dn::is_valid_uid(uid) {
            tracing::debug!("break-glass bind refused before binding: not a plain user name");
            return Ok(None);
        }
        self.bounded(async {
            let Some(user) = self.find_user_inner(uid).await? else {
                return Ok(None);
            };
            let mut ldap = self.open().await?;
            let res = ldap
                .simple_bind(&user.dn, password.expose_secret())
                .await
                .map_err(|e| self.transport_error(e))?;
            if let Err(e) = ldap.unbind().await {
                tracing::debug!(error = %e, "unbind after break-glass bind failed");
            }
            match res.rc {
                0 => Ok(Some(user)),
                RC_INVALID_CREDENTIALS => Ok(None),
                rc => Err(DirectoryError::Protocol(format!(
                    "bind as `{uid}` answered rc={rc} {}",
                    res.text
                ))),
            }
        })
        .await
    }

    /// Binds as the service account on a fresh connection and reads the users OU entry (LLDAP
    /// answers a base-scope read of the base DN itself by listing everything); for readiness
    /// and break-glass pages.
    pub async fn ping(&self) -> Result<(), DirectoryError> {
        self.bounded(async {
            let ldap = self.bind_service().await?;
            let entries = self
                .search_on(
                    ldap.clone(),
                    &self.users_base,
                    Scope::Base,
                    "(objectClass=*)",
                    &["objectClass"],
                )
                .await?;
            if entries.is_empty() {
                return Err(DirectoryError::Protocol(format!(
                    "`{}` was not returned",
                    self.users_base
                )));
            }
            self.keep_service(ldap);
            Ok(())
        })
        .await
    }

    async fn find_user_inner(&self, uid: &str) -> Result<Option<DirectoryUser>, DirectoryError> {
        let filter = format!("(&{USER_FILTER}(uid={}))", ldap_escape(uid));
        let entries = self
            .search(&self.users_base, Scope::Subtree, &filter, &USER_ATTRS)
            .await?;
        let mut found: Vec<Found> = entries
            .into_iter()
            .filter_map(|e| self.user_from(e))
            .filter(|f| f.user.uid.eq_ignore_ascii_case(uid))
            .collect();
        if found.len() > 1 {
            // Two entries claiming one name: refusing beats guessing which one may log in.
            return Err(DirectoryError::Protocol(format!(
                "{} entries have uid `{uid}`",
                found.len()
            )));
        }
        self.complete_groups(&mut found).await?;
        Ok(found.pop().map(|f| f.user))
    }

    /// Fills `groups` of users whose entry had no `memberOf` from the groups' `member` values.
    async fn complete_groups(&self, found: &mut [Found]) -> Result<(), DirectoryError> {
        let missing: Vec<&str> = found
            .iter()
            .filter(|f| !f.has_member_of)
            .map(|f| f.user.dn.as_str())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let filter = if missing.len() <= MAX_MEMBER_CLAUSES {
            let clauses: String = missing
                .iter()
                .map(|dn| {
                    let dn = ldap_escape(*dn);
                    format!("(member={dn})(uniqueMember={dn})")
                })
                .collect();
            format!("(&{GROUP_FILTER}(|{clauses}))")
        } else {
            GROUP_FILTER.to_owned()
        };
        let groups = self.groups_matching(&filter).await?;
        for f in found.iter_mut().filter(|f| !f.has_member_of) {
            f.user.groups = groups
                .iter()
                .filter(|g| {
                    g.members
                        .iter()
                        .any(|m| m.eq_ignore_ascii_case(&f.user.uid))
                })
                .map(|g| g.name.clone())
                .collect();
        }
        Ok(())
    }

    async fn groups_matching(&self, filter: &str) -> Result<Vec<DirectoryGroup>, DirectoryError> {
        let entries = self
            .search(&self.groups_base, Scope::Subtree, filter, &GROUP_ATTRS)
            .await?;
        let mut groups: Vec<DirectoryGroup> = entries
            .into_iter()
            .filter_map(|e| self.group_from(e))
            .collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    fn user_from(&self, entry: SearchEntry) -> Option<Found> {
        let uid = first_value(&entry, "uid")?;
        let member_of = values(&entry, "memberOf");
        let mut groups: Vec<String> = member_of
            .unwrap_or_default()
            .iter()
            .filter_map(|dn| self.group_name(dn))
            .collect();
        groups.sort();
        groups.dedup();
        let has_member_of = member_of.is_some();
        Some(Found {
            user: DirectoryUser {
                uid,
                display_name: first_value(&entry, "cn"),
                email: first_value(&entry, "mail"),
                entry_uuid: first_value(&entry, "entryUUID"),
                dn: entry.dn,
                groups,
            },
            has_member_of,
        })
    }

    fn group_from(&self, entry: SearchEntry) -> Option<DirectoryGroup> {
        let name = first_value(&entry, "cn").or_else(|| self.group_name(&entry.dn))?;
        let mut members: Vec<String> = ["member", "uniqueMember"]
            .iter()
            .filter_map(|attr| values(&entry, attr))
            .flatten()
            .filter_map(|dn| self.member_uid(dn))
            .collect();
        members.sort();
        members.dedup();
        Some(DirectoryGroup {
            name,
            dn: entry.dn,
            members,
        })
    }

    /// `cn` of a group DN directly under the groups base; anything else is not one of ours.
    fn group_name(&self, dn: &str) -> Option<String> {
        let dn = Dn::parse(dn).ok()?;
        dn.child_value_of("cn", &self.groups_base_dn)
            .map(str::to_owned)
    }

    /// `uid` of a user DN directly under the users base.
    fn member_uid(&self, dn: &str) -> Option<String> {
        let dn = Dn::parse(dn).ok()?;
        dn.child_value_of("uid", &self.users_base_dn)
            .map(str::to_owned)
    }

    /// Runs `op` within the time limit; a connection that timed out or broke is not reused.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, DirectoryError>>,
    ) -> Result<T, DirectoryError> {
        let result = tokio::time::timeout(self.timeout, op)
            .await
            .unwrap_or(Err(DirectoryError::Timeout));
        if let Err(e) = &result {
            if e.is_unavailable() || matches!(e, DirectoryError::Tls(_)) {
                self.forget_service();
            }
        }
        result
    }

    /// A search as the service account, retried once on a fresh connection when a reused one
    /// turns out dead (the directory restarted since it was opened).
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let (ldap, reused) = self.service().await?;
        match self.search_on(ldap, base, scope, filter, attrs).await {
            Err(e @ DirectoryError::Unreachable(_)) if reused => {
                tracing::debug!(error = %e, "cached directory connection failed; reconnecting");
                self.forget_service();
                let (ldap, _) = self.service().await?;
                self.search_on(ldap, base, scope, filter, attrs).await
            }
            other => other,
        }
    }

    async fn search_on(
        &self,
        mut ldap: Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let time_limit = i32::try_from(self.timeout.as_secs()).unwrap_or(i32::MAX);
        let options = SearchOptions::new()
            .sizelimit(SEARCH_SIZE_LIMIT)
            .timelimit(time_limit);
        let SearchResult(entries, res) = ldap
            .with_search_options(options)
            .search(base, scope, filter, attrs)
            .await
            .map_err(|e| self.transport_error(e))?;
        match res.rc {
            0 | RC_SIZE_LIMIT_EXCEEDED => {
                Ok(entries.into_iter().map(SearchEntry::construct).collect())
            }
            RC_TIME_LIMIT_EXCEEDED => Err(DirectoryError::Timeout),
            RC_NO_SUCH_OBJECT => Err(DirectoryError::Protocol(format!(
                "`{base}` does not exist; check identity.ldap.base_dn, users_ou and groups_ou"
            ))),
            RC_BUSY | RC_UNAVAILABLE => Err(DirectoryError::Unreachable(format!(
                "{}: {res}",
                self.endpoint()
            ))),
            _ => Err(DirectoryError::Protocol(format!(
                "search under `{base}`: {res}"
            ))),
        }
    }

    /// The shared service connection and whether it was reused; opens and binds one if needed.
    async fn service(&self) -> Result<(Ldap, bool), DirectoryError> {
        {
            let mut cached = self.service.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(ldap) = cached.as_mut() {
                if !ldap.is_closed() {
                    return Ok((ldap.clone(), true));
                }
            }
            *cached = None;
        }
        // Concurrent callers may each open one here; the last stored wins and the others close
        // when their handles drop, which is cheaper than making everyone wait on one connect.
        let ldap = self.bind_service().await?;
        self.keep_service(ldap.clone());
        Ok((ldap, false))
    }

    fn keep_service(&self, ldap: Ldap) {
        *self.service.lock().unwrap_or_else(PoisonError::into_inner) = Some(ldap);
    }

    fn forget_service(&self) {
        self.service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    async fn bind_service(&self) -> Result<Ldap, DirectoryError> {
        let mut ldap = self.open().await?;
        let res = ldap
            .simple_bind(&self.bind_dn, self.bind_password.expose_secret())
            .await
            .map_err(|e| self.transport_error(e))?;
        match res.rc {
            0 => Ok(ldap),
            RC_INVALID_CREDENTIALS | RC_INAPPROPRIATE_AUTHENTICATION | RC_INSUFFICIENT_ACCESS => {
                tracing::warn!(bind_dn = %self.bind_dn, rc = res.rc, "directory refused the service account's bind");
                Err(DirectoryError::ServiceBindRefused)
            }
            RC_BUSY | RC_UNAVAILABLE => Err(DirectoryError::Unreachable(format!(
                "{}: {res}",
                self.endpoint()
            ))),
            _ => Err(DirectoryError::Protocol(format!("service bind: {res}"))),
        }
    }

    /// Opens a connection (TCP, then TLS or StartTLS as configured) and starts driving it.
    async fn open(&self) -> Result<Ldap, DirectoryError> {
        let (conn, ldap) = LdapConnAsync::from_url_with_settings(self.settings.clone(), &self.url)
            .await
            .map_err(|e| match e {
                // The only LDAP result while connecting is the answer to StartTLS.
                LdapError::LdapResult { result } => {
                    DirectoryError::Tls(format!("the server refused StartTLS: {result}"))
                }
                e => self.transport_error(e),
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "directory connection ended");
            }
        });
        Ok(ldap)
    }

    fn endpoint(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    fn transport_error(&self, e: LdapError) -> DirectoryError {
        classify(&self.endpoint(), e)
    }
}

/// Maps an ldap3 error onto what a caller can act on.
fn classify(endpoint: &str, e: LdapError) -> DirectoryError {
    match e {
        LdapError::Timeout { .. } => DirectoryError::Timeout,
        LdapError::Io { source } => {
            // tokio-rustls reports handshake failures as I/O errors wrapping the rustls error.
            if let Some(tls) = source
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return tls_error(endpoint, tls);
            }
            if source.kind() == std::io::ErrorKind::TimedOut {
                return DirectoryError::Timeout;
            }
            DirectoryError::Unreachable(format!("{endpoint}: {source}"))
        }
        LdapError::Rustls { source } => tls_error(endpoint, &source),
        LdapError::DNSName { .. } => DirectoryError::Tls(format!(
            "`{endpoint}` is not a name a certificate can be checked against"
        )),
        LdapError::OpSend { .. }
        | LdapError::ResultRecv { .. }
        | LdapError::IdScrubSend { .. }
        | LdapError::MiscSend { .. }
        | LdapError::EndOfStream => {
            DirectoryError::Unreachable(format!("{endpoint}: connection lost"))
        }
        LdapError::LdapResult { result } => DirectoryError::Protocol(result.to_string()),
        other => DirectoryError::Protocol(other.to_string()),
    }
}

fn tls_error(endpoint: &str, e: &rustls::Error) -> DirectoryError {
    use rustls::CertificateError as C;
    DirectoryError::Tls(match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => format!(
            "the certificate of {endpoint} is not signed by a trusted CA; set identity.ldap.ca_file to the CA that issued it"
        ),
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            format!("the certificate of {endpoint} is not valid for that host name")
        }
        other => format!("handshake with {endpoint} failed: {other}"),
    })
}

/// The picker's pre-selection filter; the prefix is escaped, so `*`, `(`, `)` and `\` are
/// literal characters, not filter syntax.
fn user_prefix_filter(prefix: &str) -> String {
    if prefix.is_empty() {
        return USER_FILTER.to_owned();
    }
    let p = ldap_escape(prefix);
    format!("(&{USER_FILTER}(|(uid={p}*)(cn={p}*)(mail={p}*)))")
}

impl DirectoryUser {
    /// `needle` is lowercase.
    fn starts_with(&self, needle: &str) -> bool {
        let hit = |s: &str| s.to_lowercase().starts_with(needle);
        hit(&self.uid)
            || self.display_name.as_deref().is_some_and(hit)
            || self.email.as_deref().is_some_and(hit)
    }
}

/// The values of an attribute, matching its name case-insensitively (LLDAP answers
/// `entryUuid` where slapd answers `entryUUID`).
fn values<'a>(entry: &'a SearchEntry, name: &str) -> Option<&'a [String]> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// The first non-empty value of an attribute.
fn first_value(entry: &SearchEntry, name: &str) -> Option<String> {
    values(entry, name)?.iter().find(|v| !v.is_empty()).cloned()
}

#[cfg(test)]
mod tests;
