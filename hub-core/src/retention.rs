//! Retention: the purge job that keeps every table outside the journal from growing without
//! bound (ended sessions, stale login flows, and what each hub adds: idempotency records,
//! observations, delivered outbox rows), and the table-size gauges that show whether it does.
//!
//! Every replica runs the job; each batch of a table is deleted in a transaction that first takes
//! that table's advisory lock with `pg_try_advisory_xact_lock`, so two replicas never purge the
//! same table at once, and rows are picked with `FOR UPDATE SKIP LOCKED`, so a purge never waits
//! on a request holding a row. The journal (`events`) is never a target: no statement here names it.

use crate::config::Problems;
use crate::identity::flows;
use deadpool_postgres::Pool;
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::sync::watch;

/// Default days an ended session is kept.
pub const DEFAULT_SESSIONS_DAYS: u32 = 30;
/// Default hours an idempotency record is honoured (state hub).
pub const DEFAULT_IDEMPOTENCY_HOURS: u32 = 168;
/// Default days an observation is kept, the newest of each path excepted (domain hubs).
pub const DEFAULT_OBSERVATIONS_DAYS: u32 = 90;
/// Default days a delivered outbox row is kept (domain hubs).
pub const DEFAULT_OUTBOX_DELIVERED_DAYS: u32 = 30;
/// Default seconds between purge runs.
pub const DEFAULT_PURGE_INTERVAL_SECONDS: u32 = 3600;
/// Default rows deleted per statement.
pub const DEFAULT_BATCH_SIZE: u32 = 1000;
/// How often table sizes are sampled between purge runs.
pub const TABLE_SIZE_EVERY: Duration = Duration::from_secs(60);
/// Most batches one table gets in one run, so a huge backlog is worked off over several runs
/// instead of one run that never ends.
pub const MAX_BATCHES_PER_RUN: u32 = 1000;

const DAY: u64 = 24 * 3600;
const MAX_DAYS: u32 = 3650;

fn default_sessions_days() -> u32 {
    DEFAULT_SESSIONS_DAYS
}
fn default_purge_interval() -> u32 {
    DEFAULT_PURGE_INTERVAL_SECONDS
}
fn default_batch_size() -> u32 {
    DEFAULT_BATCH_SIZE
}

/// `[retention]`: how long rows outside the journal are kept, and how the purge runs. The
/// windows a hub has no table for are refused by [`RetentionConfig::validate`].
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days a session is kept after it ended (expired, idled out or revoked).
    #[serde(default = "default_sessions_days")]
    pub sessions_days: u32,
    /// Hours an `Idempotency-Key` is remembered (state hub only).
    #[serde(default)]
    pub idempotency_hours: Option<u32>,
    /// Days an observation is kept; the newest of each capability path is always kept (domain
    /// hubs only).
    #[serde(default)]
    pub observations_days: Option<u32>,
    /// Days a delivered outbox row is kept; pending and rejected rows are never purged (domain
    /// hubs only).
    #[serde(default)]
    pub outbox_delivered_days: Option<u32>,
    /// Seconds between purge runs.
    #[serde(default = "default_purge_interval")]
    pub purge_interval_seconds: u32,
    /// Most rows one delete statement removes.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            sessions_days: DEFAULT_SESSIONS_DAYS,
            idempotency_hours: None,
            observations_days: None,
            outbox_delivered_days: None,
            purge_interval_seconds: DEFAULT_PURGE_INTERVAL_SECONDS,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// A retention window only some hubs have a table for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// `idempotency_hours`: the state hub's `idempotency_keys`.
    Idempotency,
    /// `observations_days`: a domain hub's `observations`.
    Observations,
    /// `outbox_delivered_days`: a domain hub's `outbox`.
    OutboxDelivered,
}

impl Window {
    fn key(self) -> &'static str {
        match self {
            Window::Idempotency => "idempotency_hours",
            Window::Observations => "observations_days",
            Window::OutboxDelivered => "outbox_delivered_days",
        }
    }
}

fn check(p: &mut Problems, key: &str, value: u32, min: u32, max: u32, why: &str) {
    if !(min..=max).contains(&value) {
        p.push(format!(
            "retention.{key}: {value} is out of range, must be between {min} and {max}{why}"
        ));
    }
}

