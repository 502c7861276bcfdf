//! The export document: a versioned JSON file holding a state hub's workstreams, workplans,
//! tasks, decisions (with their task links) and journal. `state-hub export` writes it and
//! `state-hub import` reads it; docs/operations/migrate-state-hub.md describes it for people.
//!
//! The record types mirror the tables rather than the API's wire types: the API computes fields
//! (a task's `blocked_by`) and leaves out others (who linked a task to a decision, and when) that
//! an import needs to reproduce the database.

use chrono::{DateTime, Utc};
use hub_core::api::decisions::{DecisionStatus, DecisionType};
use hub_core::api::plans::{TaskStatus, WorkplanStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The `format` every export names.
pub const FORMAT: &str = "hubplane.state-hub.export";
/// The `format_version` this state hub writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The `source.system` of exports this state hub writes.
pub const SYSTEM: &str = "hubplane-state-hub";

/// A whole export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`FORMAT_VERSION`] for this state hub.
    pub format_version: u32,
    /// When the snapshot was taken.
    pub exported_at: DateTime<Utc>,
    /// Where the data comes from.
    #[serde(default)]
    pub source: Option<Source>,
    /// Workstreams.
    #[serde(default)]
    pub workstreams: Vec<WorkstreamRecord>,
    /// Workplans.
    #[serde(default)]
    pub workplans: Vec<WorkplanRecord>,
    /// Tasks.
    #[serde(default)]
    pub tasks: Vec<TaskRecord>,
    /// Decisions, each with its task links.
    #[serde(default)]
    pub decisions: Vec<DecisionRecord>,
    /// The journal, oldest first.
    #[serde(default)]
    pub events: Vec<EventRecord>,
}

/// The system an export was taken from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// What wrote the export, e.g. [`SYSTEM`].
    pub system: String,
    /// Its version.
    #[serde(default)]
    pub version: Option<String>,
    /// The database it was read from.
    #[serde(default)]
    pub database: Option<String>,
    /// The newest event of the source journal when the snapshot was taken.
    #[serde(default)]
    pub chain_head: Option<ChainHeadRecord>,
}

/// A link of the source chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainHeadRecord {
    /// Sequence number.
    pub seq: i64,
    /// Hash (hex).
    pub hash: String,
}

/// A row of `workstreams`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkstreamRecord {
    /// Id.
    pub id: Uuid,
    /// Unique short name.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Creator.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Row version (the ETag), kept so clients' cached tags stay meaningful.
    #[serde(default = "first_version")]
    pub version: i64,
}

/// A row of `workplans`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkplanRecord {
    /// Id.
    pub id: Uuid,
    /// Parent workstream.
    pub workstream_id: Uuid,
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Lifecycle state.
    pub status: WorkplanStatus,
    /// Creator.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Who finished it.
    #[serde(default)]
    pub finished_by: Option<String>,
    /// When.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Who accepted it.
    #[serde(default)]
    pub accepted_by: Option<String>,
    /// When.
    #[serde(default)]
    pub accepted_at: Option<DateTime<Utc>>,
    /// Last review comment or reopen reason.
    #[serde(default)]
    pub review_comment: Option<String>,
    /// Row version.
    #[serde(default = "first_version")]
    pub version: i64,
}

/// A row of `tasks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRecord {
    /// Id.
    pub id: Uuid,
    /// Parent workplan.
    pub workplan_id: Uuid,
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Status (the API's aliases are accepted).
    pub status: TaskStatus,
    /// A person must act.
    #[serde(default)]
    pub needs_human: bool,
    /// Why it waits.
    #[serde(default)]
    pub blocking_reason: Option<String>,
    /// Responsible user.
    #[serde(default)]
    pub assignee: Option<String>,
    /// Creator.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Row version.
    #[serde(default = "first_version")]
    pub version: i64,
}

