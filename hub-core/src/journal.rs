//! The journal's hash chain, shared by the state hub (which seals events) and `hubctl audit
//! verify` (which checks them from the API alone).
//!
//! `hash = sha256(prev_hash ‖ canonical(event))`, where the genesis `prev_hash` is 32 zero bytes
//! and `canonical` is compact JSON of the fields below in this order, with object keys of
//! `detail` sorted bytewise, and `created_at` in RFC 3339 UTC with microseconds.

use crate::api::events::Event;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// The `prev_hash` of the first event.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// The fields that are hashed, borrowed from wherever the event lives.
pub struct Sealed<'a> {
    /// Position in the journal, gapless from 1.
    pub seq: i64,
    /// Event id.
    pub id: uuid::Uuid,
    /// Server time.
    pub created_at: DateTime<Utc>,
    /// `<noun>.<verb>`.
    pub event_type: &'a str,
    /// One line.
    pub summary: &'a str,
    /// Principal that wrote it.
    pub author: &'a str,
    /// Links.
    pub workstream_id: Option<uuid::Uuid>,
    /// Links.
    pub workplan_id: Option<uuid::Uuid>,
    /// Links.
    pub task_id: Option<uuid::Uuid>,
    /// Links.
    pub decision_id: Option<uuid::Uuid>,
    /// Structured detail.
    pub detail: &'a Value,
}

impl<'a> From<&'a Event> for Sealed<'a> {
    fn from(e: &'a Event) -> Self {
        Sealed {
            seq: e.seq,
            id: e.id,
            created_at: e.created_at,
            event_type: &e.event_type,
            summary: &e.summary,
            author: &e.author,
            workstream_id: e.workstream_id,
            workplan_id: e.workplan_id,
            task_id: e.task_id,
            decision_id: e.decision_id,
            detail: &e.detail,
        }
    }
}

/// Lowercase hex of a hash; a table lookup, since listings encode two hashes per event.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Truncates a timestamp to what PostgreSQL stores (microseconds), so hashes survive a round trip.
pub fn db_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(t)
}

fn push_str(out: &mut String, s: &str) {
    // serde_json's string escaping is deterministic; writing a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

fn push_opt_uuid(out: &mut String, v: Option<uuid::Uuid>) {
    match v {
        Some(u) => {
            out.push('"');
            let _ = write!(out, "{}", u.hyphenated());
            out.push('"');
        }
        None => out.push_str("null"),
    }
}

/// Canonical JSON of a value: compact, object keys sorted bytewise, whatever serde_json's
/// feature flags say about map order.
pub fn canonical_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => push_str(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_value(out, x);
            }
            out.push(']');
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str(out, k);
                out.push(':');
                if let Some(x) = o.get(k) {
                    canonical_value(out, x);
                }
            }
            out.push('}');
        }
    }
}

/// The part of the canonical text after `created_at`: everything a client sends plus the author.
/// Hubs compute it where the request is handled, in parallel, so the single writer only adds the
/// short prefix and hashes.
pub fn canonical_tail(e: &Sealed<'_>) -> String {
    let mut out = String::with_capacity(192);
    out.push_str(",\"event_type\":");
    push_str(&mut out, e.event_type);
    out.push_str(",\"summary\":");
    push_str(&mut out, e.summary);
    out.push_str(",\"author\":");
    push_str(&mut out, e.author);
    out.push_str(",\"workstream_id\":");
    push_opt_uuid(&mut out, e.workstream_id);
    out.push_str(",\"workplan_id\":");
    push_opt_uuid(&mut out, e.workplan_id);
    out.push_str(",\"task_id\":");
    push_opt_uuid(&mut out, e.task_id);
    out.push_str(",\"decision_id\":");
    push_opt_uuid(&mut out, e.decision_id);
    out.push_str(",\"detail\":");
    canonical_value(&mut out, e.detail);
    out.push('}');
    out
}

fn canonical_prefix(seq: i64, id: uuid::Uuid, created_at: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(96);
    let _ = write!(
        out,
        "{{\"seq\":{seq},\"id\":\"{}\",\"created_at\":",
        id.hyphenated()
    );
    push_str(
        &mut out,
        &created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    );
    out
}

/// The canonical text of an event.
pub fn canonical(e: &Sealed<'_>) -> String {
    canonical_prefix(e.seq, e.id, e.created_at) + &canonical_tail(e)
}

/// `sha256(prev ‖ canonical(e))`.
pub fn link(prev: &[u8; 32], e: &Sealed<'_>) -> [u8; 32] {
    link_tail(prev, e.seq, e.id, e.created_at, &canonical_tail(e))
}

