//! The authenticator every hub registers: a bearer token when one is sent, else the session
//! cookie. A request that carries both is judged by the token alone, so a script can never be
//! confused with the browser it runs in.

use super::sessions::{self, SessionConfig};
use crate::auth::tokens::{bearer, TokenAuthenticator};
use crate::auth::{Authenticator, Principal};
use crate::http::problem::ApiError;
use crate::http::ratelimit::{Limit, Limiters};
use actix_web::HttpRequest;
use deadpool_postgres::Pool;
use futures_util::future::LocalBoxFuture;
use std::sync::Arc;

/// Token-or-session authentication.
pub struct HubAuthenticator {
    tokens: Arc<TokenAuthenticator>,
    pool: Pool,
    sessions: SessionConfig,
    cookie_name: String,
    limiters: Arc<Limiters>,
}

impl HubAuthenticator {
    /// Sessions are looked up in `pool`; `cookie_name` is the hub's session cookie.
    pub fn new(
        tokens: Arc<TokenAuthenticator>,
        pool: Pool,
        sessions: SessionConfig,
        cookie_name: String,
        limiters: Arc<Limiters>,
    ) -> Self {
        Self {
            tokens,
            pool,
            sessions,
            cookie_name,
            limiters,
        }
    }
}

impl Authenticator for HubAuthenticator {
    fn authenticate<'a>(
        &'a self,
        req: &'a HttpRequest,
    ) -> LocalBoxFuture<'a, Result<Principal, ApiError>> {
        Box::pin(async move {
            if let Some(token) = bearer(req) {
                if token.len() > 512 {
                    return Err(ApiError::Unauthorized(
                        "the bearer token is not valid".into(),
                    ));
                }
                let principal = self.tokens.verify(token).await?;
                if let Some(id) = principal.token_id {
                    self.limiters.check(Limit::ApiPerToken, &id.to_string())?;
                }
                return Ok(principal);
            }
            let Some(cookie) = req.cookie(&self.cookie_name) else {
                return Err(ApiError::Unauthorized(
                    "log in, or send `Authorization: Bearer <token>`".into(),
                ));
            };
            if cookie.value().len() > 128 {
                return Err(ApiError::Unauthorized(
                    sessions::SessionRefusal::Unknown.message().into(),
                ));
            }
            let client = self.pool.get().await?;
            match sessions::authenticate(&**client, cookie.value(), &self.sessions).await? {
                Ok(p) => Ok(p),
                Err(refusal) => Err(ApiError::Unauthorized(refusal.message().into())),
            }
        })
    }
}
