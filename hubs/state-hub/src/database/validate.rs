//! Reading and checking an export before anything is written. Every record is checked and every
//! problem is reported with its JSON path (`decisions[2].task_links[0].task_id`), so one run
//! tells the operator everything to fix; the rules mirror the API's and the tables' constraints,
//! so an export that passes here is one the database accepts.

use super::document::{
    DecisionRecord, Document, EventRecord, Source, TaskRecord, WorkplanRecord, WorkstreamRecord,
    FORMAT, FORMAT_VERSION,
};
use crate::plans::rules;
use chrono::{DateTime, Utc};
use hub_core::api::decisions::{DecisionStatus, DecisionType};
use hub_core::api::events::EventType;
use hub_core::api::plans::{TaskStatus, WorkplanStatus};
use hub_core::text;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// One thing wrong with an export, at its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Where, e.g. `events[3].event_type` (`$` for the document itself).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Largest summary the journal holds (what the hub writes, see `Draft`).
const MAX_SUMMARY: usize = 500;
/// Longest principal name: a subject, with room for other systems' user names.
const MAX_PRINCIPAL: usize = 200;

const HEADER: &[&str] = &["format", "format_version", "exported_at", "source"];
const LISTS: &[&str] = &["workstreams", "workplans", "tasks", "decisions", "events"];

/// Records of one list with their index in the document, for paths.
type Indexed<T> = Vec<(usize, T)>;

#[derive(Default)]
struct Lists {
    workstreams: Indexed<WorkstreamRecord>,
    workplans: Indexed<WorkplanRecord>,
    tasks: Indexed<TaskRecord>,
    decisions: Indexed<DecisionRecord>,
    events: Indexed<EventRecord>,
    /// Ids of records that did not parse: references to them are not reported a second time.
    unparsed: HashMap<&'static str, Vec<Uuid>>,
}

/// Parses and checks an export; returns the document only when nothing is wrong.
pub fn parse(text: &str) -> Result<Document, Vec<Problem>> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| vec![Problem::new("$", format!("not valid JSON: {e}"))])?;
    let Value::Object(mut map) = value else {
        return Err(vec![Problem::new("$", "must be a JSON object")]);
    };
    let mut p = Vec::new();
    for key in map.keys() {
        if !HEADER.contains(&key.as_str()) && !LISTS.contains(&key.as_str()) {
            p.push(Problem::new(
                key.clone(),
                format!(
                    "unknown field; an export has {}",
                    [HEADER, LISTS].concat().join(", ")
                ),
            ));
        }
    }
    let format: Option<String> = field(&mut map, "format", true, &mut p);
    if let Some(f) = format.as_deref().filter(|f| *f != FORMAT) {
        p.push(Problem::new(
            "format",
            format!("must be \"{FORMAT}\", not \"{f}\""),
        ));
    }
    let format_version: Option<u32> = field(&mut map, "format_version", true, &mut p);
    if let Some(v) = format_version.filter(|v| *v != FORMAT_VERSION) {
        p.push(Problem::new(
            "format_version",
            format!("version {v} is not supported; this state hub reads version {FORMAT_VERSION}"),
        ));
    }
    let exported_at: Option<DateTime<Utc>> = field(&mut map, "exported_at", true, &mut p);
    let source: Option<Source> = field(&mut map, "source", false, &mut p);
    if let Some(h) = source.as_ref().and_then(|s| s.chain_head.as_ref()) {
        check_hash("source.chain_head.hash", &h.hash, &mut p);
    }
    let mut lists = Lists::default();
    lists.workstreams = list(&mut map, "workstreams", &mut lists.unparsed, &mut p);
    lists.workplans = list(&mut map, "workplans", &mut lists.unparsed, &mut p);
    lists.tasks = list(&mut map, "tasks", &mut lists.unparsed, &mut p);
    lists.decisions = list(&mut map, "decisions", &mut lists.unparsed, &mut p);
    lists.events = list(&mut map, "events", &mut lists.unparsed, &mut p);
    check(&lists, &mut p);
    match (format, format_version, exported_at) {
        (Some(format), Some(format_version), Some(exported_at)) if p.is_empty() => Ok(Document {
            format,
            format_version,
            exported_at,
            source,
            workstreams: strip(lists.workstreams),
            workplans: strip(lists.workplans),
            tasks: strip(lists.tasks),
            decisions: strip(lists.decisions),
            events: strip(lists.events),
        }),
        _ => Err(p),
    }
}

fn strip<T>(v: Indexed<T>) -> Vec<T> {
    v.into_iter().map(|(_, r)| r).collect()
}

