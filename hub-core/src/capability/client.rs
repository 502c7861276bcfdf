//! The HTTP side: one reqwest client (rustls, guarded resolver, guarded redirects, no proxy),
//! the registrations it may call, retries, breakers and metrics.

use super::breaker::{Admission, Breaker, Verdict};
use super::config::{read_ca_file, CapabilityClientConfig};
use super::metrics::CapabilityMetrics;
use super::resolver::{BlockedAddress, DnsFailure, GuardedResolver};
use super::{
    target, BreakerState, CapabilityError, CapabilityResponse, ProbeResult, Registration,
    MAX_REDIRECTS,
};
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{redirect, Method};
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use url::{Host, Url};

/// First back-off step; doubled per retry, jittered, capped at [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Longest idempotency key sent; the state hub stores keys of this size.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

type Registrations = HashMap<String, Arc<Registration>>;

/// A redirect the policy refused, carried through reqwest's error chain.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RedirectRefused(String);

/// Calls capabilities of the application cluster. `Send + Sync`; clones share everything.
#[derive(Clone)]
pub struct CapabilityClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    guard: Arc<GuardedResolver>,
    registrations: Arc<RwLock<Registrations>>,
    breakers: Mutex<HashMap<String, Breaker>>,
    metrics: CapabilityMetrics,
    max_retries: u32,
    breaker_failures: u32,
    breaker_open: Duration,
    max_response_bytes: usize,
}

impl std::fmt::Debug for CapabilityClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.registrations().keys().cloned().collect();
        f.debug_struct("CapabilityClient")
            .field("registrations", &names)
            .field("allow_cidrs", &self.inner.guard.allow)
            .field("max_retries", &self.inner.max_retries)
            .finish_non_exhaustive()
    }
}

