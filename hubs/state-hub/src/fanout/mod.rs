//! Journal fan-out to NATS JetStream: every committed journal event, in order, exactly once in
//! the stream, on `<prefix>.<noun>.<verb>`.
//!
//! Delivery runs through the journal itself: a cursor row per stream records the newest event
//! JetStream acknowledged, and the publisher reads the journal after it. Journal writes never
//! wait for NATS; while it is down events queue in the journal and are published once it is
//! back. One replica publishes at a time (a PostgreSQL advisory lock). See docs/state-hub.md,
//! "Journal fan-out to NATS".

pub mod config;
pub mod cursor;
pub mod metrics;
pub mod publisher;
pub mod stream;
pub mod subject;

pub use config::NatsConfig;

use metrics::FanoutMetrics;
use prometheus::Registry;
use std::time::Duration;
use tokio::sync::watch;

/// Why the fan-out could not start.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// A credential named in `[nats]` cannot be used.
    #[error(transparent)]
    Auth(#[from] config::AuthError),
    /// The metrics could not be registered.
    #[error("fan-out metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The running publisher.
pub struct Fanout {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    cursor: watch::Receiver<i64>,
}

impl Fanout {
    /// The stored cursor as this replica last saw it.
    pub fn cursor(&self) -> watch::Receiver<i64> {
        self.cursor.clone()
    }

    /// Stops publishing: waits (time-boxed) for acknowledgements in flight, stores the cursor,
    /// releases the lock. Events committed later are published by the next publisher.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// Starts the publisher when `[nats] enabled = true`; `pg` is its own connection's config,
/// `head` the journal's head watch.
pub fn spawn(
    cfg: &NatsConfig,
    pg: tokio_postgres::Config,
    head: watch::Receiver<i64>,
    registry: &Registry,
) -> Result<Option<Fanout>, FanoutError> {
    if !cfg.enabled {
        return Ok(None);
    }
    let auth = cfg.auth()?;
    let metrics = FanoutMetrics::new(registry)?;
    let (cursor_tx, cursor) = watch::channel(0i64);
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(track_lag(head.clone(), cursor.clone(), metrics.lag.clone()));
    let publisher = publisher::Publisher {
        cfg: cfg.clone(),
        auth,
        pg,
        head,
        metrics,
        cursor_tx,
        stop: stop_rx,
    };
    tracing::info!(config = ?cfg, "journal fan-out enabled");
    let task = tokio::spawn(publisher.run());
    Ok(Some(Fanout { stop, task, cursor }))
}

/// Keeps `fanout_lag_events` at head − cursor; ends with the publisher.
async fn track_lag(
    mut head: watch::Receiver<i64>,
    mut cursor: watch::Receiver<i64>,
    lag: prometheus::IntGauge,
) {
    loop {
        let h = *head.borrow_and_update();
        let c = *cursor.borrow_and_update();
        lag.set((h - c).max(0));
        tokio::select! {
            r = head.changed() => if r.is_err() { return },
            r = cursor.changed() => if r.is_err() { return },
        }
        // Coalesce bursts: one update per few milliseconds is plenty for a gauge.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
