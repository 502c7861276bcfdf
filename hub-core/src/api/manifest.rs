//! A hub's capability manifest: what it emits (event types), shows (widget types), lets people
//! attach (annotation categories), guards (policy scopes), reads (capabilities) and does
//! (actions). The domain hub submits it; the state hub validates, stores and activates it.
//!
//! Parsing is two steps on purpose: serde takes any JSON of the right shape ([`Manifest`]), then
//! [`Manifest::validate`] reports *every* problem with its field path, so a hub author fixes a
//! manifest in one round instead of one error at a time.

use crate::api::events::EventType;
use crate::auth::Scope;
use crate::http::problem::FieldError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most entries in any list of a manifest.
pub const MAX_ENTRIES: usize = 200;

/// The manifest document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The hub instance it belongs to, e.g. `ops-hub`.
    pub hub: String,
    /// The hub's kind, e.g. `ops`.
    pub kind: String,
    /// The manifest's version, `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// What the hub is for.
    #[serde(default)]
    pub description: String,
    /// Event types the hub writes to the journal.
    #[serde(default)]
    pub event_types: Vec<EventTypeDecl>,
    /// Widgets the hub renders from observations.
    #[serde(default)]
    pub widget_types: Vec<WidgetTypeDecl>,
    /// Categories of annotations people attach to items.
    #[serde(default)]
    pub annotation_categories: Vec<NamedDecl>,
    /// Scopes guarding the hub's actions, `<hub>:<action>`.
    #[serde(default)]
    pub policy_scopes: Vec<NamedDecl>,
    /// Capability interfaces the hub reads, and how often.
    #[serde(default)]
    pub capabilities: Vec<CapabilityUse>,
    /// Changes the hub may make through a capability.
    #[serde(default)]
    pub actions: Vec<ActionDecl>,
}

/// An event type the hub writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeDecl {
    /// `<noun>.<verb>`.
    pub name: String,
    /// What it records.
    #[serde(default)]
    pub description: String,
}

/// A name with a description (annotation categories, policy scopes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedDecl {
    /// The name.
    pub name: String,
    /// What it means.
    #[serde(default)]
    pub description: String,
}

/// How a widget presents its observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WidgetRender {
    /// A table of the rows at `items_pointer`.
    Table,
    /// Key/value facts of an object.
    Facts,
    /// The raw JSON.
    Json,
}

/// A widget the hub renders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetTypeDecl {
    /// Widget name, lowercase.
    pub name: String,
    /// Heading shown.
    pub title: String,
    /// The capability whose observations it shows.
    pub capability: String,
    /// The observed path under the capability's base URL.
    pub path: String,
    /// Older than this, the widget says "stale".
    pub stale_after_seconds: u32,
    /// How to render.
    pub render: WidgetRender,
    /// JSON pointer to the rows, for tables (e.g. `/deployments`).
    #[serde(default)]
    pub items_pointer: Option<String>,
}

/// A capability the hub polls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapabilityUse {
    /// The capability's registered name.
    pub name: String,
    /// Paths polled under its base URL.
    pub poll_paths: Vec<String>,
    /// Seconds between polls.
    pub poll_seconds: u32,
}

/// A change the hub may make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionDecl {
    /// Action name, e.g. `freeze.request`.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// The capability it calls.
    pub capability: String,
    /// The path POSTed to under the capability's base URL.
    pub path: String,
    /// The policy scope a caller needs; declared in `policy_scopes`.
    pub scope: String,
    /// Whether an approved (resolved) state-hub decision must back each call.
    pub requires_decision: bool,
}

fn name_ok(s: &str, dots: bool) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'-'
                || b == b'_'
                || (dots && b == b'.')
        })
}

fn path_ok(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && p.len() <= 512
        && !p.split('/').any(|seg| seg == ".." || seg == ".")
        && p.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'\\' && b != b'#')
}