impl CapabilityClient {
    /// Validates `cfg`, builds the HTTP client and registers the metrics in `registry`; no
    /// registrations yet, so nothing is callable until [`Self::set_registrations`].
    pub fn new(
        cfg: &CapabilityClientConfig,
        registry: &prometheus::Registry,
    ) -> Result<Self, CapabilityError> {
        let mut problems = crate::config::Problems::default();
        cfg.validate(&mut problems);
        if !problems.is_empty() {
            return Err(CapabilityError::Config(problems.lines().join("; ")));
        }
        let metrics = CapabilityMetrics::register(registry)
            .map_err(|e| CapabilityError::Config(format!("metrics: {e}")))?;
        let guard = Arc::new(GuardedResolver {
            allow: cfg.allow_cidrs.clone().into(),
            metrics: metrics.clone(),
        });
        let registrations: Arc<RwLock<Registrations>> = Arc::default();
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .https_only(true)
            // An HTTPS_PROXY in the unit's environment would otherwise receive every call and
            // its credential, and would do the DNS lookups the guard must see.
            .no_proxy()
            .dns_resolver(Arc::clone(&guard))
            .redirect(redirect_policy(
                Arc::clone(&registrations),
                Arc::clone(&guard),
            ))
            // The previous URL of a redirect chain is nobody else's business.
            .referer(false)
            .connect_timeout(cfg.connect_timeout())
            .timeout(cfg.request_timeout())
            .user_agent(concat!("hubplane/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_file {
            for cert in read_ca_file(path).map_err(CapabilityError::Config)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| CapabilityError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                guard,
                registrations,
                breakers: Mutex::default(),
                metrics,
                max_retries: cfg.max_retries,
                breaker_failures: cfg.breaker_failures,
                breaker_open: cfg.breaker_open(),
                max_response_bytes: cfg.max_response_bytes,
            }),
        })
    }

    /// Replaces the set of callable registrations (the domain hub refreshes them from the state
    /// hub). Breakers of capabilities that are gone are dropped; the others keep their state.
    pub fn set_registrations(&self, regs: Vec<Registration>) {
        let mut fresh = Registrations::with_capacity(regs.len());
        for reg in regs {
            if let Err(e) = target::check_base(&reg.base_url) {
                tracing::warn!(capability = %reg.name, error = %e, "capability registration cannot be called");
            }
            let name = reg.name.clone();
            if fresh.insert(name.clone(), Arc::new(reg)).is_some() {
                tracing::warn!(capability = %name, "capability registered twice; the last registration wins");
            }
        }
        let mut breakers = self.breakers();
        breakers.retain(|name, _| {
            let keep = fresh.contains_key(name);
            if !keep {
                self.inner.metrics.forget(name);
            }
            keep
        });
        drop(breakers);
        *self
            .inner
            .registrations
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    /// GET base_url + path of a registered capability; idempotent, so retried with jittered
    /// back-off on connect errors, time-outs and 502/503/504.
    pub async fn get(
        &self,
        capability: &str,
        path: &str,
    ) -> Result<CapabilityResponse, CapabilityError> {
        self.call(capability, Method::GET, path, None, None).await
    }

    /// POST JSON; retried only when an idempotency key is given (sent as `Idempotency-Key`), as
    /// a repeated POST without one could perform the action twice.
    pub async fn post(
        &self,
        capability: &str,
        path: &str,
        body: &serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> Result<CapabilityResponse, CapabilityError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            CapabilityError::InvalidRequest(format!("the body cannot be serialised: {e}"))
        })?;
        self.call(
            capability,
            Method::POST,
            path,
            Some(Bytes::from(body)),
            idempotency_key,
        )
        .await
    }

    /// GET the registration's health path once, without retries. It neither waits for nor moves
    /// the breaker, so a probe reports the truth while calls fail fast. Any HTTP answer is a
    /// result; only failing to get one is an error.
    pub async fn probe(&self, capability: &str) -> Result<ProbeResult, CapabilityError> {
        let reg = self.registration(capability)?;
        let started = Instant::now();
        let result = self.probe_registered(&reg, started).await;
        let outcome = match &result {
            Ok(p) if (200..300).contains(&p.status) => "ok",
            Ok(p) => CapabilityError::Status(p.status).outcome(),
            Err(e) => e.outcome(),
        };
        self.inner
            .metrics
            .call(&reg.name, outcome, started.elapsed());
        result
    }

    /// Current breaker state of a capability; `Closed` for one never called or not registered.
    pub fn breaker_state(&self, capability: &str) -> BreakerState {
        self.breakers()
            .get(capability)
            .map_or(BreakerState::Closed, |b| b.state(Instant::now()))
    }

    async fn probe_registered(
        &self,
        reg: &Registration,
        started: Instant,
    ) -> Result<ProbeResult, CapabilityError> {
        let url = target::request_url(&reg.base_url, &reg.health_path)?;
        self.check_literal_host(&url)?;
        let headers = request_headers(reg, None, false)?;
        let response = self
            .inner
            .http
            .get(url)
            .headers(headers)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        Ok(ProbeResult {
            status: response.status().as_u16(),
            latency: started.elapsed(),
            checked_at: Utc::now(),
        })
    }

    async fn call(
        &self,
        capability: &str,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        idempotency_key: Option<&str>,
    ) -> Result<CapabilityResponse, CapabilityError> {
        // Unknown names are not counted: they come from callers, and each would be a new series.
        let reg = self.registration(capability)?;
        let started = Instant::now();
        let result = self
            .call_registered(&reg, method.clone(), path, body, idempotency_key)
            .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.inner
            .metrics
            .call(&reg.name, outcome, started.elapsed());
        match &result {
            Ok(r) => {
                tracing::debug!(capability = %reg.name, %method, status = r.status, attempts = r.attempts, "capability call")
            }
            Err(e) => {
                tracing::info!(capability = %reg.name, %method, error = %e, "capability call failed")
            }
        }
        result
    }

    async fn call_registered(
        &self,
        reg: &Registration,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        idempotency_key: Option<&str>,
    ) -> Result<CapabilityResponse, CapabilityError> {
        let url = target::request_url(&reg.base_url, path)?;
        self.check_literal_host(&url)?;
        let headers = request_headers(reg, idempotency_key, body.is_some())?;
        let retryable = method == Method::GET || idempotency_key.is_some();
        let attempts_allowed = if retryable {
            self.inner.max_retries.saturating_add(1)
        } else {
            1
        };

        let mut admitted = self.admit(&reg.name)?;
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let sent = self
                .send_once(method.clone(), url.clone(), headers.clone(), body.clone())
                .await;
            match sent {
                Err(e) if e.is_transient() && attempt < attempts_allowed => {
                    self.inner.metrics.retry(&reg.name);
                    tracing::debug!(capability = %reg.name, attempt, error = %e, "retrying capability call");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Ok(mut response) => {
                    response.attempts = attempt;
                    break Ok(response);
                }
                Err(e) => break Err(e),
            }
        };
        admitted.settle(verdict(&result));
        result
    }

    async fn send_once(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<CapabilityResponse, CapabilityError> {
        let mut request = self.inner.http.request(method, url).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        let mut response = request.send().await.map_err(|e| transport_error(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(CapabilityError::Status(status.as_u16()));
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_capped(&mut response, self.inner.max_response_bytes).await?;
        Ok(CapabilityResponse {
            status: status.as_u16(),
            content_type,
            body,
            fetched_at: Utc::now(),
            attempts: 1,
        })
    }

    fn registration(&self, capability: &str) -> Result<Arc<Registration>, CapabilityError> {
        self.registrations()
            .get(capability)
            .cloned()
            .ok_or_else(|| CapabilityError::UnknownCapability(capability.to_owned()))
    }

    fn registrations(&self) -> std::sync::RwLockReadGuard<'_, Registrations> {
        self.inner
            .registrations
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn breakers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Breaker>> {
        self.inner
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// reqwest connects to IP literals without asking the resolver, so they are checked here.
    fn check_literal_host(&self, url: &Url) -> Result<(), CapabilityError> {
        literal_ip(url).map_or(Ok(()), |ip| {
            self.inner
                .guard
                .check_literal(url.host_str().unwrap_or(""), ip)
                .map_err(blocked)
        })
    }

    fn admit(&self, capability: &str) -> Result<Admitted<'_>, CapabilityError> {
        let mut breakers = self.breakers();
        let breaker = breakers.entry(capability.to_owned()).or_default();
        match breaker.admit(Instant::now()) {
            Ok(admission) => Ok(Admitted {
                client: self,
                capability: capability.to_owned(),
                admission,
                settled: false,
            }),
            Err(until) => Err(CapabilityError::BreakerOpen { until }),
        }
    }

    fn record(&self, capability: &str, admission: Admission, verdict: Verdict) {
        let mut breakers = self.breakers();
        let breaker = breakers.entry(capability.to_owned()).or_default();
        let changed = breaker.record(
            admission,
            verdict,
            Instant::now(),
            self.inner.breaker_failures,
            self.inner.breaker_open,
        );
        let tripped = breaker.is_tripped();
        drop(breakers);
        if changed {
            self.inner.metrics.breaker(capability, tripped);
            if tripped {
                tracing::warn!(capability, "capability circuit breaker opened");
            } else {
                tracing::info!(capability, "capability circuit breaker closed");
            }
        }
    }
}

/// A call the breaker let through. Dropped unsettled (the caller gave up on the future), it
/// records an inconclusive outcome, so a cancelled trial call does not hold the breaker
/// half-open forever.
struct Admitted<'a> {
    client: &'a CapabilityClient,
    capability: String,
    admission: Admission,
    settled: bool,
}

impl Admitted<'_> {
    fn settle(&mut self, verdict: Verdict) {
        self.settled = true;
        self.client
            .record(&self.capability, self.admission, verdict);
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.client
                .record(&self.capability, self.admission, Verdict::Inconclusive);
        }
    }
}

