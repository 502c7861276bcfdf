//! Events before they are sealed into the chain.

use hub_core::api::events::{EventType, NewEvent};
use hub_core::http::problem::{ApiError, FieldError};
use hub_core::text;
use serde_json::Value;
use uuid::Uuid;

/// Largest serialized `detail`.
pub const MAX_DETAIL_BYTES: usize = 64 * 1024;
/// Most events in one batch request.
pub const MAX_BATCH: usize = 1000;

/// A validated event awaiting its place in the chain.
#[derive(Debug, Clone)]
pub struct Draft {
    /// `<noun>.<verb>`.
    pub event_type: EventType,
    /// One line.
    pub summary: String,
    /// JSON object.
    pub detail: Value,
    /// Links.
    pub workstream_id: Option<Uuid>,
    /// Links.
    pub workplan_id: Option<Uuid>,
    /// Links.
    pub task_id: Option<Uuid>,
    /// Links.
    pub decision_id: Option<Uuid>,
    /// The canonical tail for this author, computed off the writer (see [`Draft::prepare`]).
    pub tail: Option<(String, String)>,
}

/// Normalizes what PostgreSQL's `jsonb` would change, so the hash sealed at write time matches the
/// value read back: `jsonb` numbers have no negative zero.
fn as_stored(v: Value) -> Value {
    match v {
        Value::Number(n) if n.as_f64() == Some(0.0) && n.is_f64() => Value::from(0.0),
        Value::Array(a) => Value::Array(a.into_iter().map(as_stored).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, x)| (k, as_stored(x))).collect()),
        other => other,
    }
}

impl Draft {
    /// An event the hub itself writes about a change it made.
    pub fn system(
        event_type: &str,
        summary: impl Into<String>,
        detail: Value,
    ) -> Result<Draft, ApiError> {
        let event_type =
            EventType::parse(event_type).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
        let summary: String = summary.into();
        Ok(Draft {
            event_type,
            summary: summary.chars().take(500).collect(),
            detail,
            workstream_id: None,
            workplan_id: None,
            task_id: None,
            decision_id: None,
            tail: None,
        })
    }

    /// Links the event to a workstream.
    pub fn workstream(mut self, id: Uuid) -> Self {
        self.workstream_id = Some(id);
        self
    }
    /// Links the event to a workplan.
    pub fn workplan(mut self, id: Uuid) -> Self {
        self.workplan_id = Some(id);
        self
    }
    /// Links the event to a task.
    pub fn task(mut self, id: Uuid) -> Self {
        self.task_id = Some(id);
        self
    }
    /// Links the event to a decision.
    pub fn decision(mut self, id: Uuid) -> Self {
        self.decision_id = Some(id);
        self
    }

    /// Validates a client's event; `prefix` names its position in a batch for error paths.
    pub fn from_request(e: NewEvent, prefix: &str, errors: &mut Vec<FieldError>) -> Option<Draft> {
        let start = errors.len();
        let summary = text::single_line("summary", &e.summary, 1, 500)
            .map_err(|m| errors.push(FieldError::new(format!("{prefix}summary"), m)))
            .ok();
        let detail = match e.detail {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v,
            Some(_) => {
                errors.push(FieldError::new(
                    format!("{prefix}detail"),
                    "must be a JSON object",
                ));
                Value::Null
            }
        };
        if detail.is_object() {
            if let Err(m) = text::json_storable("detail", &detail) {
                errors.push(FieldError::new(format!("{prefix}detail"), m));
            } else if serde_json::to_vec(&detail).map_or(0, |v| v.len()) > MAX_DETAIL_BYTES {
                errors.push(FieldError::new(
                    format!("{prefix}detail"),
                    format!("must serialize to at most {MAX_DETAIL_BYTES} bytes"),
                ));
            }
        }
        if errors.len() > start {
            return None;
        }
        Some(Draft {
            event_type: e.event_type,
            summary: summary?,
            detail: as_stored(detail),
            workstream_id: e.workstream_id,
            workplan_id: e.workplan_id,
            task_id: e.task_id,
            decision_id: e.decision_id,
            tail: None,
        })
    }

    /// Computes the canonical tail for `author` now, on the calling thread, so the journal
    /// writer (which every write goes through) only hashes.
    pub fn prepare(&mut self, author: &str) {
        let tail = hub_core::journal::canonical_tail(&self.sealed_view(author));
        self.tail = Some((author.to_owned(), tail));
    }

    /// The canonical tail for `author`, from [`prepare`](Self::prepare) when it matches.
    pub fn tail_for(&self, author: &str) -> String {
        match &self.tail {
            Some((a, t)) if a == author => t.clone(),
            _ => hub_core::journal::canonical_tail(&self.sealed_view(author)),
        }
    }

    fn sealed_view<'a>(&'a self, author: &'a str) -> hub_core::journal::Sealed<'a> {
        hub_core::journal::Sealed {
            seq: 0,
            id: Uuid::nil(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            event_type: self.event_type.as_str(),
            summary: &self.summary,
            author,
            workstream_id: self.workstream_id,
            workplan_id: self.workplan_id,
            task_id: self.task_id,
            decision_id: self.decision_id,
            detail: &self.detail,
        }
    }
}
