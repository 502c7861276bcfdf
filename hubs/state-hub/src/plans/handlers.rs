//! `/api/v1/workstreams`, `/api/v1/workplans`, `/api/v1/tasks`.

use super::rules::{self, TaskState};
use super::store::{self, TaskFilter};
use crate::journal::Draft;
use crate::respond::{self, tagged};
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
use serde_json::json;
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
    let slug = rules::slug(&body.slug).map_err(|m| ApiError::field("slug", m))?;
    let (title, description) = rules::title_description(&body.title, &body.description)?;
    let actor = principal.subject.to_string();
    let ws = state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let now = ctx.now();
                let ws = store::insert_workstream(
                    ctx.client(),
                    &slug,
                    &title,
                    &description,
                    &actor,
                    now,
                )
                .await?;
                let e = Draft::system(
                    "workstream.created",
                    format!("Workstream created: {}", ws.title),
                    json!({"slug": ws.slug}),
                )?
                .workstream(ws.id);
                ctx.append(&actor, vec![e]).await?;
                Ok(ws)
            })
        })
        .await?;
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
    let (title, description) = rules::title_description(&body.title, &body.description)?;
    let key = key.into_inner();
    let actor = principal.subject.to_string();
    let wp = state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let ws = store::get_workstream(ctx.client(), &key).await?;
                let now = ctx.now();
                let wp =
                    store::insert_workplan(ctx.client(), ws.id, &title, &description, &actor, now)
                        .await?;
                let e = Draft::system(
                    "workplan.created",
                    format!("Workplan created: {}", wp.title),
                    json!({}),
                )?
                .workstream(ws.id)
                .workplan(wp.id);
                ctx.append(&actor, vec![e]).await?;
                Ok(wp)
            })
        })
        .await?;
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

enum PlanStep {
    Finish,
    Accept(Option<String>),
    Reopen(String),
}

async fn plan_step(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: Uuid,
    step: PlanStep,
) -> Result<HttpResponse, ApiError> {
    let if_match = etag::if_match(&req);
    let wp = state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let wp = store::get_workplan(ctx.client(), id, true).await?;
                etag::check(if_match.as_deref(), wp.version)?;
                let actor = principal.subject.to_string();
                let now = ctx.now();
                let (status, comment, event_type, verb) = match &step {
                    PlanStep::Finish => {
                        let open = store::open_task_count(ctx.client(), id).await?;
                        rules::can_finish(&wp, open)?;
                        (
                            WorkplanStatus::Finished,
                            None,
                            "workplan.finished",
                            "finished",
                        )
                    }
                    PlanStep::Accept(comment) => {
                        rules::can_accept(&wp, &principal)?;
                        (
                            WorkplanStatus::Accepted,
                            comment.as_deref(),
                            "workplan.accepted",
                            "accepted",
                        )
                    }
                    PlanStep::Reopen(reason) => {
                        rules::can_reopen(&wp)?;
                        (
                            WorkplanStatus::Active,
                            Some(reason.as_str()),
                            "workplan.reopened",
                            "reopened",
                        )
                    }
                };
                let updated =
                    store::set_workplan_status(ctx.client(), id, status, &actor, comment, now)
                        .await?;
                let e = Draft::system(
                    event_type,
                    format!("Workplan {verb}: {}", wp.title),
                    json!({"comment": comment}),
                )?
                .workstream(wp.workstream_id)
                .workplan(id);
                ctx.append(&actor, vec![e]).await?;
                Ok(updated)
            })
        })
        .await?;
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
    plan_step(state, principal, req, *id, PlanStep::Finish).await
}

