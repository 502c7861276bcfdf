//! Server-side browser sessions: a random secret in a `__Host-` cookie, only its SHA-256 in
//! PostgreSQL, idle and absolute time-outs, and revocation that the very next request sees.
//!
//! Nothing is cached in memory: every cookie-borne request reads its session row, so a logout
//! elsewhere, an admin revoke or a group removal found by the directory sync ends the session on
//! every replica at once.

use crate::auth::{Principal, PrincipalKind, Role, Subject};
use crate::config::Problems;
use crate::http::problem::ApiError;
use actix_web::cookie::{time, Cookie, SameSite};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// `[identity.sessions]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// A session unused this long ends.
    #[serde(default = "default_idle")]
    pub idle_timeout_minutes: u32,
    /// A session ends this long after login, however busy.
    #[serde(default = "default_absolute")]
    pub absolute_timeout_hours: u32,
    /// Cookie name; must start with `__Host-`. Defaults to `__Host-<hub>-session`, so hubs that
    /// share a host name (cookies ignore ports) do not overwrite each other's sessions.
    #[serde(default)]
    pub cookie_name: Option<String>,
}

fn default_idle() -> u32 {
    30
}
fn default_absolute() -> u32 {
    12
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout_minutes: default_idle(),
            absolute_timeout_hours: default_absolute(),
            cookie_name: None,
        }
    }
}

impl SessionConfig {
    /// One line per problem.
    pub fn validate(&self, p: &mut Problems) {
        if !(1..=24 * 60).contains(&self.idle_timeout_minutes) {
            p.push("identity.sessions.idle_timeout_minutes: must be between 1 and 1440");
        }
        if !(1..=24 * 30).contains(&self.absolute_timeout_hours) {
            p.push("identity.sessions.absolute_timeout_hours: must be between 1 and 720");
        }
        if u64::from(self.idle_timeout_minutes) > u64::from(self.absolute_timeout_hours) * 60 {
            p.push("identity.sessions.idle_timeout_minutes: longer than the absolute time-out");
        }
        if let Some(name) = &self.cookie_name {
            if !valid_cookie_name(name) {
                p.push(
                    "identity.sessions.cookie_name: must start with `__Host-` and contain only \
                     letters, digits, `-` and `_`",
                );
            }
        }
    }

    /// The cookie name for hub `hub`.
    pub fn cookie_name(&self, hub: &str) -> String {
        self.cookie_name.clone().unwrap_or_else(|| {
            let safe: String = hub
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            format!("__Host-{safe}-session")
        })
    }

    /// Idle time-out.
    pub fn idle(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.idle_timeout_minutes))
    }

    /// Absolute time-out.
    pub fn absolute(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.absolute_timeout_hours))
    }
}

fn valid_cookie_name(name: &str) -> bool {
    name.starts_with("__Host-")
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// How a session was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoginMethod {
    /// Through the OIDC provider.
    Oidc,
    /// By an LDAP bind while the provider was down.
    BreakGlass,
}

impl LoginMethod {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::Oidc => "oidc",
            LoginMethod::BreakGlass => "break_glass",
        }
    }
    fn parse(s: &str) -> LoginMethod {
        if s == "break_glass" {
            LoginMethod::BreakGlass
        } else {
            LoginMethod::Oidc
        }
    }
}

/// The session a cookie-borne request came with.
#[derive(Clone)]
pub struct SessionRef {
    /// Session id (not the secret).
    pub id: Uuid,
    /// The user row.
    pub user_id: Uuid,
    /// How it was opened.
    pub method: LoginMethod,
    csrf: String,
}

impl std::fmt::Debug for SessionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRef")
            .field("id", &self.id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl SessionRef {
    /// The synchronizer token pages put in forms and scripts send as `X-CSRF-Token`.
    pub fn csrf_token(&self) -> &str {
        &self.csrf
    }
}

/// A fresh session secret: 256 random bits, base64url. Never stored; only its hash is.
pub fn new_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored verifier of a secret.
pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The CSRF token bound to a session secret. Derived rather than stored: it changes whenever
/// the session does (login rotates it), and knowing it reveals nothing about the secret.
pub fn csrf_for(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"hubplane-csrf-v1\0");
    h.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// The cookie carrying a session secret: `__Host-` (Secure, Path=/, no Domain), HttpOnly, Lax.
pub fn cookie(name: &str, secret: &SecretString, absolute: chrono::Duration) -> Cookie<'static> {
    Cookie::build(name.to_owned(), secret.expose_secret().to_owned())
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(absolute.num_seconds()))
        .finish()
}

