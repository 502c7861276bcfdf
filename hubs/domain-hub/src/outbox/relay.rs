//! The relay: delivers outbox rows to the state hub one at a time, oldest first, each with its
//! row's idempotency key, so a retry after a lost acknowledgement is recognised and stored once.
//! While the state hub is down it retries the same row with capped exponential back-off: nothing
//! is dropped and nothing overtakes it. Replicas of one hub claim the head row with
//! `FOR UPDATE SKIP LOCKED`; the one that does not hold it waits.

use super::store::{self, Claimed, Head};
use super::{Outbox, ReviewRequest};
use crate::backoff::Backoff;
use crate::polling::error_text;
use crate::state_hub::{StateHubClient, StateHubError};
use deadpool_postgres::Pool;
use hub_core::api::decisions::NewDecision;
use hub_core::api::events::NewEvent;
use hub_core::http::problem::ApiError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often an idle relay looks for rows written by other replicas.
const IDLE_POLL: Duration = Duration::from_secs(2);
/// How often a relay retries while another replica holds the head row.
const BUSY_POLL: Duration = Duration::from_secs(1);

/// The options of a break-glass review decision (the state hub's own ledger offers the same).
const REVIEW_OPTIONS: [&str; 2] = [
    "legitimate: keep the session",
    "not legitimate: revoke and rotate the password",
];

/// What one delivery step did.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Nothing pending.
    Idle,
    /// Another replica is delivering.
    Busy,
    /// A row (or a step of a review row) was delivered or set aside.
    Progress,
}

/// Why a step failed; the row stays pending.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("outbox database: {0}")]
    Database(String),
    #[error("{0}")]
    StateHub(StateHubError),
}

impl From<ApiError> for StepError {
    fn from(e: ApiError) -> Self {
        StepError::Database(error_text(&e))
    }
}

impl From<deadpool_postgres::PoolError> for StepError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StepError::Database(e.to_string())
    }
}

impl From<tokio_postgres::Error> for StepError {
    fn from(e: tokio_postgres::Error) -> Self {
        StepError::Database(e.to_string())
    }
}

/// The relay of one hub.
pub struct Relay {
    pool: Pool,
    outbox: Outbox,
    client: StateHubClient,
    retry_max: Duration,
}

impl Relay {
    /// A relay from `outbox` to the state hub behind `client`.
    pub fn new(pool: Pool, outbox: Outbox, client: StateHubClient, retry_max: Duration) -> Self {
        Self {
            pool,
            outbox,
            client,
            retry_max,
        }
    }

