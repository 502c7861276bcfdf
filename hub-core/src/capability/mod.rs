//! The capability client: the only outbound path from a hub to the application cluster.
//!
//! A call names a capability, never a URL: the client looks up the capability's completed
//! registration and calls its `https://` base URL plus a path that cannot leave it. Every
//! address it connects to, first hop or redirect, passes the [`ssrf`] guard; redirects stay on
//! registered hosts. Idempotent calls are retried with jittered back-off, each capability has
//! a circuit breaker, and every call is counted in `/metrics`. Credentials go out as
//! `Authorization: Bearer` and never into logs or errors.

mod breaker;
mod client;
mod config;
mod metrics;
mod resolver;
pub mod ssrf;
mod target;

pub use breaker::BreakerState;
/// The URL check, re-exported only for the fuzz targets under `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::target::{check_base, request_url};
}
pub use client::CapabilityClient;
pub use config::{CapabilityClientConfig, MAX_RETRIES_LIMIT};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use std::net::IpAddr;
use std::time::Duration;

/// Redirect hops a call follows at most.
pub const MAX_REDIRECTS: usize = 3;

/// A callable registration as the state hub hands it out (only `completed` ones are passed in).
#[derive(Clone, Debug)]
pub struct Registration {
    /// The capability's name, which calls refer to.
    pub name: String,
    /// Where it is served; must be `https://` with a host and nothing after the path.
    pub base_url: url::Url,
    /// Path under `base_url` that probes call.
    pub health_path: String,
    /// Sent as `Authorization: Bearer`; `SecretString` keeps it out of `Debug`.
    pub credential: Option<SecretString>,
}

/// A capability's successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct CapabilityResponse {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header, when sent.
    pub content_type: Option<String>,
    /// The body, at most `max_response_bytes` long.
    pub body: Bytes,
    /// When the answer arrived, so observations can say how old they are.
    pub fetched_at: DateTime<Utc>,
    /// Attempts it took, 1 when the first one succeeded.
    pub attempts: u32,
}

impl CapabilityResponse {
    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// What a health probe found: any HTTP answer is a result, only a failure to get one is an error.
#[derive(Debug, Clone, Copy)]
pub struct ProbeResult {
    /// The HTTP status of the health path.
    pub status: u16,
    /// Time from sending the request to the response headers.
    pub latency: Duration,
    /// When the probe finished.
    pub checked_at: DateTime<Utc>,
}

/// Why a capability call did not produce a response. None of the messages holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// No callable registration has this name.
    #[error("no callable capability is registered as `{0}`")]
    UnknownCapability(String),
    /// The base URL, the path or a redirect names something other than `https://`.
    #[error("{0} is not https; capabilities are only called over HTTPS")]
    NotHttps(String),
    /// The path would take the call to a host other than the registration's.
    #[error("{0} is not the host of this capability's registration")]
    HostNotRegistered(String),
    /// The path, the idempotency key or the registration cannot be used as given.
    #[error("refused request: {0}")]
    InvalidRequest(String),
    /// The SSRF guard refused every address of the host.
    #[error("{host} ({addr}) is a {class} address, which the SSRF guard blocks")]
    Blocked {
        /// The host as named in the URL.
        host: String,
        /// The (first) refused address.
        addr: IpAddr,
        /// Its class, see [`ssrf`].
        class: &'static str,
    },
    /// The host name did not resolve.
    #[error("DNS: {0}")]
    Dns(String),
    /// An attempt ran past `request_timeout_ms` (or the connection past `connect_timeout_ms`).
    #[error("the capability did not answer in time")]
    Timeout,
    /// The connection failed or broke.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The TLS handshake failed, e.g. a certificate no trusted CA signed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The capability answered with a status other than 2xx.
    #[error("the capability answered HTTP {0}")]
    Status(u16),
    /// The response body is larger than allowed.
    #[error("the response is larger than {limit} bytes")]
    TooLarge {
        /// The configured `max_response_bytes`.
        limit: usize,
    },
    /// The capability's circuit breaker refuses calls for now.
    #[error("the capability's circuit breaker is open until {until}")]
    BreakerOpen {
        /// When a trial call will be let through.
        until: DateTime<Utc>,
    },
    /// A redirect led somewhere the client does not go.
    #[error("redirect refused: {0}")]
    Redirect(String),
    /// The client could not be built from its config.
    #[error("capability client: {0}")]
    Config(String),
}

impl CapabilityError {
    /// The `outcome` label of `capability_requests_total` for this error.
    pub fn outcome(&self) -> &'static str {
        match self {
            CapabilityError::UnknownCapability(_)
            | CapabilityError::NotHttps(_)
            | CapabilityError::HostNotRegistered(_)
            | CapabilityError::InvalidRequest(_)
            | CapabilityError::Config(_) => "refused",
            CapabilityError::Blocked { .. } => "blocked",
            CapabilityError::Dns(_) => "dns",
            CapabilityError::Timeout => "timeout",
            CapabilityError::Connect(_) => "connect",
            CapabilityError::Tls(_) => "tls",
            CapabilityError::Status(status) if *status >= 500 => "server_error",
            CapabilityError::Status(_) => "client_error",
            CapabilityError::TooLarge { .. } => "too_large",
            CapabilityError::BreakerOpen { .. } => "breaker_open",
            CapabilityError::Redirect(_) => "redirect",
        }
    }

    /// True for failures another attempt may not meet: connect errors, time-outs, 502/503/504.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CapabilityError::Connect(_)
                | CapabilityError::Timeout
                | CapabilityError::Status(502..=504)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_registration_does_not_print_its_credential() {
        let reg = Registration {
            name: "k8s-deployments".to_owned(),
            base_url: url::Url::parse("https://cluster.example/api/").unwrap(),
            health_path: "/healthz".to_owned(),
            credential: Some(SecretString::from("cap-token-0123456789")),
        };
        let text = format!("{reg:?}");
        assert!(text.contains("k8s-deployments"), "{text}");
        assert!(!text.contains("cap-token-0123456789"), "{text}");
        let copy = reg.clone();
        assert_eq!(
            copy.credential.as_ref().map(|c| c.expose_secret()),
            Some("cap-token-0123456789")
        );
    }

    #[test]
    fn only_transient_failures_are_retried() {
        for e in [
            CapabilityError::Timeout,
            CapabilityError::Connect("reset".to_owned()),
            CapabilityError::Status(502),
            CapabilityError::Status(503),
            CapabilityError::Status(504),
        ] {
            assert!(e.is_transient(), "{e}");
        }
        for e in [
            CapabilityError::Status(500),
            CapabilityError::Status(501),
            CapabilityError::Status(429),
            CapabilityError::Tls("bad cert".to_owned()),
            CapabilityError::Dns("nxdomain".to_owned()),
            CapabilityError::TooLarge { limit: 1 },
            CapabilityError::Redirect("x".to_owned()),
            CapabilityError::Blocked {
                host: "h".to_owned(),
                addr: IpAddr::from([10, 0, 0, 1]),
                class: "private",
            },
        ] {
            assert!(!e.is_transient(), "{e}");
        }
    }
}