/// A cookie that makes the browser forget `name`.
pub fn removal_cookie(name: &str) -> Cookie<'static> {
    let mut c = Cookie::build(name.to_owned(), "")
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish();
    c.make_removal();
    c
}

/// Who is opening a session, and from where.
pub struct NewSession<'a> {
    /// The user row.
    pub user_id: Uuid,
    /// How they logged in.
    pub method: LoginMethod,
    /// Client address (after trusted-proxy resolution).
    pub client_ip: Option<&'a str>,
    /// Browser user agent, truncated.
    pub user_agent: Option<&'a str>,
}

/// Stores a new session; returns its id and the secret for the cookie.
pub async fn create(
    client: &impl GenericClient,
    new: &NewSession<'_>,
    cfg: &SessionConfig,
) -> Result<(Uuid, SecretString), tokio_postgres::Error> {
    let secret = new_secret();
    let id = Uuid::now_v7();
    let now = Utc::now();
    let absolute = now + cfg.absolute();
    let idle = std::cmp::min(now + cfg.idle(), absolute);
    let ua: Option<String> = new.user_agent.map(|u| u.chars().take(300).collect());
    client
        .execute(
            "INSERT INTO sessions (id, secret_hash, user_id, method, created_at, last_seen_at,
                                   idle_expires_at, absolute_expires_at, client_ip, user_agent)
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9)",
            &[
                &id,
                &secret_hash(secret.expose_secret()),
                &new.user_id,
                &new.method.as_str(),
                &now,
                &idle,
                &absolute,
                &new.client_ip,
                &ua,
            ],
        )
        .await?;
    Ok((id, secret))
}

/// Why a cookie did not authenticate; each says what the person should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefusal {
    /// No such session (never existed, or deleted).
    Unknown,
    /// Logged out, revoked by an admin, or ended by the directory sync.
    Revoked,
    /// Idle or absolute time-out passed.
    Expired,
}

impl SessionRefusal {
    /// The message for the 401.
    pub fn message(self) -> &'static str {
        match self {
            SessionRefusal::Unknown => "your session is not valid; log in again",
            SessionRefusal::Revoked => "your session was ended; log in again",
            SessionRefusal::Expired => "your session expired; log in again",
        }
    }
}

/// How often a busy session's idle deadline is pushed forward: a write per minute per session,
/// not per request. The idle time-out is therefore exact to within this interval.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// Resolves a cookie's secret to a principal, sliding the idle deadline.
pub async fn authenticate(
    client: &impl GenericClient,
    secret: &str,
    cfg: &SessionConfig,
) -> Result<Result<Principal, SessionRefusal>, ApiError> {
    let row = client
        .query_opt(
            "SELECT s.id, s.user_id, s.method, s.revoked_at, s.idle_expires_at,
                    s.absolute_expires_at, s.last_seen_at, u.username, u.roles, now(), u.scopes
               FROM sessions s JOIN users u ON u.id = s.user_id
              WHERE s.secret_hash = $1",
            &[&secret_hash(secret)],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Err(SessionRefusal::Unknown));
    };
    let id: Uuid = row.get(0);
    let revoked: Option<DateTime<Utc>> = row.get(3);
    let idle_expires: DateTime<Utc> = row.get(4);
    let absolute_expires: DateTime<Utc> = row.get(5);
    let last_seen: DateTime<Utc> = row.get(6);
    let now: DateTime<Utc> = row.get(9);
    if revoked.is_some() {
        return Ok(Err(SessionRefusal::Revoked));
    }
    if now >= idle_expires || now >= absolute_expires {
        return Ok(Err(SessionRefusal::Expired));
    }
    let username: String = row.get(7);
    let subject = Subject::parse(&username).map_err(|e| {
        ApiError::internal(anyhow::anyhow!("stored user name is not a subject: {e}"))
    })?;
    let roles: Vec<String> = row.get(8);
    if now - last_seen >= TOUCH_EVERY {
        let idle = std::cmp::min(now + cfg.idle(), absolute_expires);
        // Best effort: a failed touch only shortens the session; it must not fail the request.
        if let Err(e) = client
            .execute(
                "UPDATE sessions SET last_seen_at = $2, idle_expires_at = $3
                  WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &now, &idle],
            )
            .await
        {
            tracing::warn!(error = %e, session = %id, "cannot extend session");
        }
    }
    Ok(Ok(Principal {
        subject,
        kind: PrincipalKind::Human,
        roles: roles.iter().filter_map(|r| Role::parse(r)).collect(),
        scopes: row
            .get::<_, Vec<String>>(10)
            .iter()
            .filter_map(|s| crate::auth::Scope::parse(s).ok())
            .collect(),
        token_id: None,
        session: Some(SessionRef {
            id,
            user_id: row.get(1),
            method: LoginMethod::parse(row.get(2)),
            csrf: csrf_for(secret),
        }),
    }))
}

