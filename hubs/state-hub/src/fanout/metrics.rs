//! The fan-out's Prometheus series.

use prometheus::{IntCounter, IntGauge, Registry};

/// Counters and gauges of one publisher.
#[derive(Clone)]
pub struct FanoutMetrics {
    /// Events acknowledged by JetStream (duplicates included).
    pub published: IntCounter,
    /// Acknowledgements that JetStream's de-duplication answered.
    pub duplicates: IntCounter,
    /// Failed publishes, connection attempts and stream checks.
    pub failures: IntCounter,
    /// Journal head minus cursor.
    pub lag: IntGauge,
    /// 1 while connected to NATS.
    pub connected: IntGauge,
    /// The stored cursor: newest journal seq acknowledged without gaps.
    pub cursor: IntGauge,
    /// 1 while this replica holds the publisher lock.
    pub leader: IntGauge,
}

impl FanoutMetrics {
    /// Creates and registers the series.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            published: IntCounter::new(
                "fanout_published_total",
                "Journal events acknowledged by JetStream",
            )?,
            duplicates: IntCounter::new(
                "fanout_duplicates_total",
                "Re-published journal events JetStream recognised as duplicates",
            )?,
            failures: IntCounter::new(
                "fanout_failures_total",
                "Failed publishes, NATS connection attempts and stream checks",
            )?,
            lag: IntGauge::new(
                "fanout_lag_events",
                "Journal events not yet acknowledged by JetStream (head seq minus cursor)",
            )?,
            connected: IntGauge::new("fanout_connected", "1 while connected to NATS")?,
            cursor: IntGauge::new(
                "fanout_cursor_seq",
                "Newest journal seq acknowledged by JetStream with every earlier one",
            )?,
            leader: IntGauge::new(
                "fanout_leader",
                "1 while this replica holds the publisher lock",
            )?,
        };
        registry.register(Box::new(m.published.clone()))?;
        registry.register(Box::new(m.duplicates.clone()))?;
        registry.register(Box::new(m.failures.clone()))?;
        registry.register(Box::new(m.lag.clone()))?;
        registry.register(Box::new(m.connected.clone()))?;
        registry.register(Box::new(m.cursor.clone()))?;
        registry.register(Box::new(m.leader.clone()))?;
        Ok(m)
    }
}