impl RetentionConfig {
    /// One line per problem. `windows` are the hub-specific windows this hub has tables for; a
    /// window set for a table the hub does not have is refused, not silently ignored.
    pub fn validate(&self, windows: &[Window], p: &mut Problems) {
        check(p, "sessions_days", self.sessions_days, 1, MAX_DAYS, "");
        if let Some(h) = self.idempotency_hours {
            check(
                p,
                "idempotency_hours",
                h,
                24,
                MAX_DAYS * 24,
                " (a shorter window lets a client that retries after an outage write twice)",
            );
        }
        if let Some(d) = self.observations_days {
            check(p, "observations_days", d, 1, MAX_DAYS, "");
        }
        if let Some(d) = self.outbox_delivered_days {
            check(p, "outbox_delivered_days", d, 1, MAX_DAYS, "");
        }
        check(
            p,
            "purge_interval_seconds",
            self.purge_interval_seconds,
            10,
            86_400,
            "",
        );
        check(p, "batch_size", self.batch_size, 1, 100_000, "");
        for (window, set) in [
            (Window::Idempotency, self.idempotency_hours.is_some()),
            (Window::Observations, self.observations_days.is_some()),
            (
                Window::OutboxDelivered,
                self.outbox_delivered_days.is_some(),
            ),
        ] {
            if set && !windows.contains(&window) {
                p.push(format!(
                    "retention.{}: this hub has no such table; remove the key",
                    window.key()
                ));
            }
        }
    }

    /// How long ended sessions are kept.
    pub fn sessions(&self) -> Duration {
        Duration::from_secs(u64::from(self.sessions_days) * DAY)
    }
    /// How long idempotency records are kept.
    pub fn idempotency(&self) -> Duration {
        let hours = self.idempotency_hours.unwrap_or(DEFAULT_IDEMPOTENCY_HOURS);
        Duration::from_secs(u64::from(hours) * 3600)
    }
    /// How long observations are kept.
    pub fn observations(&self) -> Duration {
        let days = self.observations_days.unwrap_or(DEFAULT_OBSERVATIONS_DAYS);
        Duration::from_secs(u64::from(days) * DAY)
    }
    /// How long delivered outbox rows are kept.
    pub fn outbox_delivered(&self) -> Duration {
        let days = self
            .outbox_delivered_days
            .unwrap_or(DEFAULT_OUTBOX_DELIVERED_DAYS);
        Duration::from_secs(u64::from(days) * DAY)
    }
    /// Time between purge runs.
    pub fn purge_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.purge_interval_seconds))
    }
}

/// One table the purge job works on.
#[derive(Clone, Debug)]
pub struct PurgeTarget {
    /// Metric label and advisory-lock name, e.g. `sessions`.
    pub table: &'static str,
    /// Rows older than this are purged.
    pub keep: Duration,
    /// A `DELETE` removing at most `$2` (bigint) rows older than `now()` minus `$1` (float8
    /// seconds), picked with `FOR UPDATE SKIP LOCKED`.
    pub sql: &'static str,
}

/// Ended sessions: expired, idled out or revoked longer ago than `keep`.
const SESSIONS_SQL: &str = "DELETE FROM sessions WHERE id IN (
    SELECT id FROM sessions
     WHERE LEAST(idle_expires_at, absolute_expires_at, COALESCE(revoked_at, 'infinity'))
           < now() - make_interval(secs => $1::float8)
     LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Logins started and never finished.
const LOGIN_FLOWS_SQL: &str = "DELETE FROM login_flows WHERE flow_hash IN (
    SELECT flow_hash FROM login_flows
     WHERE created_at < now() - make_interval(secs => $1::float8)
     LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// hub-core's own tables every hub carries: ended sessions and abandoned login flows (which
/// are useless once older than a login may take).
pub fn core_targets(cfg: &RetentionConfig) -> Vec<PurgeTarget> {
    vec![
        PurgeTarget {
            table: "sessions",
            keep: cfg.sessions(),
            sql: SESSIONS_SQL,
        },
        PurgeTarget {
            table: "login_flows",
            keep: Duration::from_secs(flows::MAX_AGE_MINUTES.unsigned_abs() * 60),
            sql: LOGIN_FLOWS_SQL,
        },
    ]
}

/// The purge and table-size metrics.
#[derive(Clone)]
pub struct RetentionMetrics {
    rows: IntCounterVec,
    runs: IntCounterVec,
    last_success: GaugeVec,
    table_bytes: IntGaugeVec,
    table_rows: IntGaugeVec,
}

impl RetentionMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let rows = IntCounterVec::new(
            Opts::new(
                "hub_purge_rows_total",
                "Rows deleted by the retention purge.",
            ),
            &["table"],
        )?;
        let runs = IntCounterVec::new(
            Opts::new(
                "hub_purge_runs_total",
                "Retention purge runs by table and outcome (ok, busy: another replica held the \
                 table, error).",
            ),
            &["table", "outcome"],
        )?;
        let last_success = GaugeVec::new(
            Opts::new(
                "hub_purge_last_success_timestamp_seconds",
                "Unix time the table's last purge run finished without error.",
            ),
            &["table"],
        )?;
        let table_bytes = IntGaugeVec::new(
            Opts::new(
                "hub_table_size_bytes",
                "Size of a table with its indexes and TOAST (pg_total_relation_size).",
            ),
            &["table"],
        )?;
        let table_rows = IntGaugeVec::new(
            Opts::new(
                "hub_table_rows_estimate",
                "Planner's estimate of a table's rows (pg_class.reltuples; 0 until analyzed).",
            ),
            &["table"],
        )?;
        registry.register(Box::new(rows.clone()))?;
        registry.register(Box::new(runs.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        registry.register(Box::new(table_bytes.clone()))?;
        registry.register(Box::new(table_rows.clone()))?;
        Ok(Self {
            rows,
            runs,
            last_success,
            table_bytes,
            table_rows,
        })
    }
}

