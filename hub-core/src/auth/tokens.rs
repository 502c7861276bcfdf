//! API tokens: random secrets shown once, stored as SHA-256 hashes, scoped, expiring, revocable.
//!
//! A token is `hpt_` followed by 43 base64url characters (256 random bits). Because the secret is
//! uniformly random, a plain SHA-256 is a sound verifier: there is nothing to brute-force that a
//! slow hash would protect. Every hub's schema has the `api_tokens` table these queries use.

use super::authorize::Authenticator;
use super::permission::{Role, Scope};
use super::principal::{Principal, PrincipalKind, Subject};
use crate::http::problem::ApiError;
use actix_web::HttpRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use futures_util::future::LocalBoxFuture;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// Prefix that makes Hubplane tokens recognisable to secret scanners.
pub const TOKEN_PREFIX: &str = "hpt_";
/// Minimum length of a bootstrap token file's content.
pub const MIN_TOKEN_LEN: usize = 32;

/// Generates a new token secret.
pub fn generate() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The stored verifier of a token.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The first characters, stored to help people recognise a token in lists.
pub fn display_prefix(token: &str) -> String {
    token.chars().take(TOKEN_PREFIX.len() + 6).collect()
}

/// A token row, without its hash.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// Token id.
    pub id: Uuid,
    /// Human label.
    pub name: String,
    /// Recognisable prefix.
    pub prefix: String,
    /// The principal it authenticates.
    pub subject: Subject,
    /// Person or machine.
    pub kind: PrincipalKind,
    /// Roles granted.
    pub roles: BTreeSet<Role>,
    /// Scopes granted.
    pub scopes: BTreeSet<Scope>,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Hard expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// When revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last successful use (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, ApiError> {
        let subject: String = row.try_get("subject")?;
        let kind: String = row.try_get("kind")?;
        let roles: Vec<String> = row.try_get("roles")?;
        let scopes: Vec<String> = row.try_get("scopes")?;
        let bad =
            |what: String| ApiError::internal(anyhow::anyhow!("corrupt api_tokens row: {what}"));
        Ok(TokenRecord {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            prefix: row.try_get("token_prefix")?,
            subject: Subject::parse(&subject).map_err(bad)?,
            kind: PrincipalKind::parse(&kind).ok_or_else(|| bad(format!("kind {kind}")))?,
            roles: roles
                .iter()
                .map(|r| Role::parse(r).ok_or_else(|| bad(format!("role {r}"))))
                .collect::<Result<_, _>>()?,
            scopes: scopes
                .iter()
                .map(|s| Scope::parse(s).map_err(bad))
                .collect::<Result<_, _>>()?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            last_used_at: row.try_get("last_used_at")?,
        })
    }

    /// Whether the token authenticates right now.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    fn principal(&self) -> Principal {
        Principal {
            subject: self.subject.clone(),
            kind: self.kind,
            roles: self.roles.clone(),
            scopes: self.scopes.clone(),
            token_id: Some(self.id),
            session: None,
        }
    }
}

const COLUMNS: &str =
    "id, name, token_prefix, subject, kind, roles, scopes, created_by, created_at, \
expires_at, revoked_at, last_used_at";

/// What a new token grants.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Label.
    pub name: String,
    /// Principal.
    pub subject: Subject,
    /// Person or machine.
    pub kind: PrincipalKind,
    /// Roles.
    pub roles: BTreeSet<Role>,
    /// Scopes.
    pub scopes: BTreeSet<Scope>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Inserts a token with the given secret; returns its record.
pub async fn insert(
    client: &impl GenericClient,
    new: &NewToken,
    secret: &SecretString,
    created_by: &str,
) -> Result<TokenRecord, ApiError> {
    let token = secret.expose_secret();
    let roles: Vec<&str> = new.roles.iter().map(|r| r.as_str()).collect();
    let scopes: Vec<&str> = new.scopes.iter().map(|s| s.as_str()).collect();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO api_tokens (id, name, token_hash, token_prefix, subject, kind, roles, scopes, created_by, expires_at) \
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::now_v7(),
                &new.name,
                &hash(token),
                &display_prefix(token),
                &new.subject.as_str(),
                &new.kind.as_str(),
                &roles,
                &scopes,
                &created_by,
                &new.expires_at,
            ],
        )
        .await?;
    TokenRecord::from_row(&row)
}

/// Lists tokens, newest first.
pub async fn list(
    client: &impl GenericClient,
    include_revoked: bool,
) -> Result<Vec<TokenRecord>, ApiError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM api_tokens WHERE $1 OR revoked_at IS NULL ORDER BY created_at DESC, id DESC"
            ),
            &[&include_revoked],
        )
        .await?;
    rows.iter().map(TokenRecord::from_row).collect()
}

/// Revokes a token. Returns the record, or `None` if it does not exist; revoking twice is a no-op.
pub async fn revoke(
    client: &impl GenericClient,
    id: Uuid,
    revoked_by: &str,
) -> Result<Option<TokenRecord>, ApiError> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()), revoked_by = COALESCE(revoked_by, $2) \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &revoked_by],
        )
        .await?;
    row.as_ref().map(TokenRecord::from_row).transpose()
}

