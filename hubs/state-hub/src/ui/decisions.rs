//! `/decisions`: the list with its propose form, and one decision with its history and the forms
//! that move it on (escalate, resolve, supersede, link a task).

use super::form::{self, Feedback};
use crate::decisions::{service, store};
use crate::journal::store::{self as journal_store, Filter, Order};
use crate::plans::store as plans;
use crate::state::AppState;
use actix_web::web;
use hub_core::api::decisions::{DecisionStatus, NewDecision, OutcomeInput, SupersedeRequest};
use hub_core::auth::Principal;
use hub_core::http::cursor;
use hub_core::http::problem::ApiError;
use hub_core::web::{encode_component, PageResult, Pages};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Decisions per page.
const PAGE_SIZE: i64 = 50;

/// `?status=&after=` of the list.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only this status; empty for all.
    #[serde(default)]
    status: String,
    /// Cursor of the page after the one shown.
    #[serde(default)]
    after: String,
}

/// The propose form.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ProposeForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    context: String,
    /// One option per line.
    #[serde(default)]
    options: String,
}

/// The escalate form.
#[derive(Debug, Deserialize, Serialize)]
pub struct EscalateForm {
    #[serde(default)]
    version: String,
    #[serde(default)]
    reason: String,
}

/// The resolve form.
#[derive(Debug, Deserialize, Serialize)]
pub struct ResolveForm {
    #[serde(default)]
    version: String,
    #[serde(default)]
    choice: String,
    #[serde(default)]
    rationale: String,
}

/// The supersede form: why, and the replacing proposal.
#[derive(Debug, Deserialize, Serialize)]
pub struct SupersedeForm {
    #[serde(default)]
    version: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    context: String,
    #[serde(default)]
    options: String,
}

/// The link-a-task form.
#[derive(Debug, Deserialize, Serialize)]
pub struct LinkForm {
    #[serde(default)]
    task_id: String,
}

/// `GET /decisions`.
pub async fn list(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    q: web::Query<ListQuery>,
) -> PageResult {
    render_list(&pages, &state, &principal, &q, None).await
}

async fn render_list(
    pages: &Pages,
    state: &AppState,
    principal: &Principal,
    q: &ListQuery,
    feedback: Option<Feedback>,
) -> PageResult {
    let status = match q.status.as_str() {
        "" => None,
        s => Some(DecisionStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "status must be open, escalated, resolved or superseded, not `{s}`"
            ))
        })?),
    };
    let after = form::optional(&q.after)
        .map(|c| cursor::decode_uuid(store::CURSOR_KIND, &c))
        .transpose()?;
    let client = state.pool.get().await?;
    let (items, next) = store::page(&**client, status, after, PAGE_SIZE).await?;
    let older = next.map(|id| {
        let cursor = cursor::encode(store::CURSOR_KIND, &id.to_string());
        format!(
            "/decisions?status={}&after={}",
            encode_component(&q.status),
            encode_component(&cursor)
        )
    });
    let mut ctx = super::context(pages, principal);
    ctx.insert("decisions", &items);
    ctx.insert("status_filter", &q.status);
    ctx.insert("older", &older);
    ctx.insert("first_page", &after.is_none());
    if let Some(f) = &feedback {
        f.apply(&mut ctx);
    }
    Ok(pages.render_status(form::status(feedback.as_ref()), "decisions.html", &ctx)?)
}

/// `POST /decisions`: propose.
pub async fn propose(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    input: web::Form<ProposeForm>,
) -> PageResult {
    let input = input.into_inner();
    let proposal = NewDecision {
        title: input.title.clone(),
        context: input.context.clone(),
        options: form::lines(&input.options),
        outcome: None,
        task_ids: Vec::new(),
    };
    match service::propose(&state, &principal, &proposal).await {
        Ok(d) => Ok(form::see_other(&format!("/decisions/{}", d.id))),
        Err(e) => {
            let feedback = Feedback::refused("propose", &input, e, "decision")?;
            render_list(
                &pages,
                &state,
                &principal,
                &ListQuery::default(),
                Some(feedback),
            )
            .await
        }
    }
}

