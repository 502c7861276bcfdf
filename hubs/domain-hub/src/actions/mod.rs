//! Actions: the changes a manifest lets this hub make in the cluster, each a POST through a
//! capability. A caller needs the action's policy scope; an action that requires a decision also
//! needs an approved (resolved) decision in the state hub. Every run is recorded once per request
//! key and journaled (`action.executed` / `action.failed`) through the outbox.

pub mod service;
pub mod store;

use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use hub_core::api::manifest::ActionDecl;
use hub_core::auth::Principal;
use hub_core::http::problem::{ApiError, Problem};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

/// Header a caller names a retried request with.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// Set on the answer to a retried request that returns the recorded run.
pub const IDEMPOTENCY_REPLAYED: &str = "Idempotency-Replayed";

/// One run of an action.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionRun {
    /// Run id.
    pub id: Uuid,
    /// Action name.
    pub action: String,
    /// The body sent to the capability.
    #[schema(value_type = Object)]
    pub params: Value,
    /// The decision that approved it.
    pub decision_id: Option<Uuid>,
    /// Who asked.
    pub caller: String,
    /// `pending`, `executed` or `failed`.
    pub status: String,
    /// The cluster's HTTP status.
    pub response_status: Option<i32>,
    /// The cluster's answer.
    #[schema(value_type = Option<Object>)]
    pub response: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/actions/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// The JSON object sent to the capability as the body.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub params: Value,
    /// The approved decision backing this run; required when the action says so.
    #[serde(default)]
    pub decision_id: Option<Uuid>,
}

fn empty_object() -> Value {
    json!({})
}

/// An action of the manifest, and whether it can be called now: the fields of its
/// [`ActionDecl`] plus `callable`. Spelled out rather than flattened, because the declaration's
/// schema forbids other properties (`deny_unknown_fields`), which no `callable` could satisfy.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionInfo {
    /// Action name, e.g. `freeze.request`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The capability it calls.
    pub capability: String,
    /// The path POSTed to under the capability's base URL.
    pub path: String,
    /// The policy scope a caller needs.
    pub scope: String,
    /// Whether an approved (resolved) state-hub decision must back each call.
    pub requires_decision: bool,
    /// Whether its capability is callable now.
    pub callable: bool,
}

impl ActionInfo {
    /// The declaration, with whether its capability is callable now.
    pub fn new(action: &ActionDecl, callable: bool) -> Self {
        Self {
            name: action.name.clone(),
            description: action.description.clone(),
            capability: action.capability.clone(),
            path: action.path.clone(),
            scope: action.scope.clone(),
            requires_decision: action.requires_decision,
            callable,
        }
    }
}

/// The manifest's actions.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionList {
    /// In the manifest's order.
    pub items: Vec<ActionInfo>,
}

/// Action runs.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunList {
    /// Newest first.
    pub items: Vec<ActionRun>,
}

/// `GET /api/v1/actions`: the manifest's actions, and whether their capability is callable now.
#[utoipa::path(
    get, path = "/api/v1/actions", tag = "actions",
    responses((status = 200, body = ActionList)),
    security(("bearer" = []))
)]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let items = state
        .manifest
        .actions
        .iter()
        .map(|a| ActionInfo::new(a, state.cluster.is_callable(&a.capability)))
        .collect();
    Ok(HttpResponse::Ok().json(ActionList { items }))
}

/// `POST /api/v1/actions/{name}`: 202 with the run once the cluster accepted it.
#[utoipa::path(
    post, path = "/api/v1/actions/{name}", tag = "actions", request_body = ActionRequest,
    params(
        ("name" = String, Path, description = "Action name from the manifest"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request the same run; without it the decision does"),
    ),
    responses(
        (status = 202, description = "Executed (or replayed, with `Idempotency-Replayed: true`)", body = ActionRun),
        (status = 403, description = "The caller lacks the action's scope", body = Problem),
        (status = 404, description = "No such action", body = Problem),
        (status = 409, description = "No approved decision, capability not callable, or the cluster refused", body = Problem),
        (status = 422, description = "Invalid params (not a JSON object, or too large)", body = Problem),
        (status = 503, description = "The state hub or the cluster cannot be reached; nothing or the same run is retried", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn run(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Json<ActionRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let outcome = service::run(&state, &principal, &name, &body, key).await?;
    let mut res = HttpResponse::Accepted();
    res.insert_header((
        header::LOCATION,
        format!("/api/v1/action-runs/{}", outcome.run.id),
    ));
    if outcome.replayed {
        res.insert_header((IDEMPOTENCY_REPLAYED, "true"));
    }
    Ok(res.json(outcome.run))
}

/// `?limit=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// 1–500, default 50.
    pub limit: Option<i64>,
}

/// `GET /api/v1/action-runs`: the newest runs.
#[utoipa::path(
    get, path = "/api/v1/action-runs", tag = "actions", params(RunsQuery),
    responses((status = 200, body = RunList), (status = 400, body = Problem)),
    security(("bearer" = []))
)]
pub async fn runs(
    state: web::Data<AppState>,
    q: web::Query<RunsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = match q.limit {
        None => 50,
        Some(n) if (1..=500).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "limit must be between 1 and 500".into(),
            ))
        }
    };
    let client = state.pool.get().await?;
    let items = store::newest(&**client, limit).await?;
    Ok(HttpResponse::Ok().json(RunList { items }))
}

/// The caller's `Idempotency-Key`, when sent.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .filter(|k| (1..=200).contains(&k.len()) && k.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .map(|k| Some(k.to_owned()))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1-200 visible ASCII characters".into())
        })
}

/// `GET /api/v1/action-runs/{id}`.
#[utoipa::path(
    get, path = "/api/v1/action-runs/{id}", tag = "actions",
    params(("id" = Uuid, Path, description = "Run id")),
    responses((status = 200, body = ActionRun), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn get_run(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let run = store::get(&**client, *id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no action run {id}")))?;
    Ok(HttpResponse::Ok().json(run))
}
