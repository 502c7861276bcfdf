//! The pollers: every path the manifest names is fetched through the capability client once per
//! `poll_seconds`, by whichever replica claims its job row first. An answer becomes an
//! observation (unless it is the same as the last one); a failure is recorded with its time, and
//! the moments a capability becomes unreachable and recovers are journaled through the outbox in
//! the same transaction.

pub mod store;

use crate::cluster::Cluster;
use crate::observations::{self, NewObservation};
use crate::outbox::Outbox;
use deadpool_postgres::Pool;
use hub_core::api::manifest::Manifest;
use hub_core::capability::{CapabilityError, CapabilityResponse};
use hub_core::http::problem::ApiError;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// How often the pollers look for due paths; the manifest's intervals are 10 s or more.
const TICK: Duration = Duration::from_secs(1);

/// Why a poll produced no observation.
#[derive(Debug)]
enum PollFailure {
    /// The state hub's callable list does not name the capability.
    NotCallable,
    /// The call failed.
    Call(CapabilityError),
}

/// The pollers of one hub.
pub struct Poller {
    pool: Pool,
    cluster: Cluster,
    manifest: Arc<Manifest>,
    outbox: Outbox,
    keep: i64,
    /// The callable names at the last tick, to notice capabilities that just became callable.
    seen_callable: Mutex<BTreeSet<String>>,
}

impl Poller {
    /// Pollers for every path of `manifest`, keeping `keep` observations per path.
    pub fn new(
        pool: Pool,
        cluster: Cluster,
        manifest: Arc<Manifest>,
        outbox: Outbox,
        keep: u32,
    ) -> Self {
        Self {
            pool,
            cluster,
            manifest,
            outbox,
            keep: i64::from(keep),
            seen_callable: Mutex::default(),
        }
    }

    /// Polls due paths every second until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
            match self.poll_due().await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("pollers can reach the database again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %error_text(&e), "pollers cannot record; retrying every second");
                }
                Err(_) => {}
            }
        }
    }

    /// Claims and polls every due path once; returns how many were polled.
    pub async fn poll_due(&self) -> Result<usize, ApiError> {
        // Before the state hub has said what is callable every call would be refused; polling
        // starts with the first callable list.
        if !self.cluster.loaded() {
            return Ok(0);
        }
        let targets: Vec<(String, String)> = self
            .manifest
            .capabilities
            .iter()
            .flat_map(|c| c.poll_paths.iter().map(|p| (c.name.clone(), p.clone())))
            .collect();
        let due = {
            let client = self.pool.get().await?;
            let fresh = self.newly_callable();
            if !fresh.is_empty() {
                // A capability that just became callable is polled now, not an interval after
                // the poll that found it not callable yet.
                store::make_due(&**client, &fresh).await?;
            }
            store::claim_due(&**client, &targets).await?
        };
        let polls = due.iter().map(|d| async move {
            let result = if self.cluster.is_callable(&d.capability) {
                self.cluster
                    .client
                    .get(&d.capability, &d.path)
                    .await
                    .map_err(PollFailure::Call)
            } else {
                Err(PollFailure::NotCallable)
            };
            self.record(&d.capability, &d.path, result).await
        });
        let results = futures_util::future::join_all(polls).await;
        let polled = results.len();
        for r in results {
            r?;
        }
        Ok(polled)
    }

    /// Callable names that were not callable at the previous tick.
    fn newly_callable(&self) -> Vec<String> {
        let now: BTreeSet<String> = self.cluster.callable_names().into_iter().collect();
        let mut seen = self
            .seen_callable
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let fresh = now.difference(&seen).cloned().collect();
        *seen = now;
        fresh
    }

    async fn record(
        &self,
        capability: &str,
        path: &str,
        result: Result<CapabilityResponse, PollFailure>,
    ) -> Result<(), ApiError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let rows = store::lock_capability(&*tx, capability).await?;
        let Some((_, last_sha, was_unreachable)) = rows.iter().find(|r| r.0 == path).cloned()
        else {
            // The row is gone (another manifest version); nothing to record.
            return Ok(());
        };
        let others_unreachable = rows.iter().any(|r| r.0 != path && r.2.is_some());
        let hub = self.outbox.hub().to_owned();
        let mut journaled = false;
        match result {
            Ok(response) => match serde_json::from_slice::<Value>(&response.body) {
                Ok(body) => {
                    let sha = hex::encode(Sha256::digest(&response.body));
                    if last_sha.as_deref() != Some(sha.as_str()) {
                        let o = NewObservation {
                            capability,
                            path,
                            fetched_at: response.fetched_at,
                            status: response.status,
                            body: &body,
                            sha256: &sha,
                        };
                        observations::insert(&*tx, &o, self.keep).await?;
                    }
                    store::succeeded(&*tx, capability, path, response.fetched_at, &sha).await?;
                    if let (Some(since), false) = (was_unreachable, others_unreachable) {
                        let down = (response.fetched_at - since).num_seconds().max(0);
                        let event = self.outbox.event(
                            "capability.recovered",
                            format!("{hub}: capability {capability} recovered after {down} s"),
                            "poller",
                            json!({"capability": capability, "path": path,
                                   "unreachable_since": since, "down_seconds": down}),
                        )?;
                        self.outbox.enqueue(&*tx, &event, None).await?;
                        journaled = true;
                        tracing::info!(capability, down_seconds = down, "capability recovered");
                    }
                }
                Err(e) => {
                    let error = format!("GET {path}: the answer is not JSON ({e})");
                    store::failed(&*tx, capability, path, &error, false).await?;
                }
            },
            Err(failure) => {
                let (error, unreachable) = match &failure {
                    PollFailure::NotCallable => (
                        format!(
                            "{capability} is not callable: the state hub lists no completed \
                             registration of it for this hub"
                        ),
                        false,
                    ),
                    PollFailure::Call(e) => (format!("GET {path}: {e}"), is_unreachable(e)),
                };
                store::failed(&*tx, capability, path, &error, unreachable).await?;
                if unreachable && was_unreachable.is_none() && !others_unreachable {
                    let event = self.outbox.event(
                        "capability.unreachable",
                        format!("{hub}: capability {capability} is unreachable"),
                        "poller",
                        json!({"capability": capability, "path": path, "error": error}),
                    )?;
                    self.outbox.enqueue(&*tx, &event, None).await?;
                    journaled = true;
                    tracing::warn!(capability, error = %error, "capability unreachable");
                }
            }
        }
        tx.commit().await?;
        if journaled {
            self.outbox.wake();
        }
        Ok(())
    }
}

/// Failures that mean the cluster did not answer (or answered that it cannot serve), as
/// opposed to answers that say the request itself is wrong.
fn is_unreachable(e: &CapabilityError) -> bool {
    matches!(
        e,
        CapabilityError::Timeout
            | CapabilityError::Connect(_)
            | CapabilityError::Tls(_)
            | CapabilityError::Dns(_)
            | CapabilityError::BreakerOpen { .. }
            | CapabilityError::Status(500..=599)
    )
}

/// An error with its cause, for logs (internal errors keep theirs out of responses only).
pub fn error_text(e: &ApiError) -> String {
    match e {
        ApiError::Internal(cause) => format!("{cause:#}"),
        other => other.to_string(),
    }
}
