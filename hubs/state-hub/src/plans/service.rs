//! The plan operations, shared by the REST handlers and the web pages: each validates its input,
//! applies the lifecycle rules to the locked rows and writes its journal event in the same
//! transaction, so a refusal or a failure leaves nothing behind whichever surface asked.

use super::rules::{self, TaskState};
use super::store;
use crate::journal::Draft;
use crate::respond;
use crate::state::AppState;
use hub_core::api::plans::{
    NewTask, NewWorkplan, NewWorkstream, Task, TaskPatch, TaskStatus, Workplan, WorkplanStatus,
    Workstream,
};
use hub_core::auth::Principal;
use hub_core::http::etag;
use hub_core::http::problem::ApiError;
use serde_json::json;
use uuid::Uuid;

/// Creates a workstream; a taken slug is a conflict.
pub async fn create_workstream(
    state: &AppState,
    actor: &Principal,
    input: &NewWorkstream,
) -> Result<Workstream, ApiError> {
    let slug = rules::slug(&input.slug).map_err(|m| ApiError::field("slug", m));
    let text = rules::title_description(&input.title, &input.description);
    let (slug, (title, description)) = match (slug, text) {
        (Ok(s), Ok(t)) => (s, t),
        (slug, text) => {
            return Err(respond::merge_failures(
                [slug.err(), text.err()].into_iter().flatten(),
            ))
        }
    };
    let actor = actor.subject.to_string();
    state
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
        .await
}

/// Creates a workplan in the workstream named by `key` (id or slug).
pub async fn create_workplan(
    state: &AppState,
    actor: &Principal,
    key: &str,
    input: &NewWorkplan,
) -> Result<Workplan, ApiError> {
    let (title, description) = rules::title_description(&input.title, &input.description)?;
    let key = key.to_owned();
    let actor = actor.subject.to_string();
    state
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
        .await
}

enum PlanStep {
    Finish,
    Accept(Option<String>),
    Reopen(String),
}

async fn plan_step(
    state: &AppState,
    actor: &Principal,
    id: Uuid,
    if_match: Option<String>,
    step: PlanStep,
) -> Result<Workplan, ApiError> {
    let principal = actor.clone();
    state
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
        .await
}

/// Marks an active workplan finished once every task is done or cancelled.
pub async fn finish(
    state: &AppState,
    actor: &Principal,
    id: Uuid,
    if_match: Option<String>,
) -> Result<Workplan, ApiError> {
    plan_step(state, actor, id, if_match, PlanStep::Finish).await
}

/// Accepts a finished workplan: a review by someone other than whoever finished it.
pub async fn accept(
    state: &AppState,
    actor: &Principal,
    id: Uuid,
    if_match: Option<String>,
    comment: Option<&str>,
) -> Result<Workplan, ApiError> {
    let comment = comment.map(|c| respond::reason("comment", c)).transpose()?;
    plan_step(state, actor, id, if_match, PlanStep::Accept(comment)).await
}

/// Sends a finished workplan back to work.
pub async fn reopen(
    state: &AppState,
    actor: &Principal,
    id: Uuid,
    if_match: Option<String>,
    reason: &str,
) -> Result<Workplan, ApiError> {
    let reason = respond::reason("reason", reason)?;
    plan_step(state, actor, id, if_match, PlanStep::Reopen(reason)).await
}

/// Creates a task in an active workplan.
pub async fn create_task(
    state: &AppState,
    actor: &Principal,
    workplan_id: Uuid,
    input: NewTask,
) -> Result<Task, ApiError> {
    let text = rules::title_description(&input.title, &input.description);
    let (title, description) = text.as_ref().cloned().unwrap_or_default();
    let blank = TaskState {
        title,
        description,
        status: TaskStatus::Todo,
        needs_human: input.needs_human,
        blocking_reason: None,
        assignee: input.assignee.as_ref().map(|s| s.as_str().to_owned()),
    };
    let patch = TaskPatch {
        status: input.status,
        blocking_reason: input.blocking_reason.clone().map(Some),
        ..Default::default()
    };
    let initial = match (text, rules::apply_patch(&blank, &patch, &[])) {
        (Ok(_), Ok(initial)) => initial,
        (text, initial) => {
            return Err(respond::merge_failures(
                [text.err(), initial.err()].into_iter().flatten(),
            ))
        }
    };
    let actor = actor.subject.to_string();
    state
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
        .await
}

/// Changes a task (status, assignee, needs_human, blocking reason, text) while its plan is
/// active; a change that changes nothing writes no event.
pub async fn update_task(
    state: &AppState,
    actor: &Principal,
    id: Uuid,
    if_match: Option<String>,
    patch: TaskPatch,
) -> Result<Task, ApiError> {
    let actor = actor.subject.to_string();
    state
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
        .await
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