/// What the outcome of a call says about the capability's health.
fn verdict(result: &Result<CapabilityResponse, CapabilityError>) -> Verdict {
    match result {
        Ok(_) => Verdict::Healthy,
        Err(CapabilityError::Status(status)) if *status >= 500 => Verdict::Failed,
        Err(CapabilityError::Status(_) | CapabilityError::TooLarge { .. }) => Verdict::Healthy,
        Err(
            CapabilityError::Timeout
            | CapabilityError::Connect(_)
            | CapabilityError::Tls(_)
            | CapabilityError::Dns(_),
        ) => Verdict::Failed,
        Err(_) => Verdict::Inconclusive,
    }
}

/// Authorization (from the registration), Idempotency-Key and Content-Type for a call.
fn request_headers(
    reg: &Registration,
    idempotency_key: Option<&str>,
    json_body: bool,
) -> Result<HeaderMap, CapabilityError> {
    let mut headers = HeaderMap::new();
    if let Some(credential) = &reg.credential {
        // The message must not echo the value: it is the credential.
        let mut value = HeaderValue::from_str(&format!("Bearer {}", credential.expose_secret()))
            .map_err(|_| {
                CapabilityError::InvalidRequest(
                    "the registration's credential is not a valid header value".to_owned(),
                )
            })?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    if let Some(key) = idempotency_key {
        let usable = !key.is_empty()
            && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
            && key.bytes().all(|b| b.is_ascii_graphic());
        let value = HeaderValue::from_str(key).ok().filter(|_| usable).ok_or_else(|| {
            CapabilityError::InvalidRequest(format!(
                "the idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
            ))
        })?;
        headers.insert(HeaderName::from_static("idempotency-key"), value);
    }
    if json_body {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(headers)
}

/// The redirect policy: https only, onto the host of a callable registration, at most
/// [`MAX_REDIRECTS`] hops, IP literals through the guard (names go through the resolver).
fn redirect_policy(
    registrations: Arc<RwLock<Registrations>>,
    guard: Arc<GuardedResolver>,
) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        let judged = judge_redirect(
            attempt.url(),
            attempt.previous().len(),
            &registrations,
            &guard,
        );
        match judged {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    })
}