/// `GET /decisions/{id}`.
pub async fn detail(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> PageResult {
    let id = form::path_id(&id, "decision")?;
    render_detail(&pages, &state, &principal, id, None).await
}

async fn render_detail(
    pages: &Pages,
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    feedback: Option<Feedback>,
) -> PageResult {
    let client = state.pool.get().await?;
    let d = store::require(&**client, id, false).await?;
    let tasks = plans::tasks_by_ids(&**client, &d.task_ids).await?;
    let filter = Filter {
        decision_id: Some(id),
        ..Default::default()
    };
    let (history, _) = journal_store::page(&client, &filter, None, 200, Order::Asc).await?;
    let mut ctx = super::context(pages, principal);
    ctx.insert(
        "is_proposer",
        &(d.proposed_by == principal.subject.as_str()),
    );
    ctx.insert("options_text", &d.options.join("\n"));
    ctx.insert("d", &d);
    ctx.insert("tasks", &tasks);
    ctx.insert("history", &history);
    if let Some(f) = &feedback {
        f.apply(&mut ctx);
    }
    Ok(pages.render_status(form::status(feedback.as_ref()), "decision.html", &ctx)?)
}

/// Answers a decision form: 303 to `location` when applied, else the decision page again.
async fn answer<T>(
    (pages, state, principal): (&Pages, &AppState, &Principal),
    id: Uuid,
    form_name: &'static str,
    input: &impl Serialize,
    outcome: Result<T, ApiError>,
    location: impl FnOnce(T) -> String,
) -> PageResult {
    match outcome {
        Ok(v) => Ok(form::see_other(&location(v))),
        Err(e) => {
            let feedback = Feedback::refused(form_name, input, e, "decision")?
                .rename_field("task_ids", "task_id");
            render_detail(pages, state, principal, id, Some(feedback)).await
        }
    }
}

/// `POST /decisions/{id}/escalate`.
pub async fn escalate(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    input: web::Form<EscalateForm>,
) -> PageResult {
    let id = form::path_id(&id, "decision")?;
    let outcome = match form::if_match(&input.version) {
        Ok(if_match) => service::escalate(&state, &principal, id, if_match, &input.reason).await,
        Err(e) => Err(e),
    };
    let page = (&**pages, &**state, &principal);
    answer(page, id, "escalate", &*input, outcome, |d| {
        format!("/decisions/{}", d.id)
    })
    .await
}

/// `POST /decisions/{id}/resolve`: records the outcome; for an escalated decision, the approval.
pub async fn resolve(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    input: web::Form<ResolveForm>,
) -> PageResult {
    let id = form::path_id(&id, "decision")?;
    let outcome = match form::if_match(&input.version) {
        Ok(if_match) => {
            let choice = OutcomeInput {
                choice: input.choice.clone(),
                rationale: input.rationale.clone(),
            };
            service::resolve(&state, &principal, id, if_match, choice).await
        }
        Err(e) => Err(e),
    };
    let page = (&**pages, &**state, &principal);
    answer(page, id, "resolve", &*input, outcome, |d| {
        format!("/decisions/{}", d.id)
    })
    .await
}

/// `POST /decisions/{id}/supersede`: replaces the decision; answers with the replacement's page.
pub async fn supersede(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    input: web::Form<SupersedeForm>,
) -> PageResult {
    let id = form::path_id(&id, "decision")?;
    let outcome = match form::if_match(&input.version) {
        Ok(if_match) => {
            let request = SupersedeRequest {
                reason: input.reason.clone(),
                replacement: NewDecision {
                    title: input.title.clone(),
                    context: input.context.clone(),
                    options: form::lines(&input.options),
                    outcome: None,
                    task_ids: Vec::new(),
                },
            };
            service::supersede(&state, &principal, id, if_match, &request).await
        }
        Err(e) => Err(e),
    };
    let page = (&**pages, &**state, &principal);
    answer(page, id, "supersede", &*input, outcome, |new| {
        format!("/decisions/{}", new.id)
    })
    .await
}

/// `POST /decisions/{id}/tasks`: links a task.
pub async fn link_task(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    input: web::Form<LinkForm>,
) -> PageResult {
    let id = form::path_id(&id, "decision")?;
    let outcome = match Uuid::parse_str(input.task_id.trim()) {
        Ok(task_id) => service::link_task(&state, &principal, id, task_id).await,
        Err(_) => Err(ApiError::field(
            "task_id",
            "enter a task id (shown on the task's card on its workplan board)",
        )),
    };
    let page = (&**pages, &**state, &principal);
    answer(page, id, "link", &*input, outcome, |d| {
        format!("/decisions/{}", d.id)
    })
    .await
}
