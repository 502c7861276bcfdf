//! The capability client's Prometheus collectors, registered in the hub's registry.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use std::time::Duration;

/// Calls by capability and outcome, their latency, breaker states and SSRF refusals.
#[derive(Clone)]
pub(super) struct CapabilityMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    retries: IntCounterVec,
    breaker_open: IntGaugeVec,
    blocked: IntCounterVec,
}

impl CapabilityMetrics {
    /// Creates the collectors and registers them in `registry`.
    pub(super) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "capability_requests_total",
                "Capability calls by capability and outcome (one per call, retries included)",
            ),
            &["capability", "outcome"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "capability_request_duration_seconds",
                "Capability call latency, retries and back-off included",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["capability"],
        )?;
        let retries = IntCounterVec::new(
            Opts::new(
                "capability_retries_total",
                "Retried attempts of idempotent capability calls",
            ),
            &["capability"],
        )?;
        let breaker_open = IntGaugeVec::new(
            Opts::new(
                "capability_breaker_open",
                "1 while a capability's circuit breaker is open or half-open",
            ),
            &["capability"],
        )?;
        let blocked = IntCounterVec::new(
            Opts::new(
                "capability_blocked_total",
                "Addresses the SSRF guard refused, by class",
            ),
            &["class"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(breaker_open.clone()))?;
        registry.register(Box::new(blocked.clone()))?;
        Ok(Self {
            requests,
            duration,
            retries,
            breaker_open,
            blocked,
        })
    }

    /// Records one finished call.
    pub(super) fn call(&self, capability: &str, outcome: &str, elapsed: Duration) {
        self.requests
            .with_label_values(&[capability, outcome])
            .inc();
        self.duration
            .with_label_values(&[capability])
            .observe(elapsed.as_secs_f64());
    }

    /// Records one retry.
    pub(super) fn retry(&self, capability: &str) {
        self.retries.with_label_values(&[capability]).inc();
    }

    /// Sets the breaker gauge.
    pub(super) fn breaker(&self, capability: &str, tripped: bool) {
        self.breaker_open
            .with_label_values(&[capability])
            .set(i64::from(tripped));
    }

    /// Drops the breaker gauge of a capability that is no longer registered.
    pub(super) fn forget(&self, capability: &str) {
        // Absent when the capability was never called; nothing to drop then.
        let _ = self.breaker_open.remove_label_values(&[capability]);
    }

    /// Counts one refused address.
    pub(super) fn blocked(&self, class: &str) {
        self.blocked.with_label_values(&[class]).inc();
    }
}