    /// Delivers until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(self.retry_max);
        let mut failing: Option<String> = None;
        loop {
            if *stop.borrow() {
                return;
            }
            let step = self.step().await;
            let pause = match step {
                Ok(Step::Progress) => {
                    if failing.take().is_some() {
                        tracing::info!("outbox relay delivers again");
                    }
                    backoff.reset();
                    continue;
                }
                Ok(Step::Idle) => {
                    self.refresh_gauge().await;
                    IDLE_POLL
                }
                Ok(Step::Busy) => BUSY_POLL,
                Err(e) => {
                    let text = e.to_string();
                    if failing.as_deref() != Some(text.as_str()) {
                        tracing::warn!(error = %text, "outbox relay cannot deliver; retrying with back-off");
                        failing = Some(text);
                    }
                    self.refresh_gauge().await;
                    backoff.next_delay()
                }
            };
            let idle = pause == IDLE_POLL;
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.outbox.woken(), if idle => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Delivers what it can right now, stopping at the first failure or when nothing is left;
    /// returns the number of steps that made progress. Used at shutdown.
    pub async fn flush(&self) -> usize {
        let mut progressed = 0;
        while let Ok(Step::Progress) = self.step().await {
            progressed += 1;
        }
        self.refresh_gauge().await;
        progressed
    }

    async fn refresh_gauge(&self) {
        if let Ok(client) = self.pool.get().await {
            if let Ok(b) = store::backlog(&**client).await {
                self.outbox.metrics.pending.set(b.pending);
            }
        }
    }

    /// Claims the head row and takes it one step further, in one transaction that holds the
    /// row's lock across the call to the state hub.
    async fn step(&self) -> Result<Step, StepError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = match store::claim_head(&*tx).await? {
            Head::Empty => return Ok(Step::Idle),
            Head::Busy => return Ok(Step::Busy),
            Head::Row(row) => row,
        };
        let mut event: NewEvent = match serde_json::from_value(row.event.clone()) {
            Ok(e) => e,
            Err(e) => {
                let why = format!("the stored event cannot be read: {e}");
                self.set_aside(&tx, &row, &why).await?;
                tx.commit().await?;
                return Ok(Step::Progress);
            }
        };
        if let Some(review) = &row.review {
            match self.review_step(&tx, &row, review).await {
                Ok(Some(decision)) => event.decision_id = Some(decision),
                Ok(None) => {
                    // A step of the review was taken and committed; the event follows next time.
                    tx.commit().await?;
                    return Ok(Step::Progress);
                }
                Err(StepError::StateHub(e)) if e.is_permanent() => {
                    self.set_aside(&tx, &row, &format!("review decision: {e}"))
                        .await?;
                    tx.commit().await?;
                    return Ok(Step::Progress);
                }
                Err(e) => return self.retry_later(tx, &row, e).await,
            }
        }
        match self.client.post_event(&event, &row.idempotency_key).await {
            Ok(()) => {
                store::delivered(&*tx, row.seq).await?;
                tx.commit().await?;
                self.outbox.metrics.delivered.inc();
                self.outbox.metrics.pending.dec();
                tracing::debug!(seq = row.seq, event_type = %event.event_type, "outbox event delivered");
                Ok(Step::Progress)
            }
            Err(e) if e.is_permanent() => {
                self.set_aside(&tx, &row, &e.to_string()).await?;
                tx.commit().await?;
                Ok(Step::Progress)
            }
            Err(e) => self.retry_later(tx, &row, StepError::StateHub(e)).await,
        }
    }

    /// Opens the review's decision, then escalates it; each step commits on its own so a crash
    /// in between never opens a second decision. Returns the decision once both are done.
    async fn review_step(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        row: &Claimed,
        review: &serde_json::Value,
    ) -> Result<Option<uuid::Uuid>, StepError> {
        let review: ReviewRequest = serde_json::from_value(review.clone()).map_err(|e| {
            StepError::StateHub(StateHubError::Status {
                status: 422,
                detail: format!("the stored review cannot be read: {e}"),
                errors: Vec::new(),
            })
        })?;
        let Some(decision) = row.decision_id else {
            let new = NewDecision {
                title: review.title.chars().take(200).collect(),
                context: review.context.chars().take(20_000).collect(),
                options: REVIEW_OPTIONS.iter().map(|o| (*o).to_owned()).collect(),
                outcome: None,
                task_ids: Vec::new(),
            };
            let d = self
                .client
                .create_decision(&new)
                .await
                .map_err(StepError::StateHub)?;
            store::decision_opened(&**tx, row.seq, d.id).await?;
            tracing::info!(decision = %d.id, actor = %review.actor, "opened a review decision for a break-glass login");
            return Ok(None);
        };
        if !row.escalated {
            let reason = format!(
                "break-glass login of {} on {}: another person must review it",
                review.actor,
                self.outbox.hub()
            );
            match self.client.escalate(decision, &reason).await {
                // 409: escalated already (an acknowledgement that was lost).
                Ok(()) => {}
                Err(e) if e.status() == Some(409) => {}
                Err(e) => return Err(StepError::StateHub(e)),
            }
            store::decision_escalated(&**tx, row.seq).await?;
            return Ok(None);
        }
        Ok(Some(decision))
    }

    async fn set_aside(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        row: &Claimed,
        why: &str,
    ) -> Result<(), StepError> {
        store::rejected(&**tx, row.seq, why).await?;
        self.outbox.metrics.failures.inc();
        self.outbox.metrics.pending.dec();
        tracing::error!(seq = row.seq, id = %row.id, error = %why,
            "the state hub refused an outbox event for good; it stays in the outbox, set aside");
        Ok(())
    }

    async fn retry_later(
        &self,
        tx: deadpool_postgres::Transaction<'_>,
        row: &Claimed,
        e: StepError,
    ) -> Result<Step, StepError> {
        store::failed(&*tx, row.seq, &e.to_string()).await?;
        tx.commit().await?;
        self.outbox.metrics.failures.inc();
        Err(e)
    }
}