/// How one table's purge in one run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything due is gone (or the batch limit per run was reached).
    Ok,
    /// Another replica held the table's lock; it carries on.
    Busy,
    /// A statement failed; the next run tries again.
    Error(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Busy => "busy",
            Outcome::Error(_) => "error",
        }
    }
}

/// One table's purge in one run.
#[derive(Debug, Clone)]
pub struct TableRun {
    /// The table.
    pub table: &'static str,
    /// Rows this run deleted.
    pub deleted: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// The advisory lock key a table's purge is claimed with.
pub fn lock_key(table: &str) -> i64 {
    let digest = Sha256::digest(format!("hubplane:retention:{table}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The purge job of one hub process.
pub struct Purger {
    pool: Pool,
    targets: Vec<PurgeTarget>,
    batch_size: i64,
    interval: Duration,
    metrics: RetentionMetrics,
}

impl Purger {
    /// A purger over `targets`, registering its metrics in `registry`.
    pub fn new(
        pool: Pool,
        targets: Vec<PurgeTarget>,
        cfg: &RetentionConfig,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            pool,
            targets,
            batch_size: i64::from(cfg.batch_size.max(1)),
            interval: cfg.purge_interval(),
            metrics: RetentionMetrics::register(registry)?,
        })
    }

    /// The tables it purges.
    pub fn targets(&self) -> &[PurgeTarget] {
        &self.targets
    }

    /// Purges every target once, then samples table sizes. Stops between batches when
    /// `stopping` turns true.
    pub async fn run_once(&self, stopping: &watch::Receiver<bool>) -> Vec<TableRun> {
        let mut runs = Vec::with_capacity(self.targets.len());
        for target in &self.targets {
            if *stopping.borrow() {
                break;
            }
            let run = self.purge(target, stopping).await;
            let outcome = run.outcome.label();
            self.metrics
                .runs
                .with_label_values(&[target.table, outcome])
                .inc();
            self.metrics
                .rows
                .with_label_values(&[target.table])
                .inc_by(run.deleted);
            match &run.outcome {
                Outcome::Ok => {
                    self.metrics
                        .last_success
                        .with_label_values(&[target.table])
                        .set(chrono::Utc::now().timestamp() as f64);
                    tracing::info!(
                        table = target.table,
                        deleted = run.deleted,
                        keep_seconds = target.keep.as_secs(),
                        outcome,
                        "retention purge"
                    );
                }
                Outcome::Busy => tracing::info!(
                    table = target.table,
                    deleted = run.deleted,
                    outcome,
                    "retention purge: another replica holds the table"
                ),
                Outcome::Error(e) => tracing::warn!(
                    table = target.table,
                    deleted = run.deleted,
                    outcome,
                    error = %e,
                    "retention purge failed"
                ),
            }
            runs.push(run);
        }
        if let Err(e) = self.sample_sizes().await {
            tracing::warn!(error = %e, "cannot sample table sizes");
        }
        runs
    }

    /// Deletes one target's due rows in batches, each batch claimed with the table's advisory
    /// lock in its own short transaction.
    pub async fn purge(&self, target: &PurgeTarget, stopping: &watch::Receiver<bool>) -> TableRun {
        let key = lock_key(target.table);
        let keep = target.keep.as_secs_f64();
        let mut deleted = 0u64;
        let mut outcome = Outcome::Ok;
        for _ in 0..MAX_BATCHES_PER_RUN {
            match self.batch(target, key, keep).await {
                Ok(Some(n)) => {
                    deleted += n;
                    if n < self.batch_size.unsigned_abs() {
                        break;
                    }
                }
                Ok(None) => {
                    outcome = Outcome::Busy;
                    break;
                }
                Err(e) => {
                    outcome = Outcome::Error(e);
                    break;
                }
            }
            if *stopping.borrow() {
                break;
            }
        }
        TableRun {
            table: target.table,
            deleted,
            outcome,
        }
    }

    /// One batch: `None` when another replica holds the table.
    async fn batch(
        &self,
        target: &PurgeTarget,
        key: i64,
        keep: f64,
    ) -> Result<Option<u64>, String> {
        let mut client = self.pool.get().await.map_err(|e| e.to_string())?;
        let tx = client.transaction().await.map_err(|e| e.to_string())?;
        let claimed: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&key])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| e.to_string())?;
        if !claimed {
            let _ = tx.rollback().await;
            return Ok(None);
        }
        let n = tx
            .execute(target.sql, &[&keep, &self.batch_size])
            .await
            .map_err(|e| format!("{}: {e}", target.table))?;
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok(Some(n))
    }

    /// Refreshes `hub_table_size_bytes` and `hub_table_rows_estimate` for every table of the
    /// hub's schema: one catalog query, no table is scanned.
    pub async fn sample_sizes(&self) -> Result<usize, String> {
        let client = self.pool.get().await.map_err(|e| e.to_string())?;
        let rows = client
            .query(
                "SELECT c.relname::text, pg_total_relation_size(c.oid),
                        GREATEST(c.reltuples, 0)::bigint
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        for row in &rows {
            let name: String = row.try_get(0).map_err(|e| e.to_string())?;
            let bytes: i64 = row.try_get(1).map_err(|e| e.to_string())?;
            let estimate: i64 = row.try_get(2).map_err(|e| e.to_string())?;
            self.metrics
                .table_bytes
                .with_label_values(&[&name])
                .set(bytes);
            self.metrics
                .table_rows
                .with_label_values(&[&name])
                .set(estimate);
        }
        Ok(rows.len())
    }

    /// Purges at start and then every interval, samples table sizes every minute, and returns
    /// when `stopping` turns true (a batch in flight finishes first).
    pub async fn run(self: std::sync::Arc<Self>, stopping: watch::Receiver<bool>) {
        let mut purge_tick = tokio::time::interval(self.interval);
        purge_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut size_tick = tokio::time::interval(TABLE_SIZE_EVERY);
        size_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        size_tick.reset();
        let mut watch = stopping.clone();
        loop {
            tokio::select! {
                // Stopping, or the shutdown registry is gone: either way, stop.
                _ = async { watch.wait_for(|s| *s).await.is_ok() } => break,
                _ = purge_tick.tick() => {
                    self.run_once(&stopping).await;
                }
                _ = size_tick.tick() => {
                    if let Err(e) = self.sample_sizes().await {
                        tracing::debug!(error = %e, "cannot sample table sizes");
                    }
                }
            }
        }
        tracing::info!("retention purge stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(cfg: &RetentionConfig, windows: &[Window]) -> Vec<String> {
        let mut p = Problems::default();
        cfg.validate(windows, &mut p);
        p.lines().to_vec()
    }

    #[test]
    fn defaults_are_valid_and_sane() {
        let cfg = RetentionConfig::default();
        assert!(problems(&cfg, &[Window::Idempotency]).is_empty());
        assert_eq!(cfg.sessions(), Duration::from_secs(30 * 86_400));
        assert_eq!(cfg.idempotency(), Duration::from_secs(168 * 3600));
        assert_eq!(cfg.observations(), Duration::from_secs(90 * 86_400));
        assert_eq!(cfg.outbox_delivered(), Duration::from_secs(30 * 86_400));
        assert_eq!(cfg.purge_interval(), Duration::from_secs(3600));
    }

    #[test]
    fn zero_and_absurd_values_are_refused_by_name() {
        let cfg = RetentionConfig {
            sessions_days: 0,
            idempotency_hours: Some(1),
            observations_days: Some(1_000_000),
            outbox_delivered_days: Some(0),
            purge_interval_seconds: 0,
            batch_size: 10_000_000,
        };
        let lines = problems(
            &cfg,
            &[
                Window::Idempotency,
                Window::Observations,
                Window::OutboxDelivered,
            ],
        );
        assert_eq!(lines.len(), 6, "{lines:?}");
        for key in [
            "retention.sessions_days",
            "retention.idempotency_hours",
            "retention.observations_days",
            "retention.outbox_delivered_days",
            "retention.purge_interval_seconds",
            "retention.batch_size",
        ] {
            assert!(lines.iter().any(|l| l.starts_with(key)), "{key}: {lines:?}");
        }
    }

    #[test]
    fn a_window_for_a_table_the_hub_lacks_is_refused() {
        let cfg = RetentionConfig {
            observations_days: Some(10),
            ..RetentionConfig::default()
        };
        let lines = problems(&cfg, &[Window::Idempotency]);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("retention.observations_days"),
            "{lines:?}"
        );
    }

    #[test]
    fn lock_keys_differ_per_table_and_never_name_the_journal() {
        let cfg = RetentionConfig::default();
        let targets = core_targets(&cfg);
        assert_ne!(lock_key("sessions"), lock_key("login_flows"));
        for t in &targets {
            assert!(!t.sql.contains("events"), "{}", t.table);
        }
    }
}
