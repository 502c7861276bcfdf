//! The `outbox` table.

use super::{OutboxRow, ReviewRequest, ORDER_LOCK};
use hub_core::api::events::NewEvent;
use hub_core::http::problem::ApiError;
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// Inserts a row; must run inside the transaction of the change it records (the order lock is
/// held until that transaction ends).
pub async fn insert(
    client: &impl GenericClient,
    id: Uuid,
    key: &str,
    event: &NewEvent,
    review: Option<&ReviewRequest>,
) -> Result<(), ApiError> {
    let event = serde_json::to_value(event).map_err(ApiError::internal)?;
    let review = review
        .map(serde_json::to_value)
        .transpose()
        .map_err(ApiError::internal)?;
    let kind = if review.is_some() { "review" } else { "event" };
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&ORDER_LOCK])
        .await?;
    client
        .execute(
            "INSERT INTO outbox (id, kind, event, review, idempotency_key) VALUES ($1, $2, $3, $4, $5)",
            &[&id, &kind, &event, &review, &key],
        )
        .await?;
    Ok(())
}

/// The oldest row not yet delivered or refused, locked for this transaction; `None` when there
/// is none or when another relay (a replica) holds it, so nobody sends past it.
pub struct Claimed {
    /// Delivery order.
    pub seq: i64,
    /// Row id.
    pub id: Uuid,
    /// The event.
    pub event: Value,
    /// The review to open first, for `review` rows.
    pub review: Option<Value>,
    /// The state hub's deduplication key.
    pub idempotency_key: String,
    /// The decision already opened for a review row.
    pub decision_id: Option<Uuid>,
    /// Whether that decision is escalated already.
    pub escalated: bool,
}

/// What [`claim_head`] found.
pub enum Head {
    /// Nothing to send.
    Empty,
    /// Another relay holds the oldest row.
    Busy,
    /// The oldest row, locked.
    Row(Box<Claimed>),
}

/// Claims the oldest pending row with `FOR UPDATE SKIP LOCKED`. A replica that skips past a row
/// another one holds would send out of order, so a claimed row that is not the oldest pending
/// one is `Busy`.
pub async fn claim_head(client: &impl GenericClient) -> Result<Head, ApiError> {
    let row = client
        .query_opt(
            "SELECT o.seq, o.id, o.event, o.review, o.idempotency_key, o.decision_id, o.escalated_at IS NOT NULL,
                    (SELECT min(seq) FROM outbox WHERE delivered_at IS NULL AND rejected_at IS NULL)
               FROM outbox o
              WHERE o.delivered_at IS NULL AND o.rejected_at IS NULL
              ORDER BY o.seq
              LIMIT 1
                FOR UPDATE OF o SKIP LOCKED",
            &[],
        )
        .await?;
    let Some(row) = row else {
        let any: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM outbox WHERE delivered_at IS NULL AND rejected_at IS NULL)",
                &[],
            )
            .await?
            .get(0);
        return Ok(if any { Head::Busy } else { Head::Empty });
    };
    let seq: i64 = row.get(0);
    let head: Option<i64> = row.get(7);
    if head != Some(seq) {
        return Ok(Head::Busy);
    }
    Ok(Head::Row(Box::new(Claimed {
        seq,
        id: row.get(1),
        event: row.get(2),
        review: row.get(3),
        idempotency_key: row.get(4),
        decision_id: row.get(5),
        escalated: row.get(6),
    })))
}

/// Marks a row delivered.
pub async fn delivered(client: &impl GenericClient, seq: i64) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE outbox SET delivered_at = now(), attempts = attempts + 1, last_error = NULL WHERE seq = $1",
            &[&seq],
        )
        .await?;
    Ok(())
}

/// Records a failed attempt (the row stays pending).
pub async fn failed(client: &impl GenericClient, seq: i64, error: &str) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE seq = $1",
            &[&seq, &error],
        )
        .await?;
    Ok(())
}

/// Sets a row aside that the state hub refused for good (it stays in the table, visible).
pub async fn rejected(client: &impl GenericClient, seq: i64, error: &str) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE outbox SET rejected_at = now(), attempts = attempts + 1, last_error = $2 WHERE seq = $1",
            &[&seq, &error],
        )
        .await?;
    Ok(())
}

/// Remembers the decision a review row opened, so a retry does not open a second one.
pub async fn decision_opened(
    client: &impl GenericClient,
    seq: i64,
    decision: Uuid,
) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE outbox SET decision_id = $2 WHERE seq = $1",
            &[&seq, &decision],
        )
        .await?;
    Ok(())
}

/// Remembers that the review's decision is escalated.
pub async fn decision_escalated(client: &impl GenericClient, seq: i64) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE outbox SET escalated_at = now() WHERE seq = $1",
            &[&seq],
        )
        .await?;
    Ok(())
}

/// Pending and refused rows, and the oldest pending one's age.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Backlog {
    /// Rows not delivered yet.
    pub pending: i64,
    /// Rows the state hub refused for good.
    pub rejected: i64,
    /// When the oldest pending row was written.
    pub oldest_pending_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The backlog, for metrics, heartbeats and `/api/v1/status`.
pub async fn backlog(client: &impl GenericClient) -> Result<Backlog, ApiError> {
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE delivered_at IS NULL AND rejected_at IS NULL),
                    count(*) FILTER (WHERE rejected_at IS NOT NULL),
                    min(created_at) FILTER (WHERE delivered_at IS NULL AND rejected_at IS NULL)
               FROM outbox
              WHERE delivered_at IS NULL",
            &[],
        )
        .await?;
    Ok(Backlog {
        pending: row.get(0),
        rejected: row.get(1),
        oldest_pending_at: row.get(2),
    })
}

/// Rows, newest first; `pending_only` leaves out delivered ones.
pub async fn list(
    client: &impl GenericClient,
    pending_only: bool,
    limit: i64,
) -> Result<Vec<OutboxRow>, ApiError> {
    let rows = client
        .query(
            "SELECT seq, id, kind, event, idempotency_key, created_at, delivered_at, rejected_at,
                    attempts, last_error, decision_id
               FROM outbox
              WHERE NOT $1 OR delivered_at IS NULL
              ORDER BY seq DESC
              LIMIT $2",
            &[&pending_only, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| OutboxRow {
            seq: r.get(0),
            id: r.get(1),
            kind: r.get(2),
            event: r.get(3),
            idempotency_key: r.get(4),
            created_at: r.get(5),
            delivered_at: r.get(6),
            rejected_at: r.get(7),
            attempts: r.get(8),
            last_error: r.get(9),
            decision_id: r.get(10),
        })
        .collect())
}
