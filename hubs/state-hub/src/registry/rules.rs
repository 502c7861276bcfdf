//! The hub registry's rules, as pure functions: names, registrations, who may speak for a hub,
//! health judged from heartbeats, and the manifest lifecycle.

use chrono::{DateTime, Utc};
use hub_core::api::manifest::Manifest;
use hub_core::api::registry::{
    Heartbeat, HubHealth, HubRegistration, ManifestRecord, ManifestStatus, NewHubKind,
};
use hub_core::auth::{Permission, Principal};
use hub_core::http::problem::{ApiError, FieldError};
use hub_core::text;

/// Heartbeats later than this many intervals make a hub at least `warning`.
pub const LATE_FACTOR: i64 = 3;
/// Heartbeats later than this many intervals make a hub `critical`.
pub const SILENT_FACTOR: i64 = 10;
/// Shortest and longest heartbeat interval a hub may promise, in seconds.
pub const HEARTBEAT_RANGE: std::ops::RangeInclusive<u32> = 10..=3600;

/// Whether `s` is a hub or kind name: 1–64 lowercase letters, digits, `-` or `_`, starting with
/// a letter (the same shape the manifest validator demands of `hub` and `kind`).
pub fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

const NAME_RULE: &str = "1-64 lowercase letters, digits, - or _, starting with a letter";