/// Ends one session. Returns whether it was active.
pub async fn revoke(
    client: &impl GenericClient,
    id: Uuid,
    reason: &str,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
              WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &reason],
        )
        .await?;
    Ok(n == 1)
}

/// Ends the session a cookie secret names, if any (logout, and rotation at login).
pub async fn revoke_by_secret(
    client: &impl GenericClient,
    secret: &str,
    reason: &str,
) -> Result<Option<Uuid>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
              WHERE secret_hash = $1 AND revoked_at IS NULL RETURNING id",
            &[&secret_hash(secret), &reason],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Ends every active session of a user; returns how many.
pub async fn revoke_all_for_user(
    client: &impl GenericClient,
    user_id: Uuid,
    reason: &str,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
              WHERE user_id = $1 AND revoked_at IS NULL",
            &[&user_id, &reason],
        )
        .await
}

/// One row of the admin sessions page.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    /// Session id.
    pub id: Uuid,
    /// Whose.
    pub username: String,
    /// How it was opened.
    pub method: LoginMethod,
    /// Login time.
    pub created_at: DateTime<Utc>,
    /// Last request (to within a minute).
    pub last_seen_at: DateTime<Utc>,
    /// When it ends unless used.
    pub idle_expires_at: DateTime<Utc>,
    /// When it ends regardless.
    pub absolute_expires_at: DateTime<Utc>,
    /// Client address at login.
    pub client_ip: Option<String>,
    /// Browser at login.
    pub user_agent: Option<String>,
}

/// Active sessions, newest first; only `user_id`'s when given.
pub async fn list_active(
    client: &impl GenericClient,
    user_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<SessionInfo>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT s.id, u.username, s.method, s.created_at, s.last_seen_at, s.idle_expires_at,
                    s.absolute_expires_at, s.client_ip, s.user_agent
               FROM sessions s JOIN users u ON u.id = s.user_id
              WHERE s.revoked_at IS NULL AND s.idle_expires_at > now()
                AND s.absolute_expires_at > now()
                AND ($1::uuid IS NULL OR s.user_id = $1)
              ORDER BY s.created_at DESC LIMIT $2",
            &[&user_id, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SessionInfo {
            id: r.get(0),
            username: r.get(1),
            method: LoginMethod::parse(r.get(2)),
            created_at: r.get(3),
            last_seen_at: r.get(4),
            idle_expires_at: r.get(5),
            absolute_expires_at: r.get(6),
            client_ip: r.get(7),
            user_agent: r.get(8),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_only_hashes_and_csrf_derive_from_them() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), 43);
        assert_eq!(secret_hash(a.expose_secret()).len(), 32);
        assert_ne!(csrf_for(a.expose_secret()), csrf_for(b.expose_secret()));
        assert!(!csrf_for(a.expose_secret()).contains(a.expose_secret()));
    }

    #[test]
    fn cookie_has_host_prefix_attributes() {
        let c = cookie(
            "__Host-state-hub-session",
            &new_secret(),
            chrono::Duration::hours(12),
        );
        let s = c.to_string();
        assert!(s.contains("Secure"), "{s}");
        assert!(s.contains("HttpOnly"), "{s}");
        assert!(s.contains("SameSite=Lax"), "{s}");
        assert!(s.contains("Path=/"), "{s}");
        assert!(!s.contains("Domain"), "{s}");
    }

    #[test]
    fn config_checks() {
        let cfg = SessionConfig::default();
        assert_eq!(cfg.cookie_name("dev-hub"), "__Host-dev-hub-session");
        let mut p = Problems::default();
        SessionConfig {
            idle_timeout_minutes: 0,
            absolute_timeout_hours: 1,
            cookie_name: Some("session".into()),
        }
        .validate(&mut p);
        assert_eq!(p.lines().len(), 2, "{:?}", p.lines());
        let mut p = Problems::default();
        SessionConfig {
            idle_timeout_minutes: 120,
            absolute_timeout_hours: 1,
            cookie_name: None,
        }
        .validate(&mut p);
        assert_eq!(p.lines().len(), 1, "{:?}", p.lines());
    }
}