/// Accept a finished workplan: a review by someone other than who finished it.
#[utoipa::path(post, path = "/api/v1/workplans/{id}/accept", tag = "plans", request_body = AcceptRequest,
    params(("id" = Uuid, Path, description = "Workplan id"), ("If-Match" = Option<String>, Header, description = "ETag")),
    responses((status = 200, body = Workplan), (status = 403, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn accept(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<AcceptRequest>,
) -> Result<HttpResponse, ApiError> {
    let comment = body
        .into_inner()
        .comment
        .map(|c| respond::reason("comment", &c))
        .transpose()?;
    plan_step(state, principal, req, *id, PlanStep::Accept(comment)).await
}

/// Send a finished workplan back to work.
#[utoipa::path(post, path = "/api/v1/workplans/{id}/reopen", tag = "plans", request_body = ReopenRequest,
    params(("id" = Uuid, Path, description = "Workplan id"), ("If-Match" = Option<String>, Header, description = "ETag")),
    responses((status = 200, body = Workplan), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn reopen(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<ReopenRequest>,
) -> Result<HttpResponse, ApiError> {
    let reason = respond::reason("reason", &body.reason)?;
    plan_step(state, principal, req, *id, PlanStep::Reopen(reason)).await
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
    let body = body.into_inner();
    let (title, description) = rules::title_description(&body.title, &body.description)?;
    let blank = TaskState {
        title,
        description,
        status: TaskStatus::Todo,
        needs_human: body.needs_human,
        blocking_reason: None,
        assignee: body.assignee.map(|s| s.as_str().to_owned()),
    };
    let patch = TaskPatch {
        status: body.status,
        blocking_reason: body.blocking_reason.map(Some),
        ..Default::default()
    };
    let initial = rules::apply_patch(&blank, &patch, &[])?;
    let workplan_id = id.into_inner();
    let actor = principal.subject.to_string();
    let t = state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let wp = store::get_workplan(ctx.client(), workplan_id, true).await?;
                rules::plan_accepts_task_changes(&wp)?;
                let now = ctx.now();
                let t = store::insert_task(ctx.client(), workplan_id, &initial, &actor, now).await?;
                let e = Draft::system(
                    "task.created",
                    format!("Task created: {}", t.title),
                    json!({"status": t.status, "assignee": t.assignee, "needs_human": t.needs_human}),
                )?
                .workstream(wp.workstream_id)
                .workplan(workplan_id)
                .task(t.id);
                ctx.append(&actor, vec![e]).await?;
                Ok(t)
            })
        })
        .await?;
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
    let id = id.into_inner();
    let if_match = etag::if_match(&req);
    let patch = body.into_inner();
    let actor = principal.subject.to_string();
    let t = state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let t = store::get_task(ctx.client(), id, true).await?;
                etag::check(if_match.as_deref(), t.version)?;
                let wp = store::get_workplan(ctx.client(), t.workplan_id, false).await?;
                rules::plan_accepts_task_changes(&wp)?;
                let before = store::task_state(&t);
                let after = rules::apply_patch(&before, &patch, &t.blocked_by)?;
                if after == before {
                    return Ok(t);
                }
                let now = ctx.now();
                let updated = store::update_task(ctx.client(), id, &after, now).await?;
                let changes = diff(&before, &after);
                let summary = if before.status != after.status {
                    format!(
                        "Task {}: {} → {}",
                        after.title,
                        before.status.as_str(),
                        after.status.as_str()
                    )
                } else {
                    format!("Task updated: {}", after.title)
                };
                let e = Draft::system("task.updated", summary, json!({"changes": changes}))?
                    .workstream(wp.workstream_id)
                    .workplan(wp.id)
                    .task(id);
                ctx.append(&actor, vec![e]).await?;
                Ok(updated)
            })
        })
        .await?;
    Ok(tagged(HttpResponse::Ok(), t.version, &t))
}

fn diff(a: &TaskState, b: &TaskState) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, x: serde_json::Value, y: serde_json::Value| {
        if x != y {
            m.insert(k.to_owned(), json!({"from": x, "to": y}));
        }
    };
    put("title", json!(a.title), json!(b.title));
    put(
        "description",
        json!(a.description.len()),
        json!(b.description.len()),
    );
    put("status", json!(a.status), json!(b.status));
    put("needs_human", json!(a.needs_human), json!(b.needs_human));
    put(
        "blocking_reason",
        json!(a.blocking_reason),
        json!(b.blocking_reason),
    );
    put("assignee", json!(a.assignee), json!(b.assignee));
    serde_json::Value::Object(m)
}
