//! `/plans` (workstreams), `/workstreams/{key}` (its workplans) and `/workplans/{id}`: the board
//! with one column per task status and the forms that change tasks and the plan.

use super::form::{self, Feedback};
use crate::decisions::store as decisions;
use crate::plans::{service, store};
use crate::state::AppState;
use actix_web::web;
use hub_core::api::plans::{
    NewTask, NewWorkplan, NewWorkstream, TaskPatch, TaskStatus, WorkplanStatus,
};
use hub_core::auth::{Principal, Subject};
use hub_core::http::problem::{ApiError, FieldError};
use hub_core::identity::users;
use hub_core::web::{PageResult, Pages};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The board's columns, in the order work moves.
const COLUMNS: [TaskStatus; 5] = [
    TaskStatus::Wait,
    TaskStatus::Todo,
    TaskStatus::Progress,
    TaskStatus::Done,
    TaskStatus::Cancel,
];

/// How many known users the assignee picker lists without JavaScript.
const PICKER_USERS: i64 = 500;

/// The new-workstream form.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct WorkstreamForm {
    #[serde(default)]
    slug: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
}

/// The new-workplan form.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct WorkplanForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
}

/// The new-task form.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct TaskForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    assignee: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    needs_human: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    blocking_reason: String,
}

/// A task card's status form.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct TaskStatusForm {
    #[serde(default)]
    version: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    blocking_reason: String,
}

/// The finish, accept and reopen forms (each sends the fields it has).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct PlanStepForm {
    #[serde(default)]
    version: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    reason: String,
}

/// `GET /plans`: the workstreams.
pub async fn workstreams(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
) -> PageResult {
    render_workstreams(&pages, &state, &principal, None).await
}

async fn render_workstreams(
    pages: &Pages,
    state: &AppState,
    principal: &Principal,
    feedback: Option<Feedback>,
) -> PageResult {
    let client = state.pool.get().await?;
    let streams = store::list_workstreams(&**client).await?;
    let plans = store::list_workplans(&**client, None, Some(WorkplanStatus::Active)).await?;
    let mut active: BTreeMap<Uuid, usize> = BTreeMap::new();
    for p in &plans {
        *active.entry(p.workstream_id).or_default() += 1;
    }
    let rows: Vec<_> = streams
        .iter()
        .map(|ws| json!({"ws": ws, "active": active.get(&ws.id).copied().unwrap_or(0)}))
        .collect();
    let mut ctx = super::context(pages, principal);
    ctx.insert("workstreams", &rows);
    if let Some(f) = &feedback {
        f.apply(&mut ctx);
    }
    Ok(pages.render_status(form::status(feedback.as_ref()), "plans.html", &ctx)?)
}

/// `POST /workstreams`: creates a workstream.
pub async fn create_workstream(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    input: web::Form<WorkstreamForm>,
) -> PageResult {
    let input = input.into_inner();
    let request = NewWorkstream {
        slug: input.slug.trim().to_owned(),
        title: input.title.clone(),
        description: input.description.clone(),
    };
    match service::create_workstream(&state, &principal, &request).await {
        Ok(ws) => Ok(form::see_other(&format!("/workstreams/{}", ws.slug))),
        Err(e) => {
            let feedback = Feedback::refused("workstream", &input, e, "workstream")?;
            render_workstreams(&pages, &state, &principal, Some(feedback)).await
        }
    }
}

/// `GET /workstreams/{key}`: a workstream (by slug or id) and its workplans.
pub async fn workstream(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    key: web::Path<String>,
) -> PageResult {
    render_workstream(&pages, &state, &principal, &key, None).await
}

async fn render_workstream(
    pages: &Pages,
    state: &AppState,
    principal: &Principal,
    key: &str,
    feedback: Option<Feedback>,
) -> PageResult {
    let client = state.pool.get().await?;
    let ws = store::get_workstream(&**client, key).await?;
    let plans = store::list_workplans(&**client, Some(ws.id), None).await?;
    let mut ctx = super::context(pages, principal);
    ctx.insert("ws", &ws);
    ctx.insert("workplans", &plans);
    if let Some(f) = &feedback {
        f.apply(&mut ctx);
    }
    Ok(pages.render_status(form::status(feedback.as_ref()), "workstream.html", &ctx)?)
}

