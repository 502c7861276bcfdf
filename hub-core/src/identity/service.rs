//! The identity service a hub registers as `web::Data<IdentityService>`: everything the login
//! handlers, the admin endpoints and the group sync share.

use super::config::IdentityConfig;
use super::directory::Directory;
use super::ledger::DynLedger;
use super::oidc::OidcClient;
use crate::http::ratelimit::{client_ip, Limiters};
use actix_web::HttpRequest;
use deadpool_postgres::Pool;
use std::sync::Arc;

/// Shared identity state of one hub.
pub struct IdentityService {
    /// The `[identity]` section.
    pub cfg: IdentityConfig,
    /// The OIDC relying party, when configured.
    pub oidc: Option<Arc<OidcClient>>,
    /// The directory, when configured.
    pub directory: Option<Arc<Directory>>,
    /// Where identity changes and their events are recorded.
    pub ledger: DynLedger,
    /// Request pool.
    pub pool: Pool,
    /// Login and token limiters.
    pub limiters: Arc<Limiters>,
    /// Proxies whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The session cookie's name.
    pub cookie_name: String,
    /// The login-flow cookie's name.
    pub flow_cookie_name: String,
}

impl IdentityService {
    /// Builds the service for hub `hub_name` (the name goes into the cookie names).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        hub_name: &str,
        cfg: IdentityConfig,
        oidc: Option<Arc<OidcClient>>,
        directory: Option<Arc<Directory>>,
        ledger: DynLedger,
        pool: Pool,
        limiters: Arc<Limiters>,
        trusted_proxies: Vec<ipnet::IpNet>,
    ) -> Self {
        let cookie_name = cfg.sessions.cookie_name(hub_name);
        let flow_cookie_name = cookie_name.replace("-session", "-login");
        let flow_cookie_name = if flow_cookie_name == cookie_name {
            format!("{cookie_name}-login")
        } else {
            flow_cookie_name
        };
        Self {
            cfg,
            oidc,
            directory,
            ledger,
            pool,
            limiters,
            trusted_proxies,
            cookie_name,
            flow_cookie_name,
        }
    }

    /// The client's address as a string, for limits and the session record.
    pub fn client_ip(&self, req: &HttpRequest) -> String {
        client_ip(req, &self.trusted_proxies)
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// The issuer recorded for people who log in by LDAP bind.
    pub fn ldap_issuer(&self) -> Option<String> {
        self.cfg
            .ldap
            .as_ref()
            .map(|l| format!("ldap:{}", l.base_dn))
    }

    /// Whether break-glass login is configured.
    pub fn break_glass_enabled(&self) -> bool {
        self.cfg.break_glass.group.is_some() && self.directory.is_some() && self.oidc.is_some()
    }
}
