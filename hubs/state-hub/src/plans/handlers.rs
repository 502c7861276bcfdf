//! `/api/v1/workstreams`, `/api/v1/workplans`, `/api/v1/tasks`.

use super::service;
use super::store::{self, TaskFilter};
use crate::respond::tagged;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use hub_core::api::plans::{
    AcceptRequest, NewTask, NewWorkplan, NewWorkstream, ReopenRequest, Task, TaskPatch, TaskStatus,
    Workplan, WorkplanStatus, Workstream,
};
use hub_core::auth::Principal;
use hub_core::http::etag;
use hub_core::http::problem::{ApiError, Problem};
use serde::Deserialize;
use uuid::Uuid;

fn created(location: String, version: i64, body: &impl serde::Serialize) -> HttpResponse {
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, location));
    tagged(res, version, body)
}

/// Create a workstream.
#[utoipa::path(post, path = "/api/v1/workstreams", tag = "plans", request_body = NewWorkstream,
    responses((status = 201, body = Workstream), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_workstream(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<NewWorkstream>,
) -> Result<HttpResponse, ApiError> {
    let ws = service::create_workstream(&state, &principal, &body).await?;
    Ok(created(
        format!("/api/v1/workstreams/{}", ws.id),
        ws.version,
        &ws,
    ))
}

/// List workstreams.
#[utoipa::path(get, path = "/api/v1/workstreams", tag = "plans",
    responses((status = 200, body = Vec<Workstream>)), security(("bearer" = [])))]
pub async fn list_workstreams(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let c = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(store::list_workstreams(&**c).await?))
}

/// One workstream, by id or slug.
#[utoipa::path(get, path = "/api/v1/workstreams/{key}", tag = "plans",
    params(("key" = String, Path, description = "Id or slug")),
    responses((status = 200, body = Workstream), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_workstream(
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = state.pool.get().await?;
    let ws = store::get_workstream(&**c, &key).await?;
    Ok(tagged(HttpResponse::Ok(), ws.version, &ws))
}

/// Create a workplan in a workstream.
#[utoipa::path(post, path = "/api/v1/workstreams/{key}/workplans", tag = "plans", request_body = NewWorkplan,
    params(("key" = String, Path, description = "Workstream id or slug")),
    responses((status = 201, body = Workplan), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_workplan(
    state: web::Data<AppState>,
    principal: Principal,
    key: web::Path<String>,
    body: web::Json<NewWorkplan>,
) -> Result<HttpResponse, ApiError> {
    let wp = service::create_workplan(&state, &principal, &key, &body).await?;
    Ok(created(
        format!("/api/v1/workplans/{}", wp.id),
        wp.version,
        &wp,
    ))
}

/// Query of the workplan listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkplanQuery {
    /// Only this workstream.
    pub workstream_id: Option<Uuid>,
    /// Only this status.
    pub status: Option<WorkplanStatus>,
}

/// List workplans, newest first.
#[utoipa::path(get, path = "/api/v1/workplans", tag = "plans", params(WorkplanQuery),
    responses((status = 200, body = Vec<Workplan>)), security(("bearer" = [])))]
pub async fn list_workplans(
    state: web::Data<AppState>,
    q: web::Query<WorkplanQuery>,
) -> Result<HttpResponse, ApiError> {
    let c = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(store::list_workplans(&**c, q.workstream_id, q.status).await?))
}

/// One workplan.
#[utoipa::path(get, path = "/api/v1/workplans/{id}", tag = "plans", params(("id" = Uuid, Path, description = "Workplan id")),
    responses((status = 200, body = Workplan), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_workplan(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let c = state.pool.get().await?;
    let wp = store::get_workplan(&**c, *id, false).await?;
    Ok(tagged(HttpResponse::Ok(), wp.version, &wp))
}

/// Mark a workplan finished (all tasks done or cancelled).
#[utoipa::path(post, path = "/api/v1/workplans/{id}/finish", tag = "plans",
    params(("id" = Uuid, Path, description = "Workplan id"), ("If-Match" = Option<String>, Header, description = "ETag")),
    responses((status = 200, body = Workplan), (status = 409, body = Problem), (status = 412, body = Problem)), security(("bearer" = [])))]
