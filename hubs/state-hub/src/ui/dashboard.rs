//! `/`: what needs attention now: open escalations, blocked tasks, how much is open, and the
//! latest events, live.

use crate::decisions::store as decisions;
use crate::journal::store::{self as journal_store, Filter, Order};
use crate::plans::store::{self as plans, TaskFilter};
use crate::state::AppState;
use actix_web::web;
use hub_core::api::decisions::DecisionStatus;
use hub_core::api::plans::{Task, TaskStatus, WorkplanStatus};
use hub_core::auth::Principal;
use hub_core::web::{PageResult, Pages};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

/// A task that cannot move, and the escalated decisions holding it.
#[derive(Serialize)]
struct Blocked {
    task: Task,
    blockers: Vec<serde_json::Value>,
}

/// The dashboard.
pub async fn dashboard(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
) -> PageResult {
    let client = state.pool.get().await?;
    let (escalated, _) =
        decisions::page(&**client, Some(DecisionStatus::Escalated), None, 50).await?;
    let waiting = plans::list_tasks(
        &**client,
        &TaskFilter {
            status: Some(TaskStatus::Wait),
            ..Default::default()
        },
    )
    .await?;
    let held = plans::list_tasks(
        &**client,
        &TaskFilter {
            blocked: Some(true),
            ..Default::default()
        },
    )
    .await?;
    // A task can both wait and be held by a decision; it is listed once.
    let mut tasks: BTreeMap<uuid::Uuid, Task> = BTreeMap::new();
    for t in waiting.into_iter().chain(held) {
        tasks.entry(t.id).or_insert(t);
    }
    let blocker_ids: Vec<uuid::Uuid> = tasks.values().flat_map(|t| t.blocked_by.clone()).collect();
    let titles = decisions::titles(&**client, &blocker_ids).await?;
    let blocked: Vec<Blocked> = tasks
        .into_values()
        .map(|task| Blocked {
            blockers: task
                .blocked_by
                .iter()
                .map(|id| json!({"id": id, "title": titles.get(id)}))
                .collect(),
            task,
        })
        .collect();
    let by_status = decisions::status_counts(&**client).await?;
    let count = |s: DecisionStatus| by_status.get(s.as_str()).copied().unwrap_or(0);
    let counts = json!({
        "open_decisions": count(DecisionStatus::Open),
        "escalated_decisions": count(DecisionStatus::Escalated),
        "active_workplans": plans::count_workplans(&**client, WorkplanStatus::Active).await?,
    });
    let (recent, _) =
        journal_store::page(&client, &Filter::default(), None, 20, Order::Desc).await?;
    let mut ctx = super::context(&pages, &principal);
    ctx.insert("escalated", &escalated);
    ctx.insert("blocked", &blocked);
    ctx.insert("counts", &counts);
    ctx.insert("recent", &recent);
    Ok(pages.render("dashboard.html", &ctx)?)
}