fn judge_redirect(
    next: &Url,
    hops_so_far: usize,
    registrations: &RwLock<Registrations>,
    guard: &GuardedResolver,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // `previous` holds the original URL plus every hop already followed.
    if hops_so_far > MAX_REDIRECTS {
        return Err(Box::new(RedirectRefused(format!(
            "more than {MAX_REDIRECTS} redirects"
        ))));
    }
    if next.scheme() != "https" {
        return Err(Box::new(RedirectRefused(format!(
            "to {}, which is not https",
            target::origin_text(next)
        ))));
    }
    let registered = registrations
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .any(|reg| {
            target::check_base(&reg.base_url).is_ok() && target::same_origin(&reg.base_url, next)
        });
    if !registered {
        return Err(Box::new(RedirectRefused(format!(
            "to {}, which no callable registration names",
            target::origin_text(next)
        ))));
    }
    if let Some(ip) = literal_ip(next) {
        guard.check_literal(next.host_str().unwrap_or(""), ip)?;
    }
    Ok(())
}

fn literal_ip(url: &Url) -> Option<std::net::IpAddr> {
    match url.host() {
        Some(Host::Ipv4(ip)) => Some(ip.into()),
        Some(Host::Ipv6(ip)) => Some(ip.into()),
        _ => None,
    }
}