/// [`link`] from a precomputed [`canonical_tail`].
pub fn link_tail(
    prev: &[u8; 32],
    seq: i64,
    id: uuid::Uuid,
    created_at: DateTime<Utc>,
    tail: &str,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical_prefix(seq, id, created_at).as_bytes());
    h.update(tail.as_bytes());
    h.finalize().into()
}

/// Why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokenLink {
    #[error("event {seq}: sequence gap, expected {expected}")]
    Gap { seq: i64, expected: i64 },
    #[error("event {seq}: prev_hash does not match the hash of event {}", seq - 1)]
    PrevMismatch { seq: i64 },
    #[error("event {seq}: content does not match its hash (rewritten or corrupted)")]
    HashMismatch { seq: i64 },
    #[error("event {seq}: malformed hash field")]
    Malformed { seq: i64 },
}

/// Walks events in ascending order and reports the first broken link.
pub struct Verifier {
    next_seq: i64,
    prev: [u8; 32],
    checked: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    /// Starts at the genesis.
    pub fn new() -> Self {
        Self {
            next_seq: 1,
            prev: GENESIS,
            checked: 0,
        }
    }

    /// Checks the next event.
    pub fn push(&mut self, e: &Event) -> Result<(), BrokenLink> {
        if e.seq != self.next_seq {
            return Err(BrokenLink::Gap {
                seq: e.seq,
                expected: self.next_seq,
            });
        }
        let decode = |s: &str| -> Result<[u8; 32], BrokenLink> {
            hex::decode(s)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or(BrokenLink::Malformed { seq: e.seq })
        };
        let prev = decode(&e.prev_hash)?;
        let stored = decode(&e.hash)?;
        if prev != self.prev {
            return Err(BrokenLink::PrevMismatch { seq: e.seq });
        }
        if link(&prev, &Sealed::from(e)) != stored {
            return Err(BrokenLink::HashMismatch { seq: e.seq });
        }
        self.prev = stored;
        self.next_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// Events verified so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }
    /// Hash of the last verified event (hex).
    pub fn head(&self) -> String {
        hex::encode(self.prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(seq: i64, prev: [u8; 32], detail: Value) -> Event {
        let mut e = Event {
            seq,
            id: uuid::Uuid::now_v7(),
            created_at: db_precision(Utc::now()),
            event_type: "note.added".into(),
            summary: "hello \"world\"".into(),
            author: "alice".into(),
            workstream_id: None,
            workplan_id: None,
            task_id: None,
            decision_id: None,
            detail,
            prev_hash: hex::encode(prev),
            hash: String::new(),
        };
        e.hash = hex::encode(link(&prev, &Sealed::from(&e)));
        e
    }

    #[test]
    fn hex_matches_the_hex_crate() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(to_hex(&bytes), hex::encode(&bytes));
    }

    #[test]
    fn canonical_sorts_keys_and_is_stable() {
        let a = json!({"b": 1, "a": {"z": [1, 2.5, "x"], "y": null}});
        let mut s = String::new();
        canonical_value(&mut s, &a);
        assert_eq!(s, r#"{"a":{"y":null,"z":[1,2.5,"x"]},"b":1}"#);
    }

    #[test]
    fn chain_verifies_and_detects_rewrites() {
        let e1 = event(1, GENESIS, json!({"k": "v"}));
        let h1: [u8; 32] = hex::decode(&e1.hash).unwrap().try_into().unwrap();
        let e2 = event(2, h1, json!({}));
        let mut v = Verifier::new();
        v.push(&e1).unwrap();
        v.push(&e2).unwrap();
        assert_eq!(v.checked(), 2);

        let mut tampered = e1.clone();
        tampered.summary = "rewritten".into();
        assert_eq!(
            Verifier::new().push(&tampered),
            Err(BrokenLink::HashMismatch { seq: 1 })
        );
        let mut v = Verifier::new();
        v.push(&e1).unwrap();
        let e3 = event(3, h1, json!({}));
        assert_eq!(
            v.push(&e3),
            Err(BrokenLink::Gap {
                seq: 3,
                expected: 2
            })
        );
    }

    #[test]
    fn detail_round_trip_through_json_text_keeps_the_hash() {
        let detail = json!({"n": 1e300, "f": 0.1, "neg": -3, "s": "é\u{1F600}", "big": 18446744073709551615u64});
        let e = event(1, GENESIS, detail);
        let text = serde_json::to_string(&e).unwrap();
        let back: Event = serde_json::from_str(&text).unwrap();
        Verifier::new().push(&back).unwrap();
    }
}
