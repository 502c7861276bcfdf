//! `/api/v1/decisions`.

use super::{rules, store};
use crate::journal::Draft;
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
use serde_json::json;
use uuid::Uuid;

pub(crate) fn proposed_event(d: &Decision) -> Result<Draft, ApiError> {
    let (kind, verb) = if d.outcome.is_some() {
        ("decision.recorded", "Recorded")
    } else {
        ("decision.proposed", "Proposed")
    };
    Ok(Draft::system(
        kind,
        format!("{verb} decision: {}", d.title),
        json!({"title": d.title, "options": d.options, "task_ids": d.task_ids, "outcome": d.outcome, "supersedes": d.supersedes}),
    )?
    .decision(d.id))
}

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
    let proposal = rules::validate_proposal(&body, "")?;
    let actor = principal.subject.to_string();
    let d = state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let now = ctx.now();
                let d = store::insert(ctx.client(), &proposal, &actor, now, None).await?;
                ctx.append(&actor, vec![proposed_event(&d)?]).await?;
                Ok(d)
            })
        })
        .await?;
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
    responses((status = 200, body = Decision), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = []))
)]
pub async fn escalate(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<EscalateRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let if_match = etag::if_match(&req);
    let reason = respond::reason("reason", &body.reason)?;
    let actor = principal.subject.to_string();
    let d = state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let d = store::require(ctx.client(), id, true).await?;
                etag::check(if_match.as_deref(), d.version)?;
                rules::can_escalate(&d)?;
                let now = ctx.now();
                store::escalate(ctx.client(), id, &actor, &reason, now).await?;
                let summary = format!("Escalated decision: {}", d.title);
                ctx.append(
                    &actor,
                    vec![
                        Draft::system("decision.escalated", summary, json!({"reason": reason}))?
                            .decision(id),
                    ],
                )
                .await?;
                store::require(ctx.client(), id, false).await
            })
        })
        .await?;
    Ok(tagged(HttpResponse::Ok(), d.version, &d))
}

/// Record the outcome. For an escalated decision this is the approval: a person other than the proposer.
#[utoipa::path(
    post, path = "/api/v1/decisions/{id}/resolve", tag = "decisions", request_body = OutcomeInput,
    params(("id" = Uuid, Path, description = "Decision id"), ("If-Match" = Option<String>, Header, description = "ETag of the version you saw")),
    responses((status = 200, body = Decision), (status = 403, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = []))
)]
pub async fn resolve(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<OutcomeInput>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let if_match = etag::if_match(&req);
    let input = body.into_inner();
    let d = state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let d = store::require(ctx.client(), id, true).await?;
                etag::check(if_match.as_deref(), d.version)?;
                rules::can_resolve(&d, &principal)?;
                let outcome = rules::validate_outcome(&input, &d.options)?;
                let actor = principal.subject.to_string();
                let now = ctx.now();
                store::resolve(ctx.client(), id, &outcome, &actor, now).await?;
                let approved = d.status == DecisionStatus::Escalated;
                let summary = format!("Resolved decision: {} → {}", d.title, outcome.choice);
                let detail = json!({"choice": outcome.choice, "rationale": outcome.rationale, "approval": approved, "proposed_by": d.proposed_by});
                ctx.append(&actor, vec![Draft::system("decision.resolved", summary, detail)?.decision(id)]).await?;
                store::require(ctx.client(), id, false).await
            })
        })
        .await?;
    Ok(tagged(HttpResponse::Ok(), d.version, &d))
}

/// Replace a decision with a new one; the old one becomes `superseded`.
#[utoipa::path(
    post, path = "/api/v1/decisions/{id}/supersede", tag = "decisions", request_body = SupersedeRequest,
    params(("id" = Uuid, Path, description = "Decision id"), ("If-Match" = Option<String>, Header, description = "ETag of the version you saw")),
    responses((status = 201, description = "The replacement", body = Decision), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = []))
)]
pub async fn supersede(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<SupersedeRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let if_match = etag::if_match(&req);
    let reason = respond::reason("reason", &body.reason)?;
    let proposal = rules::validate_proposal(&body.replacement, "replacement.")?;
    let actor = principal.subject.to_string();
    let new = state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let old = store::require(ctx.client(), id, true).await?;
                etag::check(if_match.as_deref(), old.version)?;
                rules::can_supersede(&old, &principal)?;
                let now = ctx.now();
                let new = store::insert(ctx.client(), &proposal, &actor, now, Some(id)).await?;
                store::supersede(ctx.client(), id, new.id).await?;
                let summary = format!("Superseded decision: {} (by {})", old.title, new.title);
                let events = vec![
                    proposed_event(&new)?,
                    Draft::system(
                        "decision.superseded",
                        summary,
                        json!({"superseded_by": new.id, "reason": reason}),
                    )?
                    .decision(id),
                ];
                ctx.append(&actor, events).await?;
                Ok(new)
            })
        })
        .await?;
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
    let id = id.into_inner();
    let task_id = body.task_id;
    let actor = principal.subject.to_string();
    let d = state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let d = store::require(ctx.client(), id, true).await?;
                rules::can_link(&d)?;
                if d.task_ids.contains(&task_id) {
                    return Ok(d);
                }
                store::link_tasks(ctx.client(), id, &[task_id], &actor).await?;
                store::touch(ctx.client(), id).await?;
                let summary = format!("Linked task to decision: {}", d.title);
                ctx.append(
                    &actor,
                    vec![Draft::system("decision.linked", summary, json!({}))?
                        .decision(id)
                        .task(task_id)],
                )
                .await?;
                store::require(ctx.client(), id, false).await
            })
        })
        .await?;
    Ok(tagged(HttpResponse::Ok(), d.version, &d))
}