/// Reads the body, refusing it as soon as it exceeds `limit`, declared or not.
async fn read_capped(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Bytes, CapabilityError> {
    let too_large = CapabilityError::TooLarge { limit };
    let declared = response.content_length().unwrap_or(0);
    if declared > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(too_large);
    }
    let mut body = BytesMut::with_capacity(usize::try_from(declared).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The pause before retry number `retry` (1-based): exponential with "equal jitter", so
/// clients that failed together do not come back together.
fn backoff(retry: u32) -> Duration {
    let step = BASE_BACKOFF
        .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let half = step / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(0);
    half + Duration::from_millis(rand::thread_rng().gen_range(0..=jitter_ms))
}

fn blocked(b: BlockedAddress) -> CapabilityError {
    CapabilityError::Blocked {
        host: b.host,
        addr: b.addr,
        class: b.class,
    }
}

/// Maps a reqwest error by what its cause chain holds: the guard's refusals first, then
/// time-outs, TLS, redirects and connection failures.
fn transport_error(e: &reqwest::Error) -> CapabilityError {
    if let Some(b) = find_cause::<BlockedAddress>(e) {
        return CapabilityError::Blocked {
            host: b.host.clone(),
            addr: b.addr,
            class: b.class,
        };
    }
    if let Some(r) = find_cause::<RedirectRefused>(e) {
        return CapabilityError::Redirect(r.0.clone());
    }
    if let Some(d) = find_cause::<DnsFailure>(e) {
        return CapabilityError::Dns(d.to_string());
    }
    if e.is_timeout() {
        return CapabilityError::Timeout;
    }
    if let Some(t) = find_cause::<rustls::Error>(e) {
        return CapabilityError::Tls(t.to_string());
    }
    if e.is_redirect() {
        return CapabilityError::Redirect(causes(e));
    }
    CapabilityError::Connect(causes(e))
}

/// The first error of type `T` in the chain, looking inside `io::Error`s too: the TLS stack
/// reports a handshake failure as an I/O error wrapping an I/O error wrapping the rustls error,
/// and `io::Error::source` skips the wrapped error itself.
fn find_cause<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        current = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// The causes of a reqwest error on one line. reqwest's own message names the full URL; the
/// causes say what went wrong without it.
fn causes(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = std::error::Error::source(e);
    while let Some(err) = current {
        let text = err.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        current = err.source();
    }
    if parts.is_empty() {
        "request failed".to_owned()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for _ in 0..50 {
            let first = backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let second = backoff(2);
            assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
            let late = backoff(30);
            assert!(late >= Duration::from_secs(1) && late <= MAX_BACKOFF);
        }
    }

    #[test]
    fn the_client_is_shareable_and_its_futures_are_send() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<CapabilityClient>();
        let client = CapabilityClient::new(
            &CapabilityClientConfig::default(),
            &prometheus::Registry::new(),
        )
        .unwrap();
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&client.get("c", "/"));
        assert_send(&client.post("c", "/", &serde_json::json!({}), Some("k")));
        assert_send(&client.probe("c"));
    }

    #[test]
    fn headers_carry_the_credential_marked_sensitive_and_refuse_bad_keys() {
        let reg = Registration {
            name: "c".to_owned(),
            base_url: Url::parse("https://cluster.example/").unwrap(),
            health_path: "/healthz".to_owned(),
            credential: Some(secrecy::SecretString::from("tok-abc")),
        };
        let headers = request_headers(&reg, Some("key-1"), true).unwrap();
        let auth = headers.get(AUTHORIZATION).unwrap();
        assert_eq!(auth.to_str().unwrap(), "Bearer tok-abc");
        assert!(auth.is_sensitive());
        assert_eq!(headers.get("idempotency-key").unwrap(), "key-1");
        assert_eq!(headers.get(CONTENT_TYPE).unwrap(), "application/json");
        for bad in ["", "with space", "tab\t", "ü", "k".repeat(256).as_str()] {
            assert!(
                matches!(
                    request_headers(&reg, Some(bad), false),
                    Err(CapabilityError::InvalidRequest(_))
                ),
                "{bad:?}"
            );
        }
        let broken = Registration {
            credential: Some(secrecy::SecretString::from("line\nbreak-secret")),
            ..reg
        };
        let err = request_headers(&broken, None, false).unwrap_err();
        assert!(!err.to_string().contains("break-secret"), "{err}");
    }

    #[test]
    fn the_same_registry_cannot_take_two_clients() {
        let registry = prometheus::Registry::new();
        let cfg = CapabilityClientConfig::default();
        assert!(CapabilityClient::new(&cfg, &registry).is_ok());
        assert!(matches!(
            CapabilityClient::new(&cfg, &registry),
            Err(CapabilityError::Config(_))
        ));
        let bad = CapabilityClientConfig {
            max_retries: 9,
            ..CapabilityClientConfig::default()
        };
        let err = CapabilityClient::new(&bad, &prometheus::Registry::new()).unwrap_err();
        assert!(err.to_string().contains("max_retries"), "{err}");
    }
}