/// `prefix` followed by a path inside it, as serde_path_to_error prints it (`.` for the root).
fn join(prefix: &str, inner: &str) -> String {
    match inner {
        "." | "" => prefix.to_owned(),
        i if i.starts_with('[') => format!("{prefix}{i}"),
        i => format!("{prefix}.{i}"),
    }
}

fn decode<T: DeserializeOwned>(v: Value, path: &str, p: &mut Vec<Problem>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            p.push(Problem::new(
                join(path, &e.path().to_string()),
                e.inner().to_string(),
            ));
            None
        }
    }
}

fn field<T: DeserializeOwned>(
    map: &mut Map<String, Value>,
    key: &str,
    required: bool,
    p: &mut Vec<Problem>,
) -> Option<T> {
    match map.remove(key) {
        None | Some(Value::Null) => {
            if required {
                p.push(Problem::new(key, "missing"));
            }
            None
        }
        Some(v) => decode(v, key, p),
    }
}

fn list<T: DeserializeOwned>(
    map: &mut Map<String, Value>,
    key: &'static str,
    unparsed: &mut HashMap<&'static str, Vec<Uuid>>,
    p: &mut Vec<Problem>,
) -> Indexed<T> {
    let items = match map.remove(key) {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            p.push(Problem::new(key, "must be an array"));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok());
        match decode(item, &format!("{key}[{i}]"), p) {
            Some(r) => out.push((i, r)),
            None => unparsed.entry(key).or_default().extend(id),
        }
    }
    out
}

/// Ids of one kind with the index that first used each, reporting duplicates.
fn index_ids<T>(
    kind: &'static str,
    records: &Indexed<T>,
    id: impl Fn(&T) -> Uuid,
    unparsed: &HashMap<&'static str, Vec<Uuid>>,
    p: &mut Vec<Problem>,
) -> HashMap<Uuid, usize> {
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    for (i, r) in records {
        let id = id(r);
        if let Some(first) = seen.get(&id) {
            p.push(Problem::new(
                format!("{kind}[{i}].id"),
                format!("duplicate id {id} (also {kind}[{first}])"),
            ));
        } else {
            seen.insert(id, *i);
        }
    }
    // Records that failed to parse still exist for references; their own problem is reported.
    for id in unparsed.get(kind).into_iter().flatten() {
        seen.entry(*id).or_insert(usize::MAX);
    }
    seen
}

struct Checker<'a> {
    p: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    fn push(&mut self, path: String, message: impl Into<String>) {
        self.p.push(Problem::new(path, message));
    }

    /// A rule from `hub_core::text` (which names the field in its message; the path does here).
    fn text(&mut self, path: String, r: Result<String, String>) {
        if let Err(m) = r {
            self.push(path, strip_field_name(&m));
        }
    }

    fn principal(&mut self, path: String, v: &str) {
        let r = text::single_line("value", v, 1, MAX_PRINCIPAL);
        self.text(path, r);
    }

    fn opt_principal(&mut self, path: String, v: Option<&str>) {
        if let Some(v) = v {
            self.principal(path, v);
        }
    }

    fn reference(
        &mut self,
        path: String,
        id: Option<Uuid>,
        known: &HashMap<Uuid, usize>,
        kind: &str,
    ) {
        if let Some(id) = id.filter(|id| !known.contains_key(id)) {
            self.push(path, format!("no {kind} {id} in this export"));
        }
    }

    fn version(&mut self, path: String, v: i64) {
        if v < 1 {
            self.push(path, "must be at least 1");
        }
    }
}

/// `hub_core::text` messages start with the field name they were given; the path replaces it.
fn strip_field_name(m: &str) -> String {
    m.strip_prefix("value ").unwrap_or(m).to_owned()
}

