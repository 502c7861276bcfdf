//! What every handler can reach.

use crate::journal::Journal;
use deadpool_postgres::Pool;
use hub_core::auth::tokens::TokenAuthenticator;
use std::sync::Arc;
use tokio::sync::watch;

/// Shared application state.
#[derive(Clone)]
pub struct AppState {
    /// Request pool.
    pub pool: Pool,
    /// The journal writer.
    pub journal: Journal,
    /// Token verification (to clear its cache on revoke).
    pub tokens: Arc<TokenAuthenticator>,
    /// Rate limits (token issuing).
    pub limiters: Arc<hub_core::http::ratelimit::Limiters>,
    /// Proxies whose X-Forwarded-For names the client (for per-address limits).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Dev mode: hubs may register plain-http loopback base URLs.
    pub dev_mode: bool,
    /// The capability registry's keyring, probe client and interval.
    pub capabilities: Arc<crate::capabilities::Runtime>,
    /// Turns true when shutdown begins, ending live streams.
    pub stopping: watch::Receiver<bool>,
}