/// A hub named in a path: anything that is not a hub name names no hub.
pub fn path_hub(name: &str) -> Result<&str, ApiError> {
    if name_ok(name) {
        Ok(name)
    } else {
        Err(ApiError::NotFound(format!("no hub `{}`", clip(name))))
    }
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A validated hub kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidKind {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
}

/// Validates a new kind, every field at once.
pub fn validate_kind(k: &NewHubKind) -> Result<ValidKind, ApiError> {
    let mut errors = Vec::new();
    let name = k.name.trim();
    if !name_ok(name) {
        errors.push(FieldError::new("name", NAME_RULE));
    }
    let description = text::single_line("description", &k.description, 0, 500)
        .map_err(|m| errors.push(FieldError::new("description", m)))
        .ok();
    match description {
        Some(description) if errors.is_empty() => Ok(ValidKind {
            name: name.to_owned(),
            description,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// A validated registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRegistration {
    /// Kind (its existence is the store's to check).
    pub kind: String,
    /// Normalized base URL.
    pub base_url: String,
    /// Promised heartbeat interval.
    pub heartbeat_seconds: u32,
}

/// The field problems of a registration, and the registration when there are none. Whether the
/// kind exists is checked against the database by the caller and added to these.
pub fn validate_registration(
    name: &str,
    r: &HubRegistration,
    dev_mode: bool,
) -> (Option<ValidRegistration>, Vec<FieldError>) {
    let mut errors = Vec::new();
    if !name_ok(name) {
        errors.push(FieldError::new("name", NAME_RULE));
    }
    if !name_ok(&r.kind) {
        errors.push(FieldError::new("kind", NAME_RULE));
    }
    let base_url = base_url(&r.base_url, dev_mode)
        .map_err(|m| errors.push(FieldError::new("base_url", m)))
        .ok();
    if !HEARTBEAT_RANGE.contains(&r.heartbeat_seconds) {
        errors.push(FieldError::new(
            "heartbeat_seconds",
            format!(
                "between {} and {} seconds",
                HEARTBEAT_RANGE.start(),
                HEARTBEAT_RANGE.end()
            ),
        ));
    }
    let valid = match base_url {
        Some(base_url) if errors.is_empty() => Some(ValidRegistration {
            kind: r.kind.clone(),
            base_url,
            heartbeat_seconds: r.heartbeat_seconds,
        }),
        _ => None,
    };
    (valid, errors)
}

/// People follow a hub's base URL from the registry, so it must be https (plain http only to
/// loopback in dev mode) and carry no credentials.
fn base_url(raw: &str, dev_mode: bool) -> Result<String, String> {
    let raw = raw.trim();
    if raw.len() > 2048 {
        return Err("at most 2048 characters".into());
    }
    let u = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    match u.scheme() {
        "https" => {}
        "http" if dev_mode && hub_core::config::is_loopback_host(&u) => {}
        "http" => {
            return Err("must be https:// (plain http only to a loopback host in dev mode)".into())
        }
        other => return Err(format!("must be https://, not {other}://")),
    }
    if u.host().is_none() {
        return Err("must name a host".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not carry credentials".into());
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(u.to_string())
}

/// Only the hub itself (a principal whose subject is `hub:<name>`) or an admin may register,
/// heartbeat or submit manifests for `<name>`: otherwise any member token could pose as any hub.
pub fn may_act_for(principal: &Principal, hub: &str) -> Result<(), ApiError> {
    if principal.has(Permission::RegistryAdmin) || principal.subject.as_str() == hub_subject(hub) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "only the hub itself (a token with subject {}) or an admin may act for hub `{hub}`; \
             you are {}",
            hub_subject(hub),
            principal.subject
        )))
    }
}

/// The subject a hub's own token carries.
pub fn hub_subject(hub: &str) -> String {
    format!("hub:{hub}")
}

/// Validates a heartbeat: a hub reports passing, warning or critical, never unknown.
pub fn validate_heartbeat(h: &Heartbeat) -> Result<(HubHealth, Option<String>), ApiError> {
    let mut errors = Vec::new();
    if h.status == HubHealth::Unknown {
        errors.push(FieldError::new(
            "status",
            "a hub reports passing, warning or critical",
        ));
    }
    let detail = match h.detail.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) => text::single_line("detail", d, 1, 500)
            .map_err(|m| errors.push(FieldError::new("detail", m)))
            .ok(),
    };
    if errors.is_empty() {
        Ok((h.status, detail))
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn severity(h: HubHealth) -> u8 {
    match h {
        HubHealth::Unknown => 0,
        HubHealth::Passing => 1,
        HubHealth::Warning => 2,
        HubHealth::Critical => 3,
    }
}

/// The health served: what the hub last reported, downgraded when its heartbeats are late
/// (older than 3 intervals: at least warning; older than 10: critical). Never heard: unknown.
pub fn judged_health(
    reported: HubHealth,
    last_seen: Option<DateTime<Utc>>,
    heartbeat_seconds: u32,
    now: DateTime<Utc>,
) -> HubHealth {
    let Some(seen) = last_seen else {
        return HubHealth::Unknown;
    };
    let age = (now - seen).num_milliseconds();
    let interval = i64::from(heartbeat_seconds) * 1000;
    let floor = if age > SILENT_FACTOR * interval {
        HubHealth::Critical
    } else if age > LATE_FACTOR * interval {
        HubHealth::Warning
    } else {
        return reported;
    };
    if severity(reported) >= severity(floor) {
        reported
    } else {
        floor
    }
}

/// The health names stored in `hubs.reported_status`.
pub fn health_str(h: HubHealth) -> &'static str {
    match h {
        HubHealth::Passing => "passing",
        HubHealth::Warning => "warning",
        HubHealth::Critical => "critical",
        HubHealth::Unknown => "unknown",
    }
}

/// Parses a stored health name.
pub fn parse_health(s: &str) -> Option<HubHealth> {
    match s {
        "passing" => Some(HubHealth::Passing),
        "warning" => Some(HubHealth::Warning),
        "critical" => Some(HubHealth::Critical),
        "unknown" => Some(HubHealth::Unknown),
        _ => None,
    }
}

/// The manifest status names stored in `manifests.status`.
pub fn status_str(s: ManifestStatus) -> &'static str {
    match s {
        ManifestStatus::Draft => "draft",
        ManifestStatus::Active => "active",
        ManifestStatus::Retired => "retired",
    }
}

/// Parses a stored manifest status.
pub fn parse_status(s: &str) -> Option<ManifestStatus> {
    match s {
        "draft" => Some(ManifestStatus::Draft),
        "active" => Some(ManifestStatus::Active),
        "retired" => Some(ManifestStatus::Retired),
        _ => None,
    }
}