fn check(l: &Lists, p: &mut Vec<Problem>) {
    let workstreams = index_ids("workstreams", &l.workstreams, |r| r.id, &l.unparsed, p);
    let workplans = index_ids("workplans", &l.workplans, |r| r.id, &l.unparsed, p);
    let tasks = index_ids("tasks", &l.tasks, |r| r.id, &l.unparsed, p);
    let decisions = index_ids("decisions", &l.decisions, |r| r.id, &l.unparsed, p);
    index_ids("events", &l.events, |r| r.id, &l.unparsed, p);
    let mut c = Checker { p };

    let mut slugs: HashMap<&str, usize> = HashMap::new();
    for (i, w) in &l.workstreams {
        let at = |f: &str| format!("workstreams[{i}].{f}");
        if let Err(m) = rules::slug(&w.slug) {
            c.push(at("slug"), m);
        } else if let Some(first) = slugs.insert(&w.slug, *i) {
            c.push(
                at("slug"),
                format!("duplicate slug `{}` (also workstreams[{first}])", w.slug),
            );
        }
        c.text(at("title"), text::single_line("value", &w.title, 1, 200));
        c.text(
            at("description"),
            text::multi_line("value", &w.description, 0, 20_000),
        );
        c.principal(at("created_by"), &w.created_by);
        c.version(at("version"), w.version);
    }

    for (i, w) in &l.workplans {
        let at = |f: &str| format!("workplans[{i}].{f}");
        c.reference(
            at("workstream_id"),
            Some(w.workstream_id),
            &workstreams,
            "workstream",
        );
        c.text(at("title"), text::single_line("value", &w.title, 1, 200));
        c.text(
            at("description"),
            text::multi_line("value", &w.description, 0, 20_000),
        );
        c.principal(at("created_by"), &w.created_by);
        c.opt_principal(at("finished_by"), w.finished_by.as_deref());
        c.opt_principal(at("accepted_by"), w.accepted_by.as_deref());
        if let Some(comment) = &w.review_comment {
            c.text(
                at("review_comment"),
                text::multi_line("value", comment, 0, 20_000),
            );
        }
        if w.finished_by.is_some() != w.finished_at.is_some() {
            c.push(at("finished_at"), "finished_by and finished_at go together");
        }
        if w.accepted_by.is_some() != w.accepted_at.is_some() {
            c.push(at("accepted_at"), "accepted_by and accepted_at go together");
        }
        match w.status {
            WorkplanStatus::Finished if w.finished_by.is_none() => c.push(
                at("finished_by"),
                "a finished workplan names who finished it",
            ),
            WorkplanStatus::Accepted if w.accepted_by.is_none() => c.push(
                at("accepted_by"),
                "an accepted workplan names who accepted it",
            ),
            _ => {}
        }
        if w.accepted_by.is_some() && w.accepted_by == w.finished_by {
            c.push(
                at("accepted_by"),
                "acceptance is a review by someone other than whoever finished the plan",
            );
        }
        c.version(at("version"), w.version);
    }

    for (i, t) in &l.tasks {
        let at = |f: &str| format!("tasks[{i}].{f}");
        c.reference(
            at("workplan_id"),
            Some(t.workplan_id),
            &workplans,
            "workplan",
        );
        c.text(at("title"), text::single_line("value", &t.title, 1, 200));
        c.text(
            at("description"),
            text::multi_line("value", &t.description, 0, 20_000),
        );
        match &t.blocking_reason {
            Some(r) => c.text(at("blocking_reason"), text::single_line("value", r, 1, 500)),
            None if t.status == TaskStatus::Wait => c.push(
                at("blocking_reason"),
                "a waiting task needs a blocking reason",
            ),
            None => {}
        }
        c.opt_principal(at("assignee"), t.assignee.as_deref());
        c.principal(at("created_by"), &t.created_by);
        c.version(at("version"), t.version);
    }

    for (i, d) in &l.decisions {
        check_decision(&mut c, *i, d, &tasks, &decisions);
    }

    let mut last_seq: Option<(usize, i64)> = None;
    for (i, e) in &l.events {
        let at = |f: &str| format!("events[{i}].{f}");
        if let Some(seq) = e.seq {
            if seq < 1 {
                c.push(at("seq"), "must be at least 1");
            } else if let Some((j, prev)) = last_seq.filter(|(_, prev)| seq <= *prev) {
                c.push(
                    at("seq"),
                    format!(
                        "{seq} does not come after events[{j}].seq {prev}: events must be in journal order"
                    ),
                );
            }
            last_seq = Some((*i, seq));
        }
        if let Err(m) = EventType::parse(&e.event_type) {
            c.push(at("event_type"), m);
        }
        let n = e.summary.chars().count();
        if e.summary.trim().is_empty() {
            c.push(at("summary"), "must not be empty");
        } else if n > MAX_SUMMARY {
            c.push(
                at("summary"),
                format!("must have at most {MAX_SUMMARY} characters (has {n})"),
            );
        } else if e.summary.contains('\0') {
            c.push(at("summary"), "contains a NUL character");
        }
        c.principal(at("author"), &e.author);
        c.reference(
            at("workstream_id"),
            e.workstream_id,
            &workstreams,
            "workstream",
        );
        c.reference(at("workplan_id"), e.workplan_id, &workplans, "workplan");
        c.reference(at("task_id"), e.task_id, &tasks, "task");
        c.reference(at("decision_id"), e.decision_id, &decisions, "decision");
        if !e.detail.is_object() {
            c.push(at("detail"), "must be a JSON object");
        } else if let Err(m) = text::json_storable("value", &e.detail) {
            c.push(at("detail"), strip_field_name(&m));
        }
        if let Some(h) = &e.prev_hash {
            check_hash(&at("prev_hash"), h, c.p);
        }
        if let Some(h) = &e.hash {
            check_hash(&at("hash"), h, c.p);
        }
    }
}