/// Looks a presented token up by its hash.
pub async fn find_by_secret(
    client: &impl GenericClient,
    token: &str,
) -> Result<Option<TokenRecord>, ApiError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1"),
            &[&hash(token)],
        )
        .await?;
    row.as_ref().map(TokenRecord::from_row).transpose()
}

/// Name of the token created from the bootstrap file.
pub const BOOTSTRAP_NAME: &str = "bootstrap-admin";

/// Outcome of [`bootstrap`].
#[derive(Debug)]
pub enum Bootstrap {
    /// The file's token was already the active bootstrap token.
    Unchanged,
    /// A token was created; `replaced` names a previous bootstrap token now revoked.
    Created {
        /// The new record.
        record: Box<TokenRecord>,
        /// A revoked predecessor.
        replaced: Option<Uuid>,
    },
}

/// Ensures the token in the bootstrap file is the one active bootstrap admin token: a changed
/// file rotates it (the previous one is revoked in the same transaction).
pub async fn bootstrap(
    client: &impl GenericClient,
    secret: &SecretString,
    subject: &Subject,
) -> Result<Bootstrap, ApiError> {
    if let Some(existing) = find_by_secret(client, secret.expose_secret()).await? {
        if existing.revoked_at.is_some() {
            return Err(ApiError::Conflict(
                "the bootstrap token file holds a revoked token; write a new one".into(),
            ));
        }
        return Ok(Bootstrap::Unchanged);
    }
    let replaced: Option<Uuid> = client
        .query_opt(
            "UPDATE api_tokens SET revoked_at = now(), revoked_by = 'bootstrap-rotation' \
             WHERE name = $1 AND revoked_at IS NULL RETURNING id",
            &[&BOOTSTRAP_NAME],
        )
        .await?
        .map(|r| r.get(0));
    let record = insert(
        client,
        &NewToken {
            name: BOOTSTRAP_NAME.to_owned(),
            subject: subject.clone(),
            kind: PrincipalKind::Human,
            roles: BTreeSet::from([Role::Admin]),
            scopes: BTreeSet::new(),
            expires_at: None,
        },
        secret,
        "bootstrap",
    )
    .await?;
    Ok(Bootstrap::Created {
        record: Box::new(record),
        replaced,
    })
}

/// Bearer-token authenticator with a short positive cache. Revocation through this process
/// clears the cache at once; other replicas see it within [`CACHE_TTL`].
pub struct TokenAuthenticator {
    pool: Pool,
    cache: Mutex<HashMap<Vec<u8>, (Instant, TokenRecord)>>,
}

/// How long a verified token is trusted without asking the database again.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
const CACHE_MAX: usize = 10_000;

impl TokenAuthenticator {
    /// An authenticator over the hub's request pool.
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Drops every cached verification (after a revoke).
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }

    /// Authenticates a bearer token string.
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let key = hash(token);
        let now = Instant::now();
        let cached = self.cache.lock().ok().and_then(|c| {
            c.get(&key)
                .filter(|(t, _)| now.duration_since(*t) < CACHE_TTL)
                .map(|(_, r)| r.clone())
        });
        let record = match cached {
            Some(r) => r,
            None => {
                let client = self.pool.get().await?;
                let Some(r) = find_by_secret(&**client, token).await? else {
                    return Err(ApiError::Unauthorized(
                        "the bearer token is not valid".into(),
                    ));
                };
                if r.is_active(Utc::now()) {
                    let stale = r
                        .last_used_at
                        .is_none_or(|t| Utc::now() - t > chrono::Duration::minutes(1));
                    if stale {
                        // Best effort: a failed touch must not fail the request.
                        let _ = client
                            .execute(
                                "UPDATE api_tokens SET last_used_at = now() WHERE id = $1",
                                &[&r.id],
                            )
                            .await;
                    }
                    if let Ok(mut c) = self.cache.lock() {
                        if c.len() >= CACHE_MAX {
                            c.clear();
                        }
                        c.insert(key, (now, r.clone()));
                    }
                }
                r
            }
        };
        if record.revoked_at.is_some() {
            return Err(ApiError::Unauthorized(
                "the bearer token has been revoked".into(),
            ));
        }
        if !record.is_active(Utc::now()) {
            return Err(ApiError::Unauthorized(
                "the bearer token has expired".into(),
            ));
        }
        Ok(record.principal())
    }
}

/// Extracts the bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let v = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Authenticator for TokenAuthenticator {
    fn authenticate<'a>(
        &'a self,
        req: &'a HttpRequest,
    ) -> LocalBoxFuture<'a, Result<Principal, ApiError>> {
        Box::pin(async move {
            let token = bearer(req).ok_or_else(|| {
                ApiError::Unauthorized("send `Authorization: Bearer <token>`".into())
            })?;
            if token.len() > 512 {
                return Err(ApiError::Unauthorized(
                    "the bearer token is not valid".into(),
                ));
            }
            self.verify(token).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_prefixed_and_unique() {
        let a = generate();
        let b = generate();
        assert!(a.expose_secret().starts_with(TOKEN_PREFIX));
        assert_eq!(a.expose_secret().len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(hash(a.expose_secret()).len(), 32);
        assert!(!format!("{a:?}").contains(&a.expose_secret()[4..]));
    }
}