/// A row of `decisions`, with its rows of `decision_tasks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRecord {
    /// Id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Background.
    #[serde(default)]
    pub context: String,
    /// Options considered.
    #[serde(default)]
    pub options: Vec<String>,
    /// `pending` until an outcome is recorded.
    pub decision_type: DecisionType,
    /// Lifecycle state.
    pub status: DecisionStatus,
    /// Proposer.
    pub proposed_by: String,
    /// When proposed.
    pub created_at: DateTime<Utc>,
    /// Who escalated it.
    #[serde(default)]
    pub escalated_by: Option<String>,
    /// When.
    #[serde(default)]
    pub escalated_at: Option<DateTime<Utc>>,
    /// Why.
    #[serde(default)]
    pub escalation_reason: Option<String>,
    /// The outcome, once made.
    #[serde(default)]
    pub outcome: Option<OutcomeRecord>,
    /// The decision that replaced this one.
    #[serde(default)]
    pub superseded_by: Option<Uuid>,
    /// The decision this one replaced.
    #[serde(default)]
    pub supersedes: Option<Uuid>,
    /// Linked tasks.
    #[serde(default)]
    pub task_links: Vec<TaskLinkRecord>,
    /// Row version.
    #[serde(default = "first_version")]
    pub version: i64,
}

/// A decision's recorded outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRecord {
    /// The option chosen.
    pub choice: String,
    /// Why.
    #[serde(default)]
    pub rationale: String,
    /// Who decided.
    pub decided_by: String,
    /// When.
    pub decided_at: DateTime<Utc>,
}

/// A task linked to a decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskLinkRecord {
    /// The task.
    pub task_id: Uuid,
    /// Who linked it.
    pub linked_by: String,
    /// When.
    pub linked_at: DateTime<Utc>,
}

/// A journal entry as the source stored it. `seq`, `prev_hash` and `hash` are the source's and
/// optional: an import renumbers the events in document order and seals them into a new chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    /// Position in the source journal.
    #[serde(default)]
    pub seq: Option<i64>,
    /// Id (kept).
    pub id: Uuid,
    /// When it was written (kept).
    pub created_at: DateTime<Utc>,
    /// `<noun>.<verb>`.
    pub event_type: String,
    /// One line.
    pub summary: String,
    /// Principal that wrote it.
    pub author: String,
    /// Related workstream.
    #[serde(default)]
    pub workstream_id: Option<Uuid>,
    /// Related workplan.
    #[serde(default)]
    pub workplan_id: Option<Uuid>,
    /// Related task.
    #[serde(default)]
    pub task_id: Option<Uuid>,
    /// Related decision.
    #[serde(default)]
    pub decision_id: Option<Uuid>,
    /// Structured detail (a JSON object).
    #[serde(default = "empty_object")]
    pub detail: Value,
    /// The source's hash of the previous event (hex).
    #[serde(default)]
    pub prev_hash: Option<String>,
    /// The source's hash of this event (hex).
    #[serde(default)]
    pub hash: Option<String>,
}

fn first_version() -> i64 {
    1
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// How many records of each kind a document (or a database) holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Workstreams.
    pub workstreams: u64,
    /// Workplans.
    pub workplans: u64,
    /// Tasks.
    pub tasks: u64,
    /// Decisions.
    pub decisions: u64,
    /// Decision–task links.
    pub task_links: u64,
    /// Events.
    pub events: u64,
}

impl Document {
    /// The counts of this document's records.
    pub fn counts(&self) -> Counts {
        Counts {
            workstreams: self.workstreams.len() as u64,
            workplans: self.workplans.len() as u64,
            tasks: self.tasks.len() as u64,
            decisions: self.decisions.len() as u64,
            task_links: self
                .decisions
                .iter()
                .map(|d| d.task_links.len() as u64)
                .sum(),
            events: self.events.len() as u64,
        }
    }

    /// The source's chain head: as the source stated it, else its last event's hash.
    pub fn source_head(&self) -> Option<ChainHeadRecord> {
        if let Some(head) = self.source.as_ref().and_then(|s| s.chain_head.clone()) {
            return Some(head);
        }
        let last = self.events.last()?;
        Some(ChainHeadRecord {
            seq: last.seq?,
            hash: last.hash.clone()?,
        })
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} workstream(s), {} workplan(s), {} task(s), {} decision(s) with {} task link(s), {} event(s)",
            self.workstreams,
            self.workplans,
            self.tasks,
            self.decisions,
            self.task_links,
            self.events
        )
    }
}