fn check_decision(
    c: &mut Checker<'_>,
    i: usize,
    d: &DecisionRecord,
    tasks: &HashMap<Uuid, usize>,
    decisions: &HashMap<Uuid, usize>,
) {
    let at = |f: &str| format!("decisions[{i}].{f}");
    c.text(at("title"), text::single_line("value", &d.title, 1, 200));
    c.text(
        at("context"),
        text::multi_line("value", &d.context, 0, 20_000),
    );
    if d.options.len() > 20 {
        c.push(at("options"), "at most 20 options");
    }
    for (j, o) in d.options.iter().enumerate() {
        let path = format!("decisions[{i}].options[{j}]");
        if d.options[..j].contains(o) {
            c.push(path, format!("duplicate option `{o}`"));
        } else {
            c.text(path, text::single_line("value", o, 1, 200));
        }
    }
    c.principal(at("proposed_by"), &d.proposed_by);
    match &d.outcome {
        Some(o) => {
            c.text(
                at("outcome.choice"),
                text::single_line("value", &o.choice, 1, 200),
            );
            c.text(
                at("outcome.rationale"),
                text::multi_line("value", &o.rationale, 0, 20_000),
            );
            c.principal(at("outcome.decided_by"), &o.decided_by);
            if !d.options.is_empty() && !d.options.contains(&o.choice) {
                c.push(
                    at("outcome.choice"),
                    format!("must be one of the options: {}", d.options.join(", ")),
                );
            }
            if d.decision_type != DecisionType::Made {
                c.push(at("decision_type"), "a decision with an outcome is `made`");
            }
        }
        None => {
            if d.decision_type == DecisionType::Made {
                c.push(at("outcome"), "a `made` decision records its outcome");
            }
            if d.status == DecisionStatus::Resolved {
                c.push(at("outcome"), "a resolved decision records its outcome");
            }
        }
    }
    if d.status == DecisionStatus::Escalated
        && (d.escalated_by.is_none() || d.escalated_at.is_none())
    {
        c.push(
            at("escalated_by"),
            "an escalated decision names who escalated it and when",
        );
    }
    c.opt_principal(at("escalated_by"), d.escalated_by.as_deref());
    if let Some(r) = &d.escalation_reason {
        c.text(
            at("escalation_reason"),
            text::multi_line("value", r, 0, 20_000),
        );
    }
    match (d.status, d.superseded_by) {
        (DecisionStatus::Superseded, None) => c.push(
            at("superseded_by"),
            "a superseded decision names the decision that replaced it",
        ),
        (DecisionStatus::Superseded, Some(_)) => {}
        (_, Some(_)) => c.push(
            at("superseded_by"),
            "only a superseded decision is replaced by another",
        ),
        (_, None) => {}
    }
    for (field, link) in [
        ("superseded_by", d.superseded_by),
        ("supersedes", d.supersedes),
    ] {
        if link == Some(d.id) {
            c.push(at(field), "a decision cannot replace itself");
        } else {
            c.reference(at(field), link, decisions, "decision");
        }
    }
    let mut linked: Vec<Uuid> = Vec::new();
    for (j, link) in d.task_links.iter().enumerate() {
        let at = |f: &str| format!("decisions[{i}].task_links[{j}].{f}");
        if linked.contains(&link.task_id) {
            c.push(
                at("task_id"),
                format!("task {} is linked twice", link.task_id),
            );
        }
        linked.push(link.task_id);
        c.reference(at("task_id"), Some(link.task_id), tasks, "task");
        c.principal(at("linked_by"), &link.linked_by);
    }
    c.version(at("version"), d.version);
}

