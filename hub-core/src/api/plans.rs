//! Workstreams, workplans and tasks.

use crate::auth::Subject;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A new workstream.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkstream {
    /// Short unique name: lowercase letters, digits, `-`, 1–64 characters.
    pub slug: String,
    /// One line.
    pub title: String,
    /// Longer text.
    #[serde(default)]
    pub description: String,
}

/// A long-running line of work.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Workstream {
    /// Id.
    pub id: Uuid,
    /// Unique short name.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Creator.
    pub created_by: String,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Row version.
    pub version: i64,
}

/// `active → finished → accepted`; a finished plan may be reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkplanStatus {
    /// In progress.
    Active,
    /// Work done, awaiting review.
    Finished,
    /// Reviewed and accepted by someone else.
    Accepted,
}

impl WorkplanStatus {
    /// Database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Finished => "finished",
            Self::Accepted => "accepted",
        }
    }
    /// Parses the database name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "finished" => Some(Self::Finished),
            "accepted" => Some(Self::Accepted),
            _ => None,
        }
    }
}

/// A new workplan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkplan {
    /// One line.
    pub title: String,
    /// Longer text.
    #[serde(default)]
    pub description: String,
}

/// Accepting a finished plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    /// Review comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Sending a finished plan back to work.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReopenRequest {
    /// What is missing.
    pub reason: String,
}

/// A plan within a workstream.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Workplan {
    /// Id.
    pub id: Uuid,
    /// Parent workstream.
    pub workstream_id: Uuid,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Lifecycle state.
    pub status: WorkplanStatus,
    /// Creator.
    pub created_by: String,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Who marked it finished.
    pub finished_by: Option<String>,
    /// When.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Reviewer who accepted it.
    pub accepted_by: Option<String>,
    /// When.
    pub accepted_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Last review comment or reopen reason.
    pub review_comment: Option<String>,
    /// Row version.
    pub version: i64,
}

/// Task status. Aliases accepted on input: `blocked` (wait), `in_progress` (progress),
/// `cancelled`/`canceled` (cancel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting on something; has a blocking reason.
    #[serde(alias = "blocked")]
    Wait,
    /// Ready to start.
    Todo,
    /// Being worked on.
    #[serde(alias = "in_progress", alias = "in-progress")]
    Progress,
    /// Finished.
    Done,
    /// Dropped.
    #[serde(alias = "cancelled", alias = "canceled")]
    Cancel,
}

impl TaskStatus {
    /// Database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::Todo => "todo",
            Self::Progress => "progress",
            Self::Done => "done",
            Self::Cancel => "cancel",
        }
    }
    /// Parses a name or alias.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "wait" | "blocked" => Some(Self::Wait),
            "todo" => Some(Self::Todo),
            "progress" | "in_progress" | "in-progress" => Some(Self::Progress),
            "done" => Some(Self::Done),
            "cancel" | "cancelled" | "canceled" => Some(Self::Cancel),
            _ => None,
        }
    }
    /// Done or cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::Cancel)
    }
}

/// A new task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// One line.
    pub title: String,
    /// Longer text.
    #[serde(default)]
    pub description: String,
    /// Initial status (default `todo`).
    #[serde(default)]
    pub status: Option<TaskStatus>,
    /// Directory user responsible.
    #[serde(default)]
    pub assignee: Option<Subject>,
    /// A person must act (not automation).
    #[serde(default)]
    pub needs_human: bool,
    /// Required when status is `wait`.
    #[serde(default)]
    pub blocking_reason: Option<String>,
}

/// A partial update of a task; `null` clears `assignee` or `blocking_reason`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
    /// New assignee, or `null` to unassign.
    #[serde(
        default,
        deserialize_with = "super::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub assignee: Option<Option<Subject>>,
    /// New needs-human flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_human: Option<bool>,
    /// New blocking reason, or `null` to clear.
    #[serde(
        default,
        deserialize_with = "super::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub blocking_reason: Option<Option<String>>,
}

/// A task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Task {
    /// Id.
    pub id: Uuid,
    /// Parent workplan.
    pub workplan_id: Uuid,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Status.
    pub status: TaskStatus,
    /// A person must act.
    pub needs_human: bool,
    /// Why it waits.
    pub blocking_reason: Option<String>,
    /// Responsible user.
    pub assignee: Option<String>,
    /// Open escalated decisions that block this task.
    pub blocked_by: Vec<Uuid>,
    /// Creator.
    pub created_by: String,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Row version.
    pub version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_aliases() {
        let s: TaskStatus = serde_json::from_str("\"in_progress\"").unwrap();
        assert_eq!(s, TaskStatus::Progress);
        let s: TaskStatus = serde_json::from_str("\"blocked\"").unwrap();
        assert_eq!(s, TaskStatus::Wait);
        let s: TaskStatus = serde_json::from_str("\"cancelled\"").unwrap();
        assert_eq!(s, TaskStatus::Cancel);
        assert_eq!(
            serde_json::to_string(&TaskStatus::Progress).unwrap(),
            "\"progress\""
        );
        assert!(serde_json::from_str::<TaskStatus>("\"doing\"").is_err());
    }

    #[test]
    fn patch_distinguishes_null_from_absent() {
        let p: TaskPatch = serde_json::from_str(r#"{"assignee": null}"#).unwrap();
        assert_eq!(p.assignee, Some(None));
        let p: TaskPatch = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(p.assignee, None);
        let p: TaskPatch = serde_json::from_str(r#"{"assignee": "bob"}"#).unwrap();
        assert_eq!(p.assignee.unwrap().unwrap().as_str(), "bob");
    }
}