/// `POST /workstreams/{key}/workplans`: creates a workplan.
pub async fn create_workplan(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    key: web::Path<String>,
    input: web::Form<WorkplanForm>,
) -> PageResult {
    let input = input.into_inner();
    let request = NewWorkplan {
        title: input.title.clone(),
        description: input.description.clone(),
    };
    match service::create_workplan(&state, &principal, &key, &request).await {
        Ok(wp) => Ok(form::see_other(&format!("/workplans/{}", wp.id))),
        Err(e) => {
            let feedback = Feedback::refused("workplan", &input, e, "workstream")?;
            render_workstream(&pages, &state, &principal, &key, Some(feedback)).await
        }
    }
}

/// `GET /workplans/{id}`: the board.
pub async fn board(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> PageResult {
    let id = form::path_id(&id, "workplan")?;
    render_board(&pages, &state, &principal, id, None, None).await
}

async fn render_board(
    pages: &Pages,
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    feedback: Option<Feedback>,
    failed_task: Option<Uuid>,
) -> PageResult {
    let client = state.pool.get().await?;
    let wp = store::get_workplan(&**client, id, false).await?;
    let ws = store::get_workstream(&**client, &wp.workstream_id.to_string()).await?;
    let tasks = store::list_tasks(
        &**client,
        &store::TaskFilter {
            workplan_id: Some(id),
            ..Default::default()
        },
    )
    .await?;
    let blocker_ids: Vec<Uuid> = tasks.iter().flat_map(|t| t.blocked_by.clone()).collect();
    let blockers = decisions::titles(&**client, &blocker_ids).await?;
    let columns: Vec<_> = COLUMNS
        .iter()
        .map(|status| {
            let cards: Vec<_> = tasks
                .iter()
                .filter(|t| t.status == *status)
                .map(|t| {
                    let held: Vec<_> = t
                        .blocked_by
                        .iter()
                        .map(|d| json!({"id": d, "title": blockers.get(d)}))
                        .collect();
                    // The card whose form was refused shows the input and messages.
                    json!({"task": t, "held": held, "failed": failed_task == Some(t.id)})
                })
                .collect();
            json!({"status": status.as_str(), "tasks": cards})
        })
        .collect();
    let known = users::list(&**client, PICKER_USERS).await?;
    let people: Vec<_> = known
        .iter()
        .map(|u| json!({"username": u.username, "display_name": u.display_name}))
        .collect();
    let mut ctx = super::context(pages, principal);
    ctx.insert("wp", &wp);
    ctx.insert("ws", &ws);
    ctx.insert("columns", &columns);
    ctx.insert(
        "statuses",
        &COLUMNS.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    );
    ctx.insert("people", &people);
    ctx.insert(
        "open_tasks",
        &tasks.iter().filter(|t| !t.status.is_terminal()).count(),
    );
    ctx.insert(
        "finished_by_viewer",
        &(wp.finished_by.as_deref() == Some(principal.subject.as_str())),
    );
    if let Some(f) = &feedback {
        f.apply(&mut ctx);
    }
    Ok(pages.render_status(form::status(feedback.as_ref()), "workplan.html", &ctx)?)
}

/// The new-task form as the API's request, or the fields that do not parse.
fn new_task(input: &TaskForm) -> Result<NewTask, Vec<FieldError>> {
    let mut errors = Vec::new();
    let assignee = match form::optional(&input.assignee) {
        None => None,
        Some(a) => Subject::parse(&a)
            .map_err(|m| errors.push(FieldError::new("assignee", m)))
            .ok(),
    };
    let status = match form::optional(&input.status) {
        None => None,
        Some(s) => TaskStatus::parse(&s)
            .ok_or_else(|| errors.push(FieldError::new("status", format!("no status `{s}`"))))
            .ok(),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(NewTask {
        title: input.title.clone(),
        description: input.description.clone(),
        status,
        assignee,
        needs_human: input.needs_human.is_some(),
        blocking_reason: form::optional(&input.blocking_reason),
    })
}

/// `POST /workplans/{id}/tasks`: creates a task.
pub async fn create_task(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    input: web::Form<TaskForm>,
) -> PageResult {
    let id = form::path_id(&id, "workplan")?;
    let input = input.into_inner();
    let outcome = match new_task(&input) {
        Ok(task) => service::create_task(&state, &principal, id, task).await,
        Err(mut errors) => {
            // Show the text fields' problems in the same answer.
            if let Err(ApiError::Validation(mut more)) =
                crate::plans::rules::title_description(&input.title, &input.description)
            {
                errors.append(&mut more);
            }
            Err(ApiError::Validation(errors))
        }
    };
    match outcome {
        Ok(_) => Ok(form::see_other(&format!("/workplans/{id}"))),
        Err(e) => {
            let feedback = Feedback::refused("task", &input, e, "workplan")?;
            render_board(&pages, &state, &principal, id, Some(feedback), None).await
        }
    }
}

/// `POST /tasks/{id}/status`: moves a task on the board.
pub async fn task_status(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    input: web::Form<TaskStatusForm>,
) -> PageResult {
    let id = form::path_id(&id, "task")?;
    let workplan_id = {
        let client = state.pool.get().await?;
        store::get_task(&**client, id, false).await?.workplan_id
    };
    let outcome = match (
        form::if_match(&input.version),
        TaskStatus::parse(input.status.trim()),
    ) {
        (Ok(if_match), Some(status)) => {
            // The reason matters only for `wait`; leaving `wait` clears it (rules::apply_patch).
            let reason =
                form::optional(&input.blocking_reason).filter(|_| status == TaskStatus::Wait);
            let patch = TaskPatch {
                status: Some(status),
                blocking_reason: reason.map(Some),
                ..Default::default()
            };
            service::update_task(&state, &principal, id, if_match, patch).await
        }
        (Err(e), _) => Err(e),
        (_, None) => Err(ApiError::field(
            "status",
            format!("no status `{}`", input.status.trim()),
        )),
    };
    match outcome {
        Ok(_) => Ok(form::see_other(&format!(
            "/workplans/{workplan_id}#task-{id}"
        ))),
        Err(e) => {
            let feedback = Feedback::refused("task_status", &*input, e, "task")?;
            render_board(
                &pages,
                &state,
                &principal,
                workplan_id,
                Some(feedback),
                Some(id),
            )
            .await
        }
    }
}

/// Which plan step a form asks for.
enum Step {
    Finish,
    Accept,
    Reopen,
}

async fn plan_step(
    (pages, state, principal): (&Pages, &AppState, &Principal),
    id: &str,
    input: &PlanStepForm,
    step: Step,
) -> PageResult {
    let id = form::path_id(id, "workplan")?;
    let outcome = match form::if_match(&input.version) {
        Ok(if_match) => match step {
            Step::Finish => service::finish(state, principal, id, if_match).await,
            Step::Accept => {
                let comment = form::optional(&input.comment);
                service::accept(state, principal, id, if_match, comment.as_deref()).await
            }
            Step::Reopen => service::reopen(state, principal, id, if_match, &input.reason).await,
        },
        Err(e) => Err(e),
    };
    let form_name = match step {
        Step::Finish => "finish",
        Step::Accept => "accept",
        Step::Reopen => "reopen",
    };
    match outcome {
        Ok(_) => Ok(form::see_other(&format!("/workplans/{id}"))),
        Err(e) => {
            let feedback = Feedback::refused(form_name, input, e, "workplan")?;
            render_board(pages, state, principal, id, Some(feedback), None).await
        }
    }
}

/// `POST /workplans/{id}/finish`.
pub async fn finish(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    input: web::Form<PlanStepForm>,
) -> PageResult {
    plan_step((&pages, &state, &principal), &id, &input, Step::Finish).await
}

/// `POST /workplans/{id}/accept`: the review by someone other than who finished it.
pub async fn accept(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    input: web::Form<PlanStepForm>,
) -> PageResult {
    plan_step((&pages, &state, &principal), &id, &input, Step::Accept).await
}

/// `POST /workplans/{id}/reopen`.
pub async fn reopen(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    input: web::Form<PlanStepForm>,
) -> PageResult {
    plan_step((&pages, &state, &principal), &id, &input, Step::Reopen).await
}
