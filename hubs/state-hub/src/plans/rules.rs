//! Plan and task lifecycle rules, as pure functions.

use hub_core::api::plans::{TaskPatch, TaskStatus, Workplan, WorkplanStatus};
use hub_core::auth::Principal;
use hub_core::http::problem::{ApiError, FieldError};
use hub_core::text;

/// Validates a workstream slug: lowercase letters, digits and `-`, 1–64, starting with a letter.
pub fn slug(s: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&s.len())
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("slug must be 1-64 lowercase letters, digits or `-`, starting with a letter".into())
    }
}

/// Collects field errors for title/description pairs.
pub fn title_description(title: &str, description: &str) -> Result<(String, String), ApiError> {
    let mut errors = Vec::new();
    let t = text::single_line("title", title, 1, 200)
        .map_err(|m| errors.push(FieldError::new("title", m)))
        .ok();
    let d = text::multi_line("description", description, 0, 20_000)
        .map_err(|m| errors.push(FieldError::new("description", m)))
        .ok();
    match (t, d) {
        (Some(t), Some(d)) => Ok((t, d)),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// Tasks change only while their plan is active.
pub fn plan_accepts_task_changes(p: &Workplan) -> Result<(), ApiError> {
    match p.status {
        WorkplanStatus::Active => Ok(()),
        s => Err(ApiError::InvalidTransition(format!(
            "workplan {} is {}; reopen it before changing its tasks",
            p.id,
            s.as_str()
        ))),
    }
}

/// A plan is finished when active and every task is done or cancelled.
pub fn can_finish(p: &Workplan, open_tasks: i64) -> Result<(), ApiError> {
    if p.status != WorkplanStatus::Active {
        return Err(ApiError::InvalidTransition(format!(
            "workplan {} is {}; only active plans can be finished",
            p.id,
            p.status.as_str()
        )));
    }
    if open_tasks > 0 {
        return Err(ApiError::InvalidTransition(format!(
            "workplan {} still has {open_tasks} task(s) not done or cancelled",
            p.id
        )));
    }
    Ok(())
}

/// Acceptance is a review: finished plans, by a person other than whoever finished it.
pub fn can_accept(p: &Workplan, reviewer: &Principal) -> Result<(), ApiError> {
    if p.status != WorkplanStatus::Finished {
        return Err(ApiError::InvalidTransition(format!(
            "workplan {} is {}; only finished plans can be accepted",
            p.id,
            p.status.as_str()
        )));
    }
    if !reviewer.is_human() {
        return Err(ApiError::Forbidden(
            "acceptance is a review by a person, not a service".into(),
        ));
    }
    if p.finished_by.as_deref() == Some(reviewer.subject.as_str()) {
        return Err(ApiError::Forbidden(format!(
            "{} finished this workplan; acceptance must be a review by someone else",
            reviewer.subject
        )));
    }
    Ok(())
}

/// Only finished plans can be reopened.
pub fn can_reopen(p: &Workplan) -> Result<(), ApiError> {
    match p.status {
        WorkplanStatus::Finished => Ok(()),
        s => Err(ApiError::InvalidTransition(format!(
            "workplan {} is {}; only finished plans can be reopened",
            p.id,
            s.as_str()
        ))),
    }
}

/// The validated fields of a task after a change.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Status.
    pub status: TaskStatus,
    /// Needs a person.
    pub needs_human: bool,
    /// Why it waits.
    pub blocking_reason: Option<String>,
    /// Responsible user.
    pub assignee: Option<String>,
}

/// Applies a patch to the current state, enforcing: `wait` needs a reason (cleared on leaving
/// `wait` unless given), and a task blocked by escalated decisions cannot start or finish.
pub fn apply_patch(
    current: &TaskState,
    patch: &TaskPatch,
    blocked_by: &[uuid::Uuid],
) -> Result<TaskState, ApiError> {
    let mut errors = Vec::new();
    let mut next = current.clone();
    if let Some(t) = &patch.title {
        match text::single_line("title", t, 1, 200) {
            Ok(v) => next.title = v,
            Err(m) => errors.push(FieldError::new("title", m)),
        }
    }
    if let Some(d) = &patch.description {
        match text::multi_line("description", d, 0, 20_000) {
            Ok(v) => next.description = v,
            Err(m) => errors.push(FieldError::new("description", m)),
        }
    }
    if let Some(a) = &patch.assignee {
        next.assignee = a.as_ref().map(|s| s.as_str().to_owned());
    }
    if let Some(n) = patch.needs_human {
        next.needs_human = n;
    }
    if let Some(s) = patch.status {
        next.status = s;
        if s != TaskStatus::Wait && current.status == TaskStatus::Wait {
            next.blocking_reason = None;
        }
    }
    if let Some(r) = &patch.blocking_reason {
        match r {
            Some(r) => match text::multi_line("blocking_reason", r, 1, 2_000) {
                Ok(v) => next.blocking_reason = Some(v),
                Err(m) => errors.push(FieldError::new("blocking_reason", m)),
            },
            None => next.blocking_reason = None,
        }
    }
    if next.status == TaskStatus::Wait && next.blocking_reason.is_none() && errors.is_empty() {
        errors.push(FieldError::new(
            "blocking_reason",
            "a waiting task needs a blocking reason",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let moving_on = matches!(next.status, TaskStatus::Progress | TaskStatus::Done)
        && next.status != current.status;
    if moving_on && !blocked_by.is_empty() {
        let ids: Vec<String> = blocked_by.iter().map(|u| u.to_string()).collect();
        return Err(ApiError::InvalidTransition(format!(
            "task is blocked by escalated decision(s) awaiting approval: {}",
            ids.join(", ")
        )));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::auth::Subject;

    fn todo() -> TaskState {
        TaskState {
            title: "t".into(),
            description: String::new(),
            status: TaskStatus::Todo,
            needs_human: false,
            blocking_reason: None,
            assignee: None,
        }
    }

    #[test]
    fn wait_needs_a_reason_and_leaving_wait_clears_it() {
        let p = TaskPatch {
            status: Some(TaskStatus::Wait),
            ..Default::default()
        };
        assert!(matches!(
            apply_patch(&todo(), &p, &[]),
            Err(ApiError::Validation(_))
        ));
        let p = TaskPatch {
            status: Some(TaskStatus::Wait),
            blocking_reason: Some(Some("vendor".into())),
            ..Default::default()
        };
        let waiting = apply_patch(&todo(), &p, &[]).unwrap();
        assert_eq!(waiting.blocking_reason.as_deref(), Some("vendor"));
        let p = TaskPatch {
            status: Some(TaskStatus::Todo),
            ..Default::default()
        };
        assert_eq!(
            apply_patch(&waiting, &p, &[]).unwrap().blocking_reason,
            None
        );
    }

    #[test]
    fn escalated_decisions_block_progress() {
        let d = uuid::Uuid::now_v7();
        let p = TaskPatch {
            status: Some(TaskStatus::Progress),
            ..Default::default()
        };
        assert!(matches!(
            apply_patch(&todo(), &p, &[d]),
            Err(ApiError::InvalidTransition(_))
        ));
        let p = TaskPatch {
            assignee: Some(Some(Subject::parse("bob").unwrap())),
            ..Default::default()
        };
        assert_eq!(
            apply_patch(&todo(), &p, &[d]).unwrap().assignee.as_deref(),
            Some("bob")
        );
    }

    #[test]
    fn slugs() {
        assert!(slug("platform-2").is_ok());
        assert!(slug("2fast").is_err());
        assert!(slug("Platform").is_err());
    }
}
