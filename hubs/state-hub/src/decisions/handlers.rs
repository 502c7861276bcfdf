//! `/api/v1/decisions`.

use super::{service, store};
use crate::respond::{self, tagged};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use hub_core::api::decisions::{
    Decision, DecisionStatus, EscalateRequest, LinkTaskRequest, NewDecision, OutcomeInput,
    SupersedeRequest,
};
use hub_core::api::Page;
use hub_core::auth::Principal;
use hub_core::http::problem::{ApiError, Problem};
use hub_core::http::{cursor, etag};
use serde::Deserialize;
use uuid::Uuid;

/// Propose a decision (or record one already made, with `outcome`).
#[utoipa::path(
    post, path = "/api/v1/decisions", tag = "decisions", request_body = NewDecision,
    responses((status = 201, body = Decision), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<NewDecision>,
) -> Result<HttpResponse, ApiError> {
    let d = service::propose(&state, &principal, &body).await?;
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, format!("/api/v1/decisions/{}", d.id)));
    Ok(tagged(res, d.version, &d))
}

/// Query of the decision listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this status.
    pub status: Option<DecisionStatus>,
    /// Cursor from a previous page.
    pub after: Option<String>,
    /// Page size, 1–500.
    pub limit: Option<i64>,
}

/// List decisions, newest first.
#[utoipa::path(
    get, path = "/api/v1/decisions", tag = "decisions", params(ListQuery),
    responses((status = 200, body = Page<Decision>), (status = 400, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = respond::limit(q.limit)?;
    let after = q
        .after
        .as_deref()
        .map(|c| cursor::decode_uuid(store::CURSOR_KIND, c))
        .transpose()?;
    let client = state.pool.get().await?;
    let (items, next) = store::page(&**client, q.status, after, limit).await?;
    let next = next.map(|id| cursor::encode(store::CURSOR_KIND, &id.to_string()));
    Ok(HttpResponse::Ok().json(Page { items, next }))
}

/// One decision.
#[utoipa::path(
    get, path = "/api/v1/decisions/{id}", tag = "decisions",
    params(("id" = Uuid, Path, description = "Decision id")),
    responses((status = 200, body = Decision, headers(("ETag" = String))), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let d = store::require(&**client, *id, false).await?;
    Ok(tagged(HttpResponse::Ok(), d.version, &d))
}

/// Escalate: the decision now needs a human approval by someone other than its proposer.
#[utoipa::path(
    post, path = "/api/v1/decisions/{id}/escalate", tag = "decisions", request_body = EscalateRequest,
    params(("id" = Uuid, Path, description = "Decision id"), ("If-Match" = Option<String>, Header, description = "ETag of the version you saw")),
    responses((status = 200, body = Decision), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, description = "Invalid reason", body = Problem)),
    security(("bearer" = []))
)]
pub async fn escalate(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<EscalateRequest>,
) -> Result<HttpResponse, ApiError> {
    let d = service::escalate(&state, &principal, *id, etag::if_match(&req), &body.reason).await?;
    Ok(tagged(HttpResponse::Ok(), d.version, &d))
}

/// Record the outcome. For an escalated decision this is the approval: a person other than the proposer.
#[utoipa::path(
    post, path = "/api/v1/decisions/{id}/resolve", tag = "decisions", request_body = OutcomeInput,
    params(("id" = Uuid, Path, description = "Decision id"), ("If-Match" = Option<String>, Header, description = "ETag of the version you saw")),
    responses((status = 200, body = Decision), (status = 403, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, description = "Invalid choice or rationale", body = Problem)),
    security(("bearer" = []))
)]
pub async fn resolve(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<OutcomeInput>,
) -> Result<HttpResponse, ApiError> {
    let d = service::resolve(
        &state,
        &principal,
        *id,
        etag::if_match(&req),
        body.into_inner(),
    )
    .await?;
    Ok(tagged(HttpResponse::Ok(), d.version, &d))
}

/// Replace a decision with a new one; the old one becomes `superseded`.
#[utoipa::path(
    post, path = "/api/v1/decisions/{id}/supersede", tag = "decisions", request_body = SupersedeRequest,
    params(("id" = Uuid, Path, description = "Decision id"), ("If-Match" = Option<String>, Header, description = "ETag of the version you saw")),
    responses((status = 201, description = "The replacement", body = Decision), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, description = "Invalid fields of the replacement", body = Problem)),
    security(("bearer" = []))
)]
pub async fn supersede(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<SupersedeRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = service::supersede(&state, &principal, *id, etag::if_match(&req), &body).await?;
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, format!("/api/v1/decisions/{}", new.id)));
    Ok(tagged(res, new.version, &new))
}

/// Link a task; while the decision is escalated, the task is blocked.
#[utoipa::path(
    post, path = "/api/v1/decisions/{id}/tasks", tag = "decisions", request_body = LinkTaskRequest,
    params(("id" = Uuid, Path, description = "Decision id")),
    responses((status = 200, body = Decision), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
pub async fn link_task(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    body: web::Json<LinkTaskRequest>,
) -> Result<HttpResponse, ApiError> {
    let d = service::link_task(&state, &principal, *id, body.task_id).await?;
    Ok(tagged(HttpResponse::Ok(), d.version, &d))
}
