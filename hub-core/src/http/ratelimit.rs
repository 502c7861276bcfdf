//! Rate limits on the doors people and scripts knock on: login per client address and per
//! account, token issuing per principal, and (optionally) every API call per token.
//!
//! The limiters are in memory (GCRA, `governor`), so each replica counts on its own: behind a
//! load balancer the effective limit is the per-replica limit times the replicas. Their state is
//! bounded; while a table is full of recent keys, the limiter lets requests through unchecked —
//! that fail-open is counted in `/metrics` so it cannot happen unseen.

use super::problem::ApiError;
use crate::config::Problems;
use actix_web::HttpRequest;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Deserialize;
use std::net::IpAddr;
use std::num::NonZeroU32;

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Login attempts (start, callback, break-glass) per client address per minute.
    #[serde(default = "default_login_ip")]
    pub login_per_ip_per_minute: u32,
    /// Break-glass password attempts per account per minute.
    #[serde(default = "default_login_account")]
    pub login_per_account_per_minute: u32,
    /// API tokens created per principal per minute.
    #[serde(default = "default_token_issue")]
    pub tokens_per_principal_per_minute: u32,
    /// API tokens created per client address per minute.
    #[serde(default = "default_token_issue_ip")]
    pub tokens_per_ip_per_minute: u32,
    /// Requests per API token per second; 0 turns the limit off.
    #[serde(default = "default_api_token")]
    pub api_per_token_per_second: u32,
}

fn default_login_ip() -> u32 {
    30
}
fn default_login_account() -> u32 {
    5
}
fn default_token_issue() -> u32 {
    10
}
fn default_token_issue_ip() -> u32 {
    30
}
fn default_api_token() -> u32 {
    2000
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            login_per_ip_per_minute: default_login_ip(),
            login_per_account_per_minute: default_login_account(),
            tokens_per_principal_per_minute: default_token_issue(),
            tokens_per_ip_per_minute: default_token_issue_ip(),
            api_per_token_per_second: default_api_token(),
        }
    }
}

impl LimitConfig {
    /// One line per problem.
    pub fn validate(&self, p: &mut Problems) {
        for (name, v) in [
            ("login_per_ip_per_minute", self.login_per_ip_per_minute),
            (
                "login_per_account_per_minute",
                self.login_per_account_per_minute,
            ),
            (
                "tokens_per_principal_per_minute",
                self.tokens_per_principal_per_minute,
            ),
            ("tokens_per_ip_per_minute", self.tokens_per_ip_per_minute),
        ] {
            if !(1..=100_000).contains(&v) {
                p.push(format!("limits.{name}: must be between 1 and 100000"));
            }
        }
        if self.api_per_token_per_second > 1_000_000 {
            p.push("limits.api_per_token_per_second: must be at most 1000000 (0 = off)");
        }
    }
}

/// Which limit a check is against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Login attempts per client address.
    LoginPerIp,
    /// Password attempts per account.
    LoginPerAccount,
    /// Tokens issued per principal.
    TokenIssue,
    /// Tokens issued per client address.
    TokenIssuePerIp,
    /// API calls per token.
    ApiPerToken,
}

impl Limit {
    fn as_str(self) -> &'static str {
        match self {
            Limit::LoginPerIp => "login_per_ip",
            Limit::LoginPerAccount => "login_per_account",
            Limit::TokenIssue => "token_issue",
            Limit::TokenIssuePerIp => "token_issue_per_ip",
            Limit::ApiPerToken => "api_per_token",
        }
    }
}

/// Most distinct keys a limiter remembers before it is cleared (and the fail-open counted).
const MAX_KEYS: usize = 100_000;

struct Keyed {
    limiter: DefaultKeyedRateLimiter<String>,
    per: &'static str,
}

/// Every limiter of a hub, registered as app data.
pub struct Limiters {
    login_ip: Keyed,
    login_account: Keyed,
    token_issue: Keyed,
    token_issue_ip: Keyed,
    api_token: Option<Keyed>,
    decisions: IntCounterVec,
    fail_open: IntCounterVec,
}

fn keyed(n: u32, per_minute: bool) -> Option<Keyed> {
    let n = NonZeroU32::new(n)?;
    let quota = if per_minute {
        Quota::per_minute(n)
    } else {
        Quota::per_second(n)
    };
    Some(Keyed {
        limiter: RateLimiter::keyed(quota),
        per: if per_minute { "minute" } else { "second" },
    })
}

