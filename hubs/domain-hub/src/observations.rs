//! Observations: what a capability path answered, when. Only answers that differ from the newest
//! stored one are kept, and only the newest `hub.observations_kept` per path.

use crate::state::AppState;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use hub_core::http::problem::{ApiError, Problem};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::GenericClient;

/// One stored answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Observation {
    /// Row id.
    pub id: i64,
    /// The capability polled.
    pub capability: String,
    /// The path under its base URL.
    pub path: String,
    /// When the answer arrived.
    pub fetched_at: DateTime<Utc>,
    /// Its HTTP status.
    pub status: i32,
    /// The JSON body, whatever its type (a list of items is an array).
    #[schema(value_type = Value)]
    pub body: Value,
    /// sha256 of the body's bytes (hex).
    pub sha256: String,
}

const COLUMNS: &str = "id, capability, path, fetched_at, status, body, sha256";

fn from_row(r: &tokio_postgres::Row) -> Observation {
    Observation {
        id: r.get(0),
        capability: r.get(1),
        path: r.get(2),
        fetched_at: r.get(3),
        status: r.get(4),
        body: r.get(5),
        sha256: r.get(6),
    }
}

/// A new answer to store.
pub struct NewObservation<'a> {
    /// Capability.
    pub capability: &'a str,
    /// Path.
    pub path: &'a str,
    /// Arrival.
    pub fetched_at: DateTime<Utc>,
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: &'a Value,
    /// sha256 of the body bytes.
    pub sha256: &'a str,
}

/// Stores an answer and deletes those beyond the newest `keep` of its path.
pub async fn insert(
    client: &impl GenericClient,
    o: &NewObservation<'_>,
    keep: i64,
) -> Result<(), ApiError> {
    client
        .execute(
            "INSERT INTO observations (capability, path, fetched_at, status, body, sha256)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &o.capability,
                &o.path,
                &o.fetched_at,
                &i32::from(o.status),
                o.body,
                &o.sha256,
            ],
        )
        .await?;
    client
        .execute(
            "DELETE FROM observations
              WHERE capability = $1 AND path = $2
                AND id NOT IN (SELECT id FROM observations WHERE capability = $1 AND path = $2
                                ORDER BY fetched_at DESC, id DESC LIMIT $3)",
            &[&o.capability, &o.path, &keep],
        )
        .await?;
    Ok(())
}

/// The newest answers of a path, newest first.
pub async fn newest(
    client: &impl GenericClient,
    capability: &str,
    path: &str,
    limit: i64,
) -> Result<Vec<Observation>, ApiError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM observations WHERE capability = $1 AND path = $2
                  ORDER BY fetched_at DESC, id DESC LIMIT $3"
            ),
            &[&capability, &path, &limit],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// The newest answer of every path.
pub async fn latest_all(client: &impl GenericClient) -> Result<Vec<Observation>, ApiError> {
    let rows = client
        .query(
            &format!(
                "SELECT DISTINCT ON (capability, path) {COLUMNS} FROM observations
                  ORDER BY capability, path, fetched_at DESC, id DESC"
            ),
            &[],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// `?capability=&path=&limit=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A capability of the manifest.
    pub capability: String,
    /// One of its poll paths.
    pub path: String,
    /// 1–500, default 20.
    pub limit: Option<i64>,
}

/// A page of observations.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ObservationList {
    /// Newest first.
    pub items: Vec<Observation>,
}

/// `GET /api/v1/observations`: a path's stored answers, newest first.
#[utoipa::path(
    get, path = "/api/v1/observations", tag = "observations", params(ListQuery),
    responses((status = 200, body = ObservationList), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = match q.limit {
        None => 20,
        Some(n) if (1..=500).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "limit must be between 1 and 500".into(),
            ))
        }
    };
    let polled = state
        .manifest
        .capabilities
        .iter()
        .any(|c| c.name == q.capability && c.poll_paths.contains(&q.path));
    if !polled {
        return Err(ApiError::NotFound(format!(
            "the manifest does not poll {} {}",
            q.capability, q.path
        )));
    }
    let client = state.pool.get().await?;
    let items = newest(&**client, &q.capability, &q.path, limit).await?;
    Ok(HttpResponse::Ok().json(ObservationList { items }))
}
