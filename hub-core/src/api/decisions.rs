//! Decisions: proposals, escalations, outcomes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Whether the outcome is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecisionType {
    /// Awaiting an outcome.
    Pending,
    /// Outcome recorded.
    Made,
}

/// Lifecycle: `open → escalated → resolved`, or `superseded` by a newer decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecisionStatus {
    /// Proposed.
    Open,
    /// Needs a human approval by someone other than the proposer.
    Escalated,
    /// Outcome recorded.
    Resolved,
    /// Replaced by a newer decision.
    Superseded,
}

impl DecisionStatus {
    /// Database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Escalated => "escalated",
            Self::Resolved => "resolved",
            Self::Superseded => "superseded",
        }
    }
    /// Parses the database name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "escalated" => Some(Self::Escalated),
            "resolved" => Some(Self::Resolved),
            "superseded" => Some(Self::Superseded),
            _ => None,
        }
    }
}

/// The outcome as a client states it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeInput {
    /// The option chosen (one of `options` when options were given).
    pub choice: String,
    /// Why.
    pub rationale: String,
}

/// A new decision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDecision {
    /// One line, 1–200 characters.
    pub title: String,
    /// Background, up to 20 000 characters.
    #[serde(default)]
    pub context: String,
    /// The options considered (0–20, each 1–200 characters, distinct).
    #[serde(default)]
    pub options: Vec<String>,
    /// Set to record a decision already made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OutcomeInput>,
    /// Tasks this decision concerns; while it is escalated they are blocked.
    #[serde(default)]
    pub task_ids: Vec<Uuid>,
}

/// Escalating asks for a human approval.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateRequest {
    /// Why it needs approval.
    pub reason: String,
}

/// Superseding records a replacement decision and retires this one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupersedeRequest {
    /// Why the old decision no longer holds.
    pub reason: String,
    /// The replacement.
    pub replacement: NewDecision,
}

/// Links a task to a decision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkTaskRequest {
    /// The task.
    pub task_id: Uuid,
}

/// A recorded outcome; immutable.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Outcome {
    /// The option chosen.
    pub choice: String,
    /// Why.
    pub rationale: String,
    /// Who decided (the approver, for an escalated decision).
    pub decided_by: String,
    /// When.
    pub decided_at: chrono::DateTime<chrono::Utc>,
}

/// A decision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Decision {
    /// Id (UUIDv7, time-ordered).
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Background.
    pub context: String,
    /// Options considered.
    pub options: Vec<String>,
    /// `pending` until an outcome is recorded.
    pub decision_type: DecisionType,
    /// Lifecycle state.
    pub status: DecisionStatus,
    /// Proposer.
    pub proposed_by: String,
    /// When proposed.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Who escalated it.
    pub escalated_by: Option<String>,
    /// When.
    pub escalated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why.
    pub escalation_reason: Option<String>,
    /// The outcome, once made.
    pub outcome: Option<Outcome>,
    /// The decision that replaced this one.
    pub superseded_by: Option<Uuid>,
    /// The decision this one replaced.
    pub supersedes: Option<Uuid>,
    /// Linked tasks.
    pub task_ids: Vec<Uuid>,
    /// Row version; the `ETag`.
    pub version: i64,
}
