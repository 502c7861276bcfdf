//! Prometheus metrics: one registry per hub process, rendered at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};
use std::time::Duration;

/// The registry plus the HTTP metrics every hub records.
#[derive(Clone)]
pub struct HttpMetrics {
    /// Hubs register their own collectors here.
    pub registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    pool: IntGaugeVec,
}

impl HttpMetrics {
    /// A fresh registry with the HTTP collectors registered.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ],
            ),
            &["method", "route"],
        )?;
        let pool = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Database pool connections by pool and state",
            ),
            &["pool", "state"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        Ok(Self {
            registry,
            requests,
            duration,
            pool,
        })
    }

    /// Records one finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.duration
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// Updates the pool gauges from a deadpool status.
    pub fn pool_status(&self, name: &str, status: deadpool_postgres::Status) {
        let set = |state: &str, v: usize| {
            self.pool
                .with_label_values(&[name, state])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set("max", status.max_size);
        set("open", status.size);
        set("idle", status.available);
        set("waiting", status.waiting);
    }

    /// Renders the registry in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}
