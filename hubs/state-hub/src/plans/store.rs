//! SQL of workstreams, workplans and tasks.

use super::rules::TaskState;
use hub_core::api::plans::{Task, TaskStatus, Workplan, WorkplanStatus, Workstream};
use hub_core::http::problem::ApiError;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

fn corrupt(what: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!("corrupt plans row: {what}"))
}

const WS_COLUMNS: &str = "id, slug, title, description, created_by, created_at, version";

fn workstream(r: &Row) -> Result<Workstream, ApiError> {
    Ok(Workstream {
        id: r.try_get("id")?,
        slug: r.try_get("slug")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        version: r.try_get("version")?,
    })
}

/// Inserts a workstream; a taken slug is a conflict.
pub async fn insert_workstream(
    c: &impl GenericClient,
    slug: &str,
    title: &str,
    description: &str,
    by: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Workstream, ApiError> {
    let taken = c
        .query_opt("SELECT 1 FROM workstreams WHERE slug = $1", &[&slug])
        .await?;
    if taken.is_some() {
        return Err(ApiError::Conflict(format!(
            "a workstream with slug `{slug}` exists"
        )));
    }
    let row = c
        .query_one(
            &format!(
                "INSERT INTO workstreams (id, slug, title, description, created_by, created_at) \
                 VALUES ($1,$2,$3,$4,$5,$6) RETURNING {WS_COLUMNS}"
            ),
            &[&Uuid::now_v7(), &slug, &title, &description, &by, &now],
        )
        .await?;
    workstream(&row)
}

/// All workstreams, oldest first.
pub async fn list_workstreams(c: &impl GenericClient) -> Result<Vec<Workstream>, ApiError> {
    let rows = c
        .query(
            &format!("SELECT {WS_COLUMNS} FROM workstreams ORDER BY id"),
            &[],
        )
        .await?;
    rows.iter().map(workstream).collect()
}

/// One workstream by id or slug.
pub async fn get_workstream(c: &impl GenericClient, key: &str) -> Result<Workstream, ApiError> {
    let row = match Uuid::parse_str(key) {
        Ok(id) => {
            c.query_opt(
                &format!("SELECT {WS_COLUMNS} FROM workstreams WHERE id = $1"),
                &[&id],
            )
            .await?
        }
        Err(_) => {
            c.query_opt(
                &format!("SELECT {WS_COLUMNS} FROM workstreams WHERE slug = $1"),
                &[&key],
            )
            .await?
        }
    };
    row.as_ref()
        .map(workstream)
        .transpose()?
        .ok_or_else(|| ApiError::NotFound(format!("no workstream {key}")))
}

const WP_COLUMNS: &str =
    "id, workstream_id, title, description, status, created_by, created_at, finished_by, \
finished_at, accepted_by, accepted_at, review_comment, version";

fn workplan(r: &Row) -> Result<Workplan, ApiError> {
    let status: String = r.try_get("status")?;
    Ok(Workplan {
        id: r.try_get("id")?,
        workstream_id: r.try_get("workstream_id")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        status: WorkplanStatus::parse(&status).ok_or_else(|| corrupt("workplan status"))?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        finished_by: r.try_get("finished_by")?,
        finished_at: r.try_get("finished_at")?,
        accepted_by: r.try_get("accepted_by")?,
        accepted_at: r.try_get("accepted_at")?,
        review_comment: r.try_get("review_comment")?,
        version: r.try_get("version")?,
    })
}

/// Inserts a workplan.
pub async fn insert_workplan(
    c: &impl GenericClient,
    workstream_id: Uuid,
    title: &str,
    description: &str,
    by: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Workplan, ApiError> {
    let row = c
        .query_one(
            &format!(
                "INSERT INTO workplans (id, workstream_id, title, description, created_by, created_at) \
                 VALUES ($1,$2,$3,$4,$5,$6) RETURNING {WP_COLUMNS}"
            ),
            &[&Uuid::now_v7(), &workstream_id, &title, &description, &by, &now],
        )
        .await?;
    workplan(&row)
}

/// One workplan, optionally locked.
pub async fn get_workplan(
    c: &impl GenericClient,
    id: Uuid,
    for_update: bool,
) -> Result<Workplan, ApiError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = c
        .query_opt(
            &format!("SELECT {WP_COLUMNS} FROM workplans WHERE id = $1{lock}"),
            &[&id],
        )
        .await?;
    row.as_ref()
        .map(workplan)
        .transpose()?
        .ok_or_else(|| ApiError::NotFound(format!("no workplan {id}")))
}

/// Workplans, optionally of one workstream and status, newest first.
pub async fn list_workplans(
    c: &impl GenericClient,
    workstream_id: Option<Uuid>,
    status: Option<WorkplanStatus>,
) -> Result<Vec<Workplan>, ApiError> {
    let status = status.map(|s| s.as_str());
    let rows = c
        .query(
            &format!(
                "SELECT {WP_COLUMNS} FROM workplans WHERE ($1::uuid IS NULL OR workstream_id = $1) \
                 AND ($2::text IS NULL OR status = $2) ORDER BY id DESC LIMIT 1000"
            ),
            &[&workstream_id, &status],
        )
        .await?;
    rows.iter().map(workplan).collect()
}

/// Sets a workplan's status and review fields.
pub async fn set_workplan_status(
    c: &impl GenericClient,
    id: Uuid,
    status: WorkplanStatus,
    by: &str,
    comment: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Workplan, ApiError> {
    let sql = match status {
        WorkplanStatus::Finished => "UPDATE workplans SET status = 'finished', finished_by = $2, finished_at = $3, \
             accepted_by = NULL, accepted_at = NULL, version = version + 1 WHERE id = $1",
        WorkplanStatus::Accepted => "UPDATE workplans SET status = 'accepted', accepted_by = $2, accepted_at = $3, \
             review_comment = $4, version = version + 1 WHERE id = $1",
        WorkplanStatus::Active => "UPDATE workplans SET status = 'active', finished_by = NULL, finished_at = NULL, \
             review_comment = $4, version = version + 1 WHERE id = $1 AND $2::text IS NOT NULL AND $3::timestamptz IS NOT NULL",
    };
    let n = match status {
        WorkplanStatus::Finished => c.execute(sql, &[&id, &by, &now]).await?,
        _ => c.execute(sql, &[&id, &by, &now, &comment]).await?,
    };
    if n != 1 {
        return Err(ApiError::internal(anyhow::anyhow!(
            "workplan {id} status update touched {n} rows"
        )));
    }
    get_workplan(c, id, false).await
}

/// Tasks of a plan that are neither done nor cancelled.
pub async fn open_task_count(c: &impl GenericClient, workplan_id: Uuid) -> Result<i64, ApiError> {
    let row = c
        .query_one(
            "SELECT count(*) FROM tasks WHERE workplan_id = $1 AND status NOT IN ('done', 'cancel')",
            &[&workplan_id],
        )
        .await?;
    Ok(row.try_get(0)?)
}

const TASK_COLUMNS: &str = "t.id, t.workplan_id, t.title, t.description, t.status, t.needs_human, t.blocking_reason, \
t.assignee, t.created_by, t.created_at, t.updated_at, t.version, \
COALESCE((SELECT array_agg(dt.decision_id ORDER BY dt.decision_id) FROM decision_tasks dt \
JOIN decisions d ON d.id = dt.decision_id WHERE dt.task_id = t.id AND d.status = 'escalated'), '{}') AS blocked_by";

fn task(r: &Row) -> Result<Task, ApiError> {
    let status: String = r.try_get("status")?;
    Ok(Task {
        id: r.try_get("id")?,
        workplan_id: r.try_get("workplan_id")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        status: TaskStatus::parse(&status).ok_or_else(|| corrupt("task status"))?,
        needs_human: r.try_get("needs_human")?,
        blocking_reason: r.try_get("blocking_reason")?,
        assignee: r.try_get("assignee")?,
        blocked_by: r.try_get("blocked_by")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        version: r.try_get("version")?,
    })
}

/// The state part of a task.
pub fn task_state(t: &Task) -> TaskState {
    TaskState {
        title: t.title.clone(),
        description: t.description.clone(),
        status: t.status,
        needs_human: t.needs_human,
        blocking_reason: t.blocking_reason.clone(),
        assignee: t.assignee.clone(),
    }
}

/// Inserts a task.
pub async fn insert_task(
    c: &impl GenericClient,
    workplan_id: Uuid,
    s: &TaskState,
    by: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Task, ApiError> {
    let id = Uuid::now_v7();
    c.execute(
        "INSERT INTO tasks (id, workplan_id, title, description, status, needs_human, blocking_reason, assignee, \
         created_by, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$10)",
        &[&id, &workplan_id, &s.title, &s.description, &s.status.as_str(), &s.needs_human, &s.blocking_reason, &s.assignee, &by, &now],
    )
    .await?;
    get_task(c, id, false).await
}

/// Writes a task's new state.
pub async fn update_task(
    c: &impl GenericClient,
    id: Uuid,
    s: &TaskState,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Task, ApiError> {
    c.execute(
        "UPDATE tasks SET title = $2, description = $3, status = $4, needs_human = $5, blocking_reason = $6, \
         assignee = $7, updated_at = $8, version = version + 1 WHERE id = $1",
        &[&id, &s.title, &s.description, &s.status.as_str(), &s.needs_human, &s.blocking_reason, &s.assignee, &now],
    )
    .await?;
    get_task(c, id, false).await
}

/// One task, optionally locked.
pub async fn get_task(
    c: &impl GenericClient,
    id: Uuid,
    for_update: bool,
) -> Result<Task, ApiError> {
    let lock = if for_update { " FOR UPDATE OF t" } else { "" };
    let row = c
        .query_opt(
            &format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id = $1{lock}"),
            &[&id],
        )
        .await?;
    row.as_ref()
        .map(task)
        .transpose()?
        .ok_or_else(|| ApiError::NotFound(format!("no task {id}")))
}

/// Task filters.
#[derive(Debug, Default)]
pub struct TaskFilter {
    /// Plan.
    pub workplan_id: Option<Uuid>,
    /// Status.
    pub status: Option<TaskStatus>,
    /// Assignee.
    pub assignee: Option<String>,
    /// Needs a person.
    pub needs_human: Option<bool>,
    /// Only tasks blocked by escalated decisions.
    pub blocked: Option<bool>,
}

/// Tasks matching a filter, oldest first (at most 1000).
pub async fn list_tasks(c: &impl GenericClient, f: &TaskFilter) -> Result<Vec<Task>, ApiError> {
    let status = f.status.map(|s| s.as_str());
    let rows = c
        .query(
            &format!(
                "SELECT * FROM (SELECT {TASK_COLUMNS} FROM tasks t WHERE ($1::uuid IS NULL OR t.workplan_id = $1) \
                 AND ($2::text IS NULL OR t.status = $2) AND ($3::text IS NULL OR t.assignee = $3) \
                 AND ($4::bool IS NULL OR t.needs_human = $4)) x \
                 WHERE ($5::bool IS NULL OR (cardinality(x.blocked_by) > 0) = $5) ORDER BY x.id LIMIT 1000"
            ),
            &[&f.workplan_id, &status, &f.assignee, &f.needs_human, &f.blocked],
        )
        .await?;
    rows.iter().map(task).collect()
}

/// How many workplans have `status`.
pub async fn count_workplans(
    c: &impl GenericClient,
    status: WorkplanStatus,
) -> Result<i64, ApiError> {
    let row = c
        .query_one(
            "SELECT count(*) FROM workplans WHERE status = $1",
            &[&status.as_str()],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// The tasks `ids` names, oldest first (unknown ids are left out).
pub async fn tasks_by_ids(c: &impl GenericClient, ids: &[Uuid]) -> Result<Vec<Task>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = c
        .query(
            &format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id = ANY($1) ORDER BY t.id"),
            &[&ids],
        )
        .await?;
    rows.iter().map(task).collect()
}