impl Limiters {
    /// Builds the limiters and registers their counters.
    pub fn new(cfg: &LimitConfig, registry: &Registry) -> Result<Self, prometheus::Error> {
        let decisions = IntCounterVec::new(
            Opts::new(
                "hub_rate_limit_decisions_total",
                "Rate limiter decisions by limit and outcome (allowed, limited).",
            ),
            &["limit", "outcome"],
        )?;
        let fail_open = IntCounterVec::new(
            Opts::new(
                "hub_rate_limit_fail_open_total",
                "Requests let through unchecked because a limiter's key table was full.",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(fail_open.clone()))?;
        let must = |n: u32| {
            keyed(n.max(1), true).ok_or_else(|| prometheus::Error::Msg("zero quota".into()))
        };
        Ok(Self {
            login_ip: must(cfg.login_per_ip_per_minute)?,
            login_account: must(cfg.login_per_account_per_minute)?,
            token_issue: must(cfg.tokens_per_principal_per_minute)?,
            token_issue_ip: must(cfg.tokens_per_ip_per_minute)?,
            api_token: keyed(cfg.api_per_token_per_second, false),
            decisions,
            fail_open,
        })
    }

    /// Counts one attempt against `limit` for `key`; refuses with 429 when over.
    pub fn check(&self, limit: Limit, key: &str) -> Result<(), ApiError> {
        let keyed = match limit {
            Limit::LoginPerIp => &self.login_ip,
            Limit::LoginPerAccount => &self.login_account,
            Limit::TokenIssue => &self.token_issue,
            Limit::TokenIssuePerIp => &self.token_issue_ip,
            Limit::ApiPerToken => match &self.api_token {
                Some(k) => k,
                None => return Ok(()),
            },
        };
        if keyed.limiter.len() >= MAX_KEYS {
            keyed.limiter.retain_recent();
            keyed.limiter.shrink_to_fit();
            if keyed.limiter.len() >= MAX_KEYS {
                // Tracking yet more keys would let a flood of addresses exhaust memory, so the
                // limiter stops judging until old keys age out: counted, so it is seen.
                self.fail_open.with_label_values(&[limit.as_str()]).inc();
                tracing::warn!(
                    limit = limit.as_str(),
                    "rate limiter full: letting requests through unchecked"
                );
                return Ok(());
            }
        }
        match keyed.limiter.check_key(&key.to_owned()) {
            Ok(()) => {
                self.decisions
                    .with_label_values(&[limit.as_str(), "allowed"])
                    .inc();
                Ok(())
            }
            Err(_) => {
                self.decisions
                    .with_label_values(&[limit.as_str(), "limited"])
                    .inc();
                tracing::warn!(limit = limit.as_str(), "rate limited");
                Err(ApiError::TooManyRequests(format!(
                    "too many attempts ({} limit per {}); wait a minute and try again",
                    limit.as_str().replace('_', " "),
                    keyed.per
                )))
            }
        }
    }
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the nearest
/// untrusted address in `X-Forwarded-For` (the leftmost entries are whatever the client wrote).
pub fn client_ip(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted.iter().any(|n| n.contains(&peer)) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut last = peer;
    for hop in forwarded.rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        last = ip;
        if !trusted.iter().any(|n| n.contains(&ip)) {
            return Some(ip);
        }
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn limits_per_key_and_counts() {
        let reg = Registry::new();
        let l = Limiters::new(
            &LimitConfig {
                login_per_account_per_minute: 2,
                ..LimitConfig::default()
            },
            &reg,
        )
        .unwrap();
        assert!(l.check(Limit::LoginPerAccount, "bob").is_ok());
        assert!(l.check(Limit::LoginPerAccount, "bob").is_ok());
        assert!(matches!(
            l.check(Limit::LoginPerAccount, "bob"),
            Err(ApiError::TooManyRequests(_))
        ));
        assert!(l.check(Limit::LoginPerAccount, "erin").is_ok());
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&reg.gather())
            .unwrap();
        assert!(text.contains(
            r#"hub_rate_limit_decisions_total{limit="login_per_account",outcome="limited"} 1"#
        ));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        let req = TestRequest::default()
            .peer_addr("127.0.0.1:5000".parse().unwrap())
            .insert_header(("x-forwarded-for", "6.6.6.6, 203.0.113.9"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &trusted),
            Some("203.0.113.9".parse().unwrap())
        );
        let req = TestRequest::default()
            .peer_addr("198.51.100.7:5000".parse().unwrap())
            .insert_header(("x-forwarded-for", "203.0.113.9"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
    }
}
