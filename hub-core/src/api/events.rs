//! Progress events: the journal's wire types.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// `<noun>.<verb>`: two segments of lowercase letters, digits and `_`, each starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "deploy.started", pattern = "^[a-z][a-z0-9_]{0,62}\\.[a-z][a-z0-9_]{0,62}$")]
pub struct EventType(String);

impl EventType {
    /// Validates an event type.
    pub fn parse(s: &str) -> Result<EventType, String> {
        let seg_ok = |p: &str| {
            (1..=63).contains(&p.len())
                && p.as_bytes()[0].is_ascii_lowercase()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        match s.split_once('.') {
            Some((noun, verb)) if seg_ok(noun) && seg_ok(verb) => Ok(EventType(s.to_owned())),
            _ => Err(format!(
                "event_type `{}` must be `<noun>.<verb>` in lowercase, e.g. `deploy.started`",
                s.chars().take(80).collect::<String>()
            )),
        }
    }
    /// The type string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The noun part.
    pub fn noun(&self) -> &str {
        self.0.split_once('.').map_or("", |(n, _)| n)
    }
}

impl TryFrom<String> for EventType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        EventType::parse(&s)
    }
}
impl From<EventType> for String {
    fn from(e: EventType) -> String {
        e.0
    }
}
impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new event as a client sends it. The server sets author, time, sequence and hashes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// `<noun>.<verb>`.
    pub event_type: EventType,
    /// One line, 1–500 characters.
    pub summary: String,
    /// Structured detail: a JSON object, at most 64 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
    /// Related workstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workstream_id: Option<Uuid>,
    /// Related workplan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workplan_id: Option<Uuid>,
    /// Related task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Uuid>,
    /// Related decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<Uuid>,
}

/// Several events appended all-or-nothing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEventBatch {
    /// 1–1000 events, appended in this order.
    pub events: Vec<NewEvent>,
}

/// A journal entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Event {
    /// Position in the journal: gapless, starting at 1. Also the SSE event id.
    pub seq: i64,
    /// Stable id.
    pub id: Uuid,
    /// Server time of the append.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// `<noun>.<verb>`.
    pub event_type: String,
    /// One line.
    pub summary: String,
    /// Principal that wrote it.
    pub author: String,
    /// Related workstream.
    pub workstream_id: Option<Uuid>,
    /// Related workplan.
    pub workplan_id: Option<Uuid>,
    /// Related task.
    pub task_id: Option<Uuid>,
    /// Related decision.
    pub decision_id: Option<Uuid>,
    /// Structured detail.
    #[schema(value_type = Object)]
    pub detail: Value,
    /// Hash of the previous event (hex); 64 zeros for the first.
    pub prev_hash: String,
    /// `sha256(prev_hash ‖ canonical event)` (hex).
    pub hash: String,
}

/// The events a batch appended.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventBatchResult {
    /// In request order.
    pub events: Vec<Event>,
}

/// The newest link of the chain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChainHead {
    /// Sequence of the newest event (0 when empty).
    pub seq: i64,
    /// Its hash (hex), 64 zeros when empty.
    pub hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types() {
        assert!(EventType::parse("deploy.started").is_ok());
        assert!(EventType::parse("task_2.moved_on").is_ok());
        assert!(EventType::parse("deploy").is_err());
        assert!(EventType::parse("Deploy.started").is_err());
        assert!(EventType::parse("a.b.c").is_err());
        assert!(EventType::parse("1a.b").is_err());
        assert_eq!(EventType::parse("x.y").unwrap().noun(), "x");
        let err = serde_json::from_str::<NewEvent>(r#"{"event_type":"bad","summary":"s"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("<noun>.<verb>"), "{err}");
        let err =
            serde_json::from_str::<NewEvent>(r#"{"event_type":"a.b","summary":"s","oops":1}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("unknown field `oops`"), "{err}");
    }
}