/// Every problem of a manifest submitted for `hub`, whose registered kind is `kind`: the shared
/// validator's, plus that it names this hub and its kind, and fits in the database.
pub fn manifest_problems(hub: &str, kind: &str, m: &Manifest) -> Vec<FieldError> {
    let mut errors = m.validate();
    if m.hub != hub {
        errors.push(FieldError::new(
            "hub",
            format!("must be `{hub}`, the hub it is submitted for"),
        ));
    }
    if m.kind != kind {
        errors.push(FieldError::new(
            "kind",
            format!("must be `{kind}`, the kind hub `{hub}` is registered with"),
        ));
    }
    match serde_json::to_value(m) {
        Ok(v) => {
            if let Err(msg) = text::json_storable("manifest", &v) {
                errors.push(FieldError::new("manifest", msg));
            }
        }
        Err(e) => errors.push(FieldError::new("manifest", e.to_string())),
    }
    errors
}

/// What a submission does, given the hub's manifest of the same version if there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submission {
    /// A new version: store a draft.
    Insert,
    /// The very document already stored (as a draft or in force): answer with it.
    Unchanged,
    /// A changed document for a version still in draft: the draft takes it.
    ReplaceDraft,
}

/// Decides a submission. A version that was ever in force is fixed: a changed document needs
/// a new version, and a retired one is not brought back by resubmitting it.
pub fn on_submit(
    existing: Option<&ManifestRecord>,
    doc: &Manifest,
) -> Result<Submission, ApiError> {
    let Some(rec) = existing else {
        return Ok(Submission::Insert);
    };
    match rec.status {
        ManifestStatus::Draft if rec.manifest == *doc => Ok(Submission::Unchanged),
        ManifestStatus::Draft => Ok(Submission::ReplaceDraft),
        ManifestStatus::Active if rec.manifest == *doc => Ok(Submission::Unchanged),
        status => Err(ApiError::Conflict(format!(
            "version {} of hub {}'s manifest is {} ({}); bump the version to submit a changed manifest",
            rec.version,
            rec.hub,
            status_str(status),
            rec.id
        ))),
    }
}

/// Only drafts are edited, and an edit keeps the hub and the version (the version names the draft).
pub fn can_edit(rec: &ManifestRecord, doc: &Manifest) -> Result<(), ApiError> {
    if rec.status != ManifestStatus::Draft {
        return Err(ApiError::InvalidTransition(format!(
            "manifest {} is {}; only drafts can be edited: submit a new version instead",
            rec.id,
            status_str(rec.status)
        )));
    }
    if doc.version != rec.version {
        return Err(ApiError::field(
            "version",
            format!(
                "must stay {}: an edit keeps the draft's version; submit another version as a new manifest",
                rec.version
            ),
        ));
    }
    Ok(())
}

/// Only drafts are activated.
pub fn can_activate(rec: &ManifestRecord) -> Result<(), ApiError> {
    match rec.status {
        ManifestStatus::Draft => Ok(()),
        s => Err(ApiError::InvalidTransition(format!(
            "manifest {} is {}; only drafts can be activated",
            rec.id,
            status_str(s)
        ))),
    }
}

/// Drafts and active manifests can be retired; retired ones stay retired.
pub fn can_retire(rec: &ManifestRecord) -> Result<(), ApiError> {
    match rec.status {
        ManifestStatus::Retired => Err(ApiError::InvalidTransition(format!(
            "manifest {} is already retired",
            rec.id
        ))),
        _ => Ok(()),
    }
}

/// A type registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registry {
    /// Event types (`<noun>.<verb>`).
    Event,
    /// Widget types.
    Widget,
    /// Annotation categories.
    AnnotationCategory,
    /// Policy scopes (`<hub>:<action>`).
    PolicyScope,
}

impl Registry {
    /// Every registry, in display order.
    pub const ALL: [Registry; 4] = [
        Registry::Event,
        Registry::Widget,
        Registry::AnnotationCategory,
        Registry::PolicyScope,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Registry::Event => "event",
            Registry::Widget => "widget",
            Registry::AnnotationCategory => "annotation_category",
            Registry::PolicyScope => "policy_scope",
        }
    }

    /// Parses a stored or queried name.
    pub fn parse(s: &str) -> Option<Registry> {
        Registry::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One name a manifest declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// Which registry.
    pub registry: Registry,
    /// The name.
    pub name: String,
    /// Its description (a widget's title).
    pub description: String,
}

