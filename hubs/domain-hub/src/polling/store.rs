//! The `poll_state` table: one job row per polled (capability, path).

use chrono::{DateTime, Utc};
use hub_core::api::manifest::Manifest;
use hub_core::http::problem::ApiError;
use serde::Serialize;
use tokio_postgres::GenericClient;

/// What the pollers know about one path.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PollState {
    /// Capability.
    pub capability: String,
    /// Path.
    pub path: String,
    /// Seconds between polls.
    pub poll_seconds: i32,
    /// Last poll started.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Last poll that got an answer.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Why the last poll failed, when it did.
    pub last_error: Option<String>,
    /// First failure of the current outage.
    pub unreachable_since: Option<DateTime<Utc>>,
}

/// Makes a job row for every path the manifest polls; a shorter interval applies at once.
pub async fn sync(client: &impl GenericClient, manifest: &Manifest) -> Result<(), ApiError> {
    for c in &manifest.capabilities {
        let seconds = i32::try_from(c.poll_seconds).unwrap_or(i32::MAX);
        for path in &c.poll_paths {
            client
                .execute(
                    "INSERT INTO poll_state (capability, path, poll_seconds) VALUES ($1, $2, $3)
                     ON CONFLICT (capability, path) DO UPDATE
                        SET poll_seconds = EXCLUDED.poll_seconds,
                            next_due_at = LEAST(poll_state.next_due_at,
                                                now() + make_interval(secs => EXCLUDED.poll_seconds))",
                    &[&c.name, path, &seconds],
                )
                .await?;
        }
    }
    Ok(())
}

/// Makes every path of `capabilities` due now.
pub async fn make_due(
    client: &impl GenericClient,
    capabilities: &[String],
) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE poll_state SET next_due_at = now() WHERE capability = ANY($1) AND next_due_at > now()",
            &[&capabilities],
        )
        .await?;
    Ok(())
}

/// A path whose poll is due, claimed for this replica.
#[derive(Debug, Clone)]
pub struct Due {
    /// Capability.
    pub capability: String,
    /// Path.
    pub path: String,
}

/// Claims the due rows among `targets` (capability, path): each moves its `next_due_at` one
/// interval on, in one statement, so another replica neither waits for nor polls them again in
/// this interval (`FOR UPDATE SKIP LOCKED` passes over rows being claimed right now).
pub async fn claim_due(
    client: &impl GenericClient,
    targets: &[(String, String)],
) -> Result<Vec<Due>, ApiError> {
    let caps: Vec<&str> = targets.iter().map(|(c, _)| c.as_str()).collect();
    let paths: Vec<&str> = targets.iter().map(|(_, p)| p.as_str()).collect();
    let rows = client
        .query(
            "UPDATE poll_state p
                SET next_due_at = now() + make_interval(secs => p.poll_seconds),
                    last_attempt_at = now()
               FROM (SELECT capability, path FROM poll_state
                      WHERE next_due_at <= now()
                        AND (capability, path) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                      FOR UPDATE SKIP LOCKED) due
              WHERE p.capability = due.capability AND p.path = due.path
          RETURNING p.capability, p.path",
            &[&caps, &paths],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Due {
            capability: r.get(0),
            path: r.get(1),
        })
        .collect())
}

/// Locks every row of `capability` for this transaction and returns them, so the paths of one
/// capability agree on whether it just became unreachable or recovered.
pub async fn lock_capability(
    client: &impl GenericClient,
    capability: &str,
) -> Result<Vec<(String, Option<String>, Option<DateTime<Utc>>)>, ApiError> {
    let rows = client
        .query(
            "SELECT path, last_sha256, unreachable_since FROM poll_state
              WHERE capability = $1 ORDER BY path FOR UPDATE",
            &[&capability],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Records an answer.
pub async fn succeeded(
    client: &impl GenericClient,
    capability: &str,
    path: &str,
    at: DateTime<Utc>,
    sha256: &str,
) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE poll_state SET last_success_at = $3, last_sha256 = $4, last_error = NULL,
                    unreachable_since = NULL
              WHERE capability = $1 AND path = $2",
            &[&capability, &path, &at, &sha256],
        )
        .await?;
    Ok(())
}

/// Records a failed poll; `unreachable` starts (or continues) an outage.
pub async fn failed(
    client: &impl GenericClient,
    capability: &str,
    path: &str,
    error: &str,
    unreachable: bool,
) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE poll_state SET last_error = $3,
                    unreachable_since = CASE WHEN $4 THEN COALESCE(unreachable_since, now())
                                             ELSE unreachable_since END
              WHERE capability = $1 AND path = $2",
            &[&capability, &path, &error, &unreachable],
        )
        .await?;
    Ok(())
}

/// Every path's state.
pub async fn all(client: &impl GenericClient) -> Result<Vec<PollState>, ApiError> {
    let rows = client
        .query(
            "SELECT capability, path, poll_seconds, last_attempt_at, last_success_at, last_error,
                    unreachable_since
               FROM poll_state ORDER BY capability, path",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| PollState {
            capability: r.get(0),
            path: r.get(1),
            poll_seconds: r.get(2),
            last_attempt_at: r.get(3),
            last_success_at: r.get(4),
            last_error: r.get(5),
            unreachable_since: r.get(6),
        })
        .collect())
}