fn check_hash(path: &str, h: &str, p: &mut Vec<Problem>) {
    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        p.push(Problem::new(path, "must be 64 hexadecimal characters"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "format": FORMAT,
            "format_version": 1,
            "exported_at": "2025-01-02T03:04:05.123456Z",
            "workstreams": [{"id": "0190a000-0000-7000-8000-000000000001", "slug": "platform", "title": "Platform",
                             "created_by": "alice", "created_at": "2025-01-01T00:00:00Z"}],
            "workplans": [{"id": "0190a000-0000-7000-8000-000000000002", "workstream_id": "0190a000-0000-7000-8000-000000000001",
                           "title": "Plan", "status": "active", "created_by": "alice", "created_at": "2025-01-01T00:00:00Z"}],
            "tasks": [{"id": "0190a000-0000-7000-8000-000000000003", "workplan_id": "0190a000-0000-7000-8000-000000000002",
                       "title": "Task", "status": "in_progress", "created_by": "alice",
                       "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"}],
            "decisions": [{"id": "0190a000-0000-7000-8000-000000000004", "title": "Which?", "options": ["a", "b"],
                           "decision_type": "pending", "status": "open", "proposed_by": "bob",
                           "created_at": "2025-01-01T00:00:00Z",
                           "task_links": [{"task_id": "0190a000-0000-7000-8000-000000000003", "linked_by": "bob",
                                           "linked_at": "2025-01-01T00:00:00Z"}]}],
            "events": [{"seq": 1, "id": "0190a000-0000-7000-8000-000000000005", "created_at": "2025-01-01T00:00:00Z",
                        "event_type": "note.added", "summary": "hello", "author": "alice",
                        "task_id": "0190a000-0000-7000-8000-000000000003", "detail": {"k": 1}}]
        })
    }

    fn problems(v: &Value) -> Vec<String> {
        match parse(&v.to_string()) {
            Ok(_) => Vec::new(),
            Err(p) => p.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_complete_export_parses_with_aliases_and_defaults() {
        let doc = parse(&minimal().to_string()).unwrap();
        assert_eq!(doc.tasks[0].status, TaskStatus::Progress);
        assert_eq!(doc.workstreams[0].version, 1);
        assert_eq!(doc.counts().task_links, 1);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut v = minimal();
        v["decisions"][0]["task_links"][0]["task_id"] =
            json!("0190a000-0000-7000-8000-0000000000ff");
        v["events"][0]["event_type"] = json!("Bad Type");
        let task = v["tasks"][0].clone();
        v["tasks"].as_array_mut().unwrap().push(task);
        v["workplans"][0]["status"] = json!("sleeping");
        v["extra"] = json!(1);
        let p = problems(&v);
        let has = |prefix: &str| p.iter().any(|l| l.starts_with(prefix));
        assert!(
            has("decisions[0].task_links[0].task_id: no task 0190a000-0000-7000-8000-0000000000ff"),
            "{p:#?}"
        );
        assert!(has("events[0].event_type: event_type `Bad Type`"), "{p:#?}");
        assert!(has("tasks[1].id: duplicate id"), "{p:#?}");
        assert!(
            has("workplans[0].status: unknown variant `sleeping`"),
            "{p:#?}"
        );
        assert!(has("extra: unknown field"), "{p:#?}");
        // The workplan that failed to parse is still known: its task is not reported again.
        assert!(!has("tasks[0].workplan_id"), "{p:#?}");
    }

    #[test]
    fn format_version_and_lifecycle_rules_are_checked() {
        let mut v = minimal();
        v["format_version"] = json!(2);
        v["decisions"][0]["status"] = json!("superseded");
        v["events"][0]["seq"] = json!(0);
        v["events"][0]["hash"] = json!("abc");
        let p = problems(&v);
        let has = |prefix: &str| p.iter().any(|l| l.starts_with(prefix));
        assert!(has("format_version: version 2 is not supported"), "{p:#?}");
        assert!(
            has("decisions[0].superseded_by: a superseded decision names"),
            "{p:#?}"
        );
        assert!(has("events[0].seq: must be at least 1"), "{p:#?}");
        assert!(
            has("events[0].hash: must be 64 hexadecimal characters"),
            "{p:#?}"
        );
    }

    #[test]
    fn events_must_be_in_journal_order() {
        let mut v = minimal();
        let mut second = v["events"][0].clone();
        second["id"] = json!("0190a000-0000-7000-8000-000000000006");
        v["events"].as_array_mut().unwrap().push(second);
        let p = problems(&v);
        assert!(
            p.iter()
                .any(|l| l.starts_with("events[1].seq: 1 does not come after events[0].seq 1")),
            "{p:#?}"
        );
    }

    #[test]
    fn not_json_and_not_an_object_are_explained() {
        assert!(parse("{").unwrap_err()[0]
            .message
            .starts_with("not valid JSON"));
        assert_eq!(parse("[]").unwrap_err()[0].path, "$");
    }
}
