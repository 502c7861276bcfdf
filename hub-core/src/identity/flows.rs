//! Logins in progress, between the redirect to the provider (or the break-glass form) and the
//! answer. Keyed by the hash of a cookie set in the browser that started it, used once.

use super::sessions::{csrf_for, new_secret, secret_hash};
use actix_web::cookie::{time, Cookie, SameSite};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::GenericClient;

/// How long a login may take from start to callback.
pub const MAX_AGE_MINUTES: i64 = 10;

/// A stored flow, taken back at the callback.
pub struct TakenFlow {
    /// What the OIDC client needs (JSON of its pending login).
    pub pending: serde_json::Value,
    /// Where to go after login.
    pub next_path: String,
    /// When it started.
    pub created_at: DateTime<Utc>,
}

/// Stores a flow and returns the secret for the flow cookie. Old flows are purged here, so the
/// table never grows past ten minutes of login attempts.
pub async fn start(
    client: &impl GenericClient,
    pending: &serde_json::Value,
    next_path: &str,
) -> Result<SecretString, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM login_flows WHERE created_at < now() - make_interval(mins => $1::int)",
            &[&(MAX_AGE_MINUTES as i32)],
        )
        .await?;
    let secret = new_secret();
    client
        .execute(
            "INSERT INTO login_flows (flow_hash, pending, next_path) VALUES ($1, $2, $3)",
            &[&secret_hash(secret.expose_secret()), pending, &next_path],
        )
        .await?;
    Ok(secret)
}

/// Takes (deletes and returns) the flow a cookie names; `None` when unknown, used or too old.
pub async fn take(
    client: &impl GenericClient,
    secret: &str,
) -> Result<Option<TakenFlow>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "DELETE FROM login_flows WHERE flow_hash = $1
             RETURNING pending, next_path, created_at,
                       created_at > now() - make_interval(mins => $2::int)",
            &[&secret_hash(secret), &(MAX_AGE_MINUTES as i32)],
        )
        .await?;
    Ok(row.filter(|r| r.get::<_, bool>(3)).map(|r| TakenFlow {
        pending: r.get(0),
        next_path: r.get(1),
        created_at: r.get(2),
    }))
}

/// The flow cookie: like the session cookie but short-lived.
pub fn cookie(name: &str, secret: &SecretString) -> Cookie<'static> {
    Cookie::build(name.to_owned(), secret.expose_secret().to_owned())
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::minutes(MAX_AGE_MINUTES))
        .finish()
}

/// The token the break-glass form carries, bound to its flow cookie.
pub fn form_token(secret: &str) -> String {
    csrf_for(secret)
}
