//! `/healthz` (the process answers), `/readyz` (database and schema), `/metrics`.

use super::metrics::HttpMetrics;
use crate::db::{self, Pools};
use actix_web::{web, HttpResponse};

/// What the health endpoints need.
#[derive(Clone)]
pub struct HealthState {
    /// Both pools; readiness uses only the health pool.
    pub pools: Pools,
    /// Migration versions the binary expects, one per history table.
    pub expected_schema: Vec<db::ExpectedSchema>,
}

/// Liveness: answers while the process can serve HTTP at all.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// Readiness: the database answers through the health pool and the schema is current.
pub async fn readyz(state: web::Data<HealthState>) -> HttpResponse {
    let r = db::readiness(&state.pools.health, &state.expected_schema).await;
    if r.database && r.migrations {
        HttpResponse::Ok().json(serde_json::json!({"status": "ready", "checks": r}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "not_ready", "checks": r}))
    }
}

/// Prometheus scrape endpoint.
pub async fn metrics(state: web::Data<HealthState>, m: web::Data<HttpMetrics>) -> HttpResponse {
    m.pool_status("requests", state.pools.requests.status());
    m.pool_status("health", state.pools.health.status());
    match m.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}
