//! The `action_runs` table.

use super::ActionRun;
use hub_core::http::problem::ApiError;
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

const COLUMNS: &str =
    "id, action, params, decision_id, caller, status, response_status, response, \
                       error, created_at, finished_at";

fn from_row(r: &tokio_postgres::Row) -> ActionRun {
    ActionRun {
        id: r.get(0),
        action: r.get(1),
        params: r.get(2),
        decision_id: r.get(3),
        caller: r.get(4),
        status: r.get(5),
        response_status: r.get(6),
        response: r.get(7),
        error: r.get(8),
        created_at: r.get(9),
        finished_at: r.get(10),
    }
}

/// The run a request key already made, if any.
pub async fn find(
    client: &impl GenericClient,
    action: &str,
    request_key: &str,
) -> Result<Option<ActionRun>, ApiError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM action_runs WHERE action = $1 AND request_key = $2"),
            &[&action, &request_key],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// What a new run records.
pub struct NewRun<'a> {
    /// Run id (the cluster's idempotency key is derived from it).
    pub id: Uuid,
    /// Action name.
    pub action: &'a str,
    /// Deduplication key.
    pub request_key: &'a str,
    /// The body sent.
    pub params: &'a Value,
    /// The backing decision.
    pub decision_id: Option<Uuid>,
    /// Who asked.
    pub caller: &'a str,
}

/// Inserts a pending run; when a concurrent request with the same key won, returns that one.
pub async fn insert_pending(
    client: &impl GenericClient,
    new: &NewRun<'_>,
) -> Result<ActionRun, ApiError> {
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO action_runs (id, action, request_key, params, decision_id, caller, status)
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending')
                 ON CONFLICT (action, request_key) DO NOTHING RETURNING {COLUMNS}"
            ),
            &[
                &new.id,
                &new.action,
                &new.request_key,
                new.params,
                &new.decision_id,
                &new.caller,
            ],
        )
        .await?;
    match row {
        Some(r) => Ok(from_row(&r)),
        None => find(client, new.action, new.request_key)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("action run vanished"))),
    }
}

/// How a run ended.
pub struct Finish<'a> {
    /// `executed` or `failed`.
    pub status: &'a str,
    /// The cluster's HTTP status, when it answered.
    pub response_status: Option<i32>,
    /// The cluster's answer.
    pub response: Option<&'a Value>,
    /// Why it failed.
    pub error: Option<&'a str>,
}

/// Records the end of a run.
pub async fn finish(
    client: &impl GenericClient,
    id: Uuid,
    f: &Finish<'_>,
) -> Result<ActionRun, ApiError> {
    let row = client
        .query_one(
            &format!(
                "UPDATE action_runs SET status = $2, response_status = $3, response = $4, error = $5,
                        finished_at = now()
                  WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &f.status, &f.response_status, &f.response, &f.error],
        )
        .await?;
    Ok(from_row(&row))
}

/// The newest runs.
pub async fn newest(client: &impl GenericClient, limit: i64) -> Result<Vec<ActionRun>, ApiError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM action_runs ORDER BY created_at DESC, id DESC LIMIT $1"
            ),
            &[&limit],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// One run.
pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Option<ActionRun>, ApiError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM action_runs WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}