fn version_ok(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

impl Manifest {
    /// Every problem, each with its field path (`actions[1].scope`); empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        let mut err = |field: String, msg: &str| e.push(FieldError::new(field, msg));
        if !name_ok(&self.hub, false) {
            err(
                "hub".into(),
                "1-64 lowercase letters, digits, - or _, starting with a letter",
            );
        }
        if !name_ok(&self.kind, false) {
            err(
                "kind".into(),
                "1-64 lowercase letters, digits, - or _, starting with a letter",
            );
        }
        if !version_ok(&self.version) {
            err("version".into(), "must look like 1.2.3");
        }
        if self.description.chars().count() > 2000
            || self
                .description
                .chars()
                .any(|c| c.is_control() && c != '\n')
        {
            err(
                "description".into(),
                "at most 2000 characters, no control characters",
            );
        }
        for (list, len) in [
            ("event_types", self.event_types.len()),
            ("widget_types", self.widget_types.len()),
            ("annotation_categories", self.annotation_categories.len()),
            ("policy_scopes", self.policy_scopes.len()),
            ("capabilities", self.capabilities.len()),
            ("actions", self.actions.len()),
        ] {
            if len > MAX_ENTRIES {
                err(list.into(), "more than 200 entries");
            }
        }
        let mut seen = BTreeSet::new();
        for (i, t) in self.event_types.iter().enumerate() {
            if let Err(m) = EventType::parse(&t.name) {
                err(format!("event_types[{i}].name"), &m);
            }
            if !seen.insert(t.name.as_str()) {
                err(format!("event_types[{i}].name"), "declared twice");
            }
        }
        let mut seen = BTreeSet::new();
        for (i, c) in self.annotation_categories.iter().enumerate() {
            if !name_ok(&c.name, true) {
                err(
                    format!("annotation_categories[{i}].name"),
                    "1-64 lowercase letters, digits, - _ .",
                );
            }
            if !seen.insert(c.name.as_str()) {
                err(format!("annotation_categories[{i}].name"), "declared twice");
            }
        }
        let mut scopes = BTreeSet::new();
        for (i, s) in self.policy_scopes.iter().enumerate() {
            match Scope::parse(&s.name) {
                Ok(_) if !s.name.starts_with(&format!("{}:", self.hub)) => err(
                    format!("policy_scopes[{i}].name"),
                    "must start with this hub's name and a colon",
                ),
                Ok(_) => {}
                Err(m) => err(format!("policy_scopes[{i}].name"), &m),
            }
            if !scopes.insert(s.name.as_str()) {
                err(format!("policy_scopes[{i}].name"), "declared twice");
            }
        }
        let mut used = BTreeSet::new();
        for (i, c) in self.capabilities.iter().enumerate() {
            if !name_ok(&c.name, false) {
                err(
                    format!("capabilities[{i}].name"),
                    "1-64 lowercase letters, digits, - or _",
                );
            }
            if !used.insert(c.name.as_str()) {
                err(format!("capabilities[{i}].name"), "declared twice");
            }
            if !(10..=86_400).contains(&c.poll_seconds) {
                err(
                    format!("capabilities[{i}].poll_seconds"),
                    "between 10 and 86400",
                );
            }
            if c.poll_paths.is_empty() || c.poll_paths.len() > 20 {
                err(format!("capabilities[{i}].poll_paths"), "1 to 20 paths");
            }
            for (j, p) in c.poll_paths.iter().enumerate() {
                if !path_ok(p) {
                    err(
                        format!("capabilities[{i}].poll_paths[{j}]"),
                        "an absolute path without .., // or #",
                    );
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (i, w) in self.widget_types.iter().enumerate() {
            if !name_ok(&w.name, false) {
                err(
                    format!("widget_types[{i}].name"),
                    "1-64 lowercase letters, digits, - or _",
                );
            }
            if !seen.insert(w.name.as_str()) {
                err(format!("widget_types[{i}].name"), "declared twice");
            }
            if w.title.trim().is_empty() || w.title.chars().count() > 100 {
                err(format!("widget_types[{i}].title"), "1-100 characters");
            }
            match self.capabilities.iter().find(|c| c.name == w.capability) {
                None => err(
                    format!("widget_types[{i}].capability"),
                    "not declared in capabilities",
                ),
                Some(c) if !c.poll_paths.contains(&w.path) => err(
                    format!("widget_types[{i}].path"),
                    "not one of that capability's poll_paths",
                ),
                Some(_) => {}
            }
            if !(1..=604_800).contains(&w.stale_after_seconds) {
                err(
                    format!("widget_types[{i}].stale_after_seconds"),
                    "between 1 and 604800",
                );
            }
            match (&w.render, &w.items_pointer) {
                (WidgetRender::Table, None) => err(
                    format!("widget_types[{i}].items_pointer"),
                    "tables need a JSON pointer to their rows",
                ),
                (_, Some(p)) if !(p.is_empty() || p.starts_with('/')) || p.len() > 256 => err(
                    format!("widget_types[{i}].items_pointer"),
                    "a JSON pointer such as /items",
                ),
                _ => {}
            }
        }
        let mut seen = BTreeSet::new();
        for (i, a) in self.actions.iter().enumerate() {
            if !name_ok(&a.name, true) {
                err(
                    format!("actions[{i}].name"),
                    "1-64 lowercase letters, digits, - _ .",
                );
            }
            if !seen.insert(a.name.as_str()) {
                err(format!("actions[{i}].name"), "declared twice");
            }
            if !used.contains(a.capability.as_str()) {
                err(
                    format!("actions[{i}].capability"),
                    "not declared in capabilities",
                );
            }
            if !path_ok(&a.path) {
                err(
                    format!("actions[{i}].path"),
                    "an absolute path without .., // or #",
                );
            }
            if !scopes.contains(a.scope.as_str()) {
                err(
                    format!("actions[{i}].scope"),
                    "not declared in policy_scopes",
                );
            }
        }
        e
    }

    /// The action named `name`.
    pub fn action(&self, name: &str) -> Option<&ActionDecl> {
        self.actions.iter().find(|a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        serde_json::from_value(serde_json::json!({
            "hub": "ops-hub", "kind": "ops", "version": "1.0.0",
            "event_types": [{"name": "deployment.frozen"}],
            "widget_types": [{"name": "deployments", "title": "Deployments", "capability": "deployments",
                              "path": "/deployments/status", "stale_after_seconds": 120, "render": "table",
                              "items_pointer": "/deployments"}],
            "annotation_categories": [{"name": "incident"}],
            "policy_scopes": [{"name": "ops-hub:freeze.request"}],
            "capabilities": [{"name": "deployments", "poll_paths": ["/deployments/status"], "poll_seconds": 30}],
            "actions": [{"name": "freeze", "capability": "deployments", "path": "/deployments/freeze",
                         "scope": "ops-hub:freeze.request", "requires_decision": true}]
        }))
        .unwrap()
    }

    #[test]
    fn a_sound_manifest_has_no_problems() {
        assert_eq!(sample().validate(), vec![]);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut m = sample();
        m.version = "1.0".into();
        m.event_types.push(EventTypeDecl {
            name: "Bad".into(),
            description: String::new(),
        });
        m.widget_types[0].path = "/other".into();
        m.actions[0].scope = "ops-hub:undeclared".into();
        m.actions[0].path = "/../admin".into();
        m.policy_scopes.push(NamedDecl {
            name: "dev-hub:x".into(),
            description: String::new(),
        });
        let fields: Vec<String> = m.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "version",
                "event_types[1].name",
                "policy_scopes[1].name",
                "widget_types[0].path",
                "actions[0].path",
                "actions[0].scope"
            ]
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_the_parser() {
        let err = serde_json::from_value::<Manifest>(serde_json::json!({
            "hub": "x", "kind": "x", "version": "1.0.0", "surprise": 1
        }))
        .unwrap_err();
        assert!(err.to_string().contains("surprise"));
    }
}