/// Every name a manifest puts into the type registries when it is activated.
pub fn declared_types(m: &Manifest) -> Vec<Declared> {
    let mut out = Vec::new();
    let mut add = |registry, name: &str, description: &str| {
        out.push(Declared {
            registry,
            name: name.to_owned(),
            description: description.to_owned(),
        })
    };
    for t in &m.event_types {
        add(Registry::Event, &t.name, &t.description);
    }
    for w in &m.widget_types {
        add(Registry::Widget, &w.name, &w.title);
    }
    for c in &m.annotation_categories {
        add(Registry::AnnotationCategory, &c.name, &c.description);
    }
    for s in &m.policy_scopes {
        add(Registry::PolicyScope, &s.name, &s.description);
    }
    out
}

/// Names another hub already holds, with that hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// Which registry.
    pub registry: Registry,
    /// The name.
    pub name: String,
    /// The hub that holds it.
    pub hub: String,
}

/// Activation is refused when another hub holds any declared name, naming every one of them.
pub fn refuse_taken(hub: &str, taken: &[Taken]) -> Result<(), ApiError> {
    if taken.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = taken
        .iter()
        .map(|t| format!("{} `{}` (held by {})", t.registry.as_str(), t.name, t.hub))
        .collect();
    Err(ApiError::Conflict(format!(
        "cannot activate hub {hub}'s manifest: another hub already registered {}; rename them or retire the other hub's manifest",
        names.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::auth::{PrincipalKind, Role, Subject};
    use std::collections::BTreeSet;

    fn who(subject: &str, role: Role) -> Principal {
        Principal {
            subject: Subject::parse(subject).unwrap(),
            kind: PrincipalKind::Service,
            roles: BTreeSet::from([role]),
            scopes: BTreeSet::new(),
            token_id: None,
            session: None,
        }
    }

    fn manifest(version: &str) -> Manifest {
        serde_json::from_value(serde_json::json!({
            "hub": "ops-hub", "kind": "ops", "version": version,
            "event_types": [{"name": "deployment.frozen", "description": "d"}],
            "policy_scopes": [{"name": "ops-hub:freeze.request"}]
        }))
        .unwrap()
    }

    fn record(status: ManifestStatus, m: Manifest) -> ManifestRecord {
        ManifestRecord {
            id: uuid::Uuid::now_v7(),
            hub: "ops-hub".into(),
            version: m.version.clone(),
            status,
            manifest: m,
            submitted_by: "hub:ops-hub".into(),
            created_at: Utc::now(),
            activated_by: None,
            activated_at: None,
            retired_at: None,
            revision: 1,
        }
    }

    #[test]
    fn only_the_hub_itself_or_an_admin_speaks_for_a_hub() {
        assert!(may_act_for(&who("hub:ops-hub", Role::Member), "ops-hub").is_ok());
        assert!(may_act_for(&who("root", Role::Admin), "ops-hub").is_ok());
        assert!(matches!(
            may_act_for(&who("hub:dev-hub", Role::Member), "ops-hub"),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            may_act_for(&who("alice", Role::Member), "ops-hub"),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[test]
    fn late_heartbeats_downgrade_health() {
        let now = Utc::now();
        let ago = |s: i64| Some(now - chrono::Duration::seconds(s));
        use HubHealth::*;
        assert_eq!(judged_health(Passing, None, 30, now), Unknown);
        assert_eq!(judged_health(Passing, ago(60), 30, now), Passing);
        assert_eq!(judged_health(Passing, ago(91), 30, now), Warning);
        assert_eq!(judged_health(Critical, ago(91), 30, now), Critical);
        assert_eq!(judged_health(Warning, ago(301), 30, now), Critical);
        assert_eq!(judged_health(Passing, ago(300), 30, now), Warning);
    }

    #[test]
    fn registrations_report_every_field() {
        let r = HubRegistration {
            kind: "Ops".into(),
            base_url: "http://ops.example.org".into(),
            heartbeat_seconds: 5,
        };
        let (valid, errors) = validate_registration("ops hub", &r, false);
        assert!(valid.is_none());
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "kind", "base_url", "heartbeat_seconds"]);
        let ok = HubRegistration {
            kind: "ops".into(),
            base_url: "http://127.0.0.1:9000".into(),
            heartbeat_seconds: 30,
        };
        assert!(validate_registration("ops-hub", &ok, false).0.is_none());
        let (valid, errors) = validate_registration("ops-hub", &ok, true);
        assert_eq!(errors, vec![]);
        assert_eq!(valid.unwrap().base_url, "http://127.0.0.1:9000/");
        let creds = HubRegistration {
            base_url: "https://u:p@ops.example.org".into(),
            ..ok
        };
        assert!(validate_registration("ops-hub", &creds, true).0.is_none());
    }

    #[test]
    fn heartbeats_never_report_unknown() {
        let h = Heartbeat {
            status: HubHealth::Unknown,
            detail: Some("a\u{7}b".into()),
        };
        let Err(ApiError::Validation(errs)) = validate_heartbeat(&h) else {
            panic!("accepted")
        };
        assert_eq!(errs.len(), 2);
        let h = Heartbeat {
            status: HubHealth::Warning,
            detail: Some("  ".into()),
        };
        assert_eq!(validate_heartbeat(&h).unwrap(), (HubHealth::Warning, None));
    }

    #[test]
    fn submissions_follow_the_lifecycle() {
        let m = manifest("1.0.0");
        let mut changed = m.clone();
        changed.description = "new".into();
        assert_eq!(on_submit(None, &m).unwrap(), Submission::Insert);
        let draft = record(ManifestStatus::Draft, m.clone());
        assert_eq!(on_submit(Some(&draft), &m).unwrap(), Submission::Unchanged);
        assert_eq!(
            on_submit(Some(&draft), &changed).unwrap(),
            Submission::ReplaceDraft
        );
        let active = record(ManifestStatus::Active, m.clone());
        assert_eq!(on_submit(Some(&active), &m).unwrap(), Submission::Unchanged);
        assert!(matches!(
            on_submit(Some(&active), &changed),
            Err(ApiError::Conflict(msg)) if msg.contains("bump the version")
        ));
        let retired = record(ManifestStatus::Retired, m.clone());
        assert!(on_submit(Some(&retired), &m).is_err());
        assert!(can_edit(&draft, &changed).is_ok());
        assert!(matches!(
            can_edit(&active, &changed),
            Err(ApiError::InvalidTransition(_))
        ));
        assert!(can_edit(&draft, &manifest("1.0.1")).is_err());
        assert!(can_activate(&draft).is_ok() && can_activate(&active).is_err());
        assert!(can_retire(&active).is_ok() && can_retire(&retired).is_err());
    }

    #[test]
    fn manifests_must_name_their_hub_and_kind() {
        let m = manifest("1.0.0");
        assert_eq!(manifest_problems("ops-hub", "ops", &m), vec![]);
        let fields: Vec<String> = manifest_problems("dev-hub", "dev", &m)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["hub", "kind"]);
    }

    #[test]
    fn declared_types_cover_every_registry_and_conflicts_name_every_holder() {
        let d = declared_types(&manifest("1.0.0"));
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].registry, Registry::Event);
        assert_eq!(d[1].name, "ops-hub:freeze.request");
        let taken = [Taken {
            registry: Registry::Event,
            name: "deployment.frozen".into(),
            hub: "dev-hub".into(),
        }];
        let Err(ApiError::Conflict(msg)) = refuse_taken("ops-hub", &taken) else {
            panic!("not refused")
        };
        assert!(
            msg.contains("event `deployment.frozen` (held by dev-hub)"),
            "{msg}"
        );
        for r in Registry::ALL {
            assert_eq!(Registry::parse(r.as_str()), Some(r));
        }
    }
}
