//! DNS through the SSRF guard: reqwest connects only to the addresses this resolver hands back,
//! so the check applies to the address actually connected to, and a second lookup answering
//! differently (DNS rebinding) gains nothing.

use super::metrics::CapabilityMetrics;
use super::ssrf;
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Every address a name resolved to was refused by the guard.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {addr}, a {class} address")]
pub(super) struct BlockedAddress {
    pub(super) host: String,
    pub(super) addr: IpAddr,
    pub(super) class: &'static str,
}

/// The name did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("{host} does not resolve: {reason}")]
pub(super) struct DnsFailure {
    pub(super) host: String,
    pub(super) reason: String,
}

/// The system resolver, with every answer passed through [`ssrf::check`].
pub(super) struct GuardedResolver {
    pub(super) allow: Arc<[IpNet]>,
    pub(super) metrics: CapabilityMetrics,
}

impl GuardedResolver {
    /// Checks an address this side is about to connect to without resolving (an IP literal).
    pub(super) fn check_literal(&self, host: &str, ip: IpAddr) -> Result<(), BlockedAddress> {
        ssrf::check(ip, &self.allow).map_err(|class| {
            self.metrics.blocked(class);
            tracing::warn!(host, %ip, class, "capability address refused by the SSRF guard");
            BlockedAddress {
                host: host.to_owned(),
                addr: ip,
                class,
            }
        })
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow = Arc::clone(&self.allow);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| DnsFailure {
                    host: host.clone(),
                    reason: e.to_string(),
                })?
                .collect();
            let mut usable = Vec::with_capacity(found.len());
            let mut first_refused = None;
            for addr in found {
                match ssrf::check(addr.ip(), &allow) {
                    Ok(()) => usable.push(addr),
                    Err(class) => {
                        metrics.blocked(class);
                        tracing::warn!(host, ip = %addr.ip(), class, "capability address refused by the SSRF guard");
                        first_refused.get_or_insert((addr.ip(), class));
                    }
                }
            }
            if usable.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = match first_refused {
                    Some((addr, class)) => Box::new(BlockedAddress { host, addr, class }),
                    None => Box::new(DnsFailure {
                        host,
                        reason: "no addresses".to_owned(),
                    }),
                };
                return Err(err);
            }
            let addrs: Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}