pub async fn finish(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let wp = service::finish(&state, &principal, *id, etag::if_match(&req)).await?;
    Ok(tagged(HttpResponse::Ok(), wp.version, &wp))
}

/// Accept a finished workplan: a review by someone other than who finished it.
#[utoipa::path(post, path = "/api/v1/workplans/{id}/accept", tag = "plans", request_body = AcceptRequest,
    params(("id" = Uuid, Path, description = "Workplan id"), ("If-Match" = Option<String>, Header, description = "ETag")),
    responses((status = 200, body = Workplan), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, description = "Invalid comment", body = Problem)), security(("bearer" = [])))]
pub async fn accept(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<AcceptRequest>,
) -> Result<HttpResponse, ApiError> {
    let comment = body.into_inner().comment;
    let wp = service::accept(
        &state,
        &principal,
        *id,
        etag::if_match(&req),
        comment.as_deref(),
    )
    .await?;
    Ok(tagged(HttpResponse::Ok(), wp.version, &wp))
}

/// Send a finished workplan back to work.
#[utoipa::path(post, path = "/api/v1/workplans/{id}/reopen", tag = "plans", request_body = ReopenRequest,
    params(("id" = Uuid, Path, description = "Workplan id"), ("If-Match" = Option<String>, Header, description = "ETag")),
    responses((status = 200, body = Workplan), (status = 409, body = Problem), (status = 422, description = "Invalid reason", body = Problem)), security(("bearer" = [])))]
pub async fn reopen(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<ReopenRequest>,
) -> Result<HttpResponse, ApiError> {
    let wp = service::reopen(&state, &principal, *id, etag::if_match(&req), &body.reason).await?;
    Ok(tagged(HttpResponse::Ok(), wp.version, &wp))
}

/// Create a task in an active workplan.
#[utoipa::path(post, path = "/api/v1/workplans/{id}/tasks", tag = "plans", request_body = NewTask,
    params(("id" = Uuid, Path, description = "Workplan id")),
    responses((status = 201, body = Task), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn create_task(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    body: web::Json<NewTask>,
) -> Result<HttpResponse, ApiError> {
    let t = service::create_task(&state, &principal, *id, body.into_inner()).await?;
    Ok(created(format!("/api/v1/tasks/{}", t.id), t.version, &t))
}

/// Query of the task listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// Only this workplan.
    pub workplan_id: Option<Uuid>,
    /// Only this status (aliases accepted).
    pub status: Option<TaskStatus>,
    /// Only this assignee.
    pub assignee: Option<String>,
    /// Only tasks that need (or do not need) a person.
    pub needs_human: Option<bool>,
    /// Only tasks blocked (or not) by escalated decisions.
    pub blocked: Option<bool>,
}

/// List tasks.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "plans", params(TaskQuery),
    responses((status = 200, body = Vec<Task>)), security(("bearer" = [])))]
pub async fn list_tasks(
    state: web::Data<AppState>,
    q: web::Query<TaskQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let f = TaskFilter {
        workplan_id: q.workplan_id,
        status: q.status,
        assignee: q.assignee,
        needs_human: q.needs_human,
        blocked: q.blocked,
    };
    let c = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(store::list_tasks(&**c, &f).await?))
}

/// One task.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "plans", params(("id" = Uuid, Path, description = "Task id")),
    responses((status = 200, body = Task), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_task(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let c = state.pool.get().await?;
    let t = store::get_task(&**c, *id, false).await?;
    Ok(tagged(HttpResponse::Ok(), t.version, &t))
}

/// Change a task: status (aliases accepted), assignee, needs_human, blocking reason, text.
#[utoipa::path(patch, path = "/api/v1/tasks/{id}", tag = "plans", request_body = TaskPatch,
    params(("id" = Uuid, Path, description = "Task id"), ("If-Match" = Option<String>, Header, description = "ETag")),
    responses((status = 200, body = Task), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn patch_task(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<TaskPatch>,
) -> Result<HttpResponse, ApiError> {
    let t = service::update_task(
        &state,
        &principal,
        *id,
        etag::if_match(&req),
        body.into_inner(),
    )
    .await?;
    Ok(tagged(HttpResponse::Ok(), t.version, &t))
}
