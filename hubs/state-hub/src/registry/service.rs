//! The registry operations, shared by the REST handlers and the web pages: each checks who may
//! act, validates, applies the lifecycle rules to the locked rows and writes its journal event in
//! the same transaction, so a refusal leaves nothing behind whichever surface asked.

use super::rules::{self, Submission};
use super::store;
use crate::journal::Draft;
use crate::state::AppState;
use hub_core::api::manifest::Manifest;
use hub_core::api::registry::{
    Heartbeat, Hub, HubKind, HubRegistration, ManifestRecord, ManifestStatus, NewHubKind,
};
use hub_core::auth::Principal;
use hub_core::http::etag;
use hub_core::http::problem::{ApiError, FieldError};
use serde_json::json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Whether a write created something, changed it, or found it already so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Newly created (201).
    Created,
    /// Changed (200).
    Updated,
    /// Already as asked; nothing written (200).
    Unchanged,
}

/// Adds a hub kind. The same name with the same description again is a no-op, so scripts can
/// declare their kinds on every run; a different description is a conflict.
pub async fn add_kind(
    state: &AppState,
    actor: &Principal,
    input: &NewHubKind,
) -> Result<(HubKind, Outcome), ApiError> {
    let kind = rules::validate_kind(input)?;
    let actor = actor.subject.to_string();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                if let Some(existing) = store::kind(ctx.client(), &kind.name).await? {
                    if existing.description == kind.description {
                        return Ok((existing, Outcome::Unchanged));
                    }
                    return Err(ApiError::Conflict(format!(
                        "hub kind `{}` already exists with another description",
                        kind.name
                    )));
                }
                let now = ctx.now();
                let k = store::insert_kind(ctx.client(), &kind, &actor, now).await?;
                let summary = format!("Added hub kind {}", k.name);
                let detail = json!({"name": k.name, "description": k.description});
                ctx.append(
                    &actor,
                    vec![Draft::system("hub_kind.created", summary, detail)?],
                )
                .await?;
                Ok((k, Outcome::Created))
            })
        })
        .await
}

/// Registers a hub, or updates its registration; registering it again unchanged writes
/// nothing, so a hub can register at every start. `if_match` guards a change to an existing hub.
pub async fn register(
    state: &AppState,
    actor: &Principal,
    name: &str,
    if_match: Option<String>,
    input: &HubRegistration,
) -> Result<(Hub, i64, Outcome), ApiError> {
    rules::may_act_for(actor, name)?;
    let (valid, mut errors) = rules::validate_registration(name, input, state.dev_mode);
    if rules::name_ok(&input.kind) {
        let client = state.pool.get().await?;
        if store::kind(&**client, &input.kind).await?.is_none() {
            errors.push(FieldError::new(
                "kind",
                format!(
                    "unknown hub kind `{}`; an admin must add it first (hubctl hubs kinds add {})",
                    input.kind, input.kind
                ),
            ));
        }
    }
    let reg = match valid {
        Some(reg) if errors.is_empty() => reg,
        _ => return Err(ApiError::Validation(errors)),
    };
    let actor = actor.subject.to_string();
    let name = name.to_owned();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let now = ctx.now();
                let Some(old) = store::hub(ctx.client(), &name, true).await? else {
                    if if_match.is_some_and(|m| m != "*") {
                        // There is no version the caller could have seen.
                        return Err(ApiError::PreconditionFailed(format!(
                            "hub `{name}` is not registered, so no If-Match can match"
                        )));
                    }
                    store::insert_hub(ctx.client(), &name, &reg, &actor, now).await?;
                    let summary = format!("Registered hub {name} ({})", reg.kind);
                    let detail = json!({"hub": name, "kind": reg.kind, "base_url": reg.base_url, "heartbeat_seconds": reg.heartbeat_seconds});
                    ctx.append(&actor, vec![Draft::system("hub.registered", summary, detail)?]).await?;
                    let row = store::require_hub(ctx.client(), &name, false).await?;
                    return Ok((row.at(now), row.version, Outcome::Created));
                };
                etag::check(if_match.as_deref(), old.version)?;
                if old.same_registration(&reg) {
                    return Ok((old.at(now), old.version, Outcome::Unchanged));
                }
                if old.kind != reg.kind {
                    if let Some(active) = store::active_record(ctx.client(), &name, false).await? {
                        return Err(ApiError::Conflict(format!(
                            "hub `{name}` has an active manifest ({}) of kind `{}`; retire it before changing the hub's kind",
                            active.version, old.kind
                        )));
                    }
                }
                store::update_hub(ctx.client(), &name, &reg, now).await?;
                let summary = format!("Updated hub {name}");
                let detail = json!({
                    "hub": name,
                    "before": {"kind": old.kind, "base_url": old.base_url, "heartbeat_seconds": old.heartbeat_seconds},
                    "after": {"kind": reg.kind, "base_url": reg.base_url, "heartbeat_seconds": reg.heartbeat_seconds},
                });
                ctx.append(&actor, vec![Draft::system("hub.updated", summary, detail)?]).await?;
                let row = store::require_hub(ctx.client(), &name, false).await?;
                Ok((row.at(now), row.version, Outcome::Updated))
            })
        })
        .await
}

/// Records a heartbeat. A heartbeat repeating the reported status only touches `last_seen`, off
/// the journal writer; one that changes it goes through the writer and writes
/// `hub.health_changed`, so the journal records changes, not heartbeats.
pub async fn heartbeat(
    state: &AppState,
    actor: &Principal,
    name: &str,
    input: &Heartbeat,
) -> Result<(), ApiError> {
    rules::may_act_for(actor, name)?;
    let (status, detail) = rules::validate_heartbeat(input)?;
    {
        let client = state.pool.get().await?;
        if store::repeat_heartbeat(&**client, name, status, detail.as_deref()).await? {
            return Ok(());
        }
    }
    let actor = actor.subject.to_string();
    let name = name.to_owned();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let old = store::require_hub(ctx.client(), &name, true).await?;
                let now = ctx.now();
                store::record_heartbeat(ctx.client(), &name, status, detail.as_deref(), now)
                    .await?;
                // Another heartbeat may have recorded this status since the fast path looked.
                if old.reported == status {
                    return Ok(());
                }
                let (from, to) = (rules::health_str(old.reported), rules::health_str(status));
                let summary = match &detail {
                    Some(d) => format!("Hub {name} reports {to} (was {from}): {d}"),
                    None => format!("Hub {name} reports {to} (was {from})"),
                };
                let detail = json!({"hub": name, "from": from, "to": to, "detail": detail});
                ctx.append(
                    &actor,
                    vec![Draft::system("hub.health_changed", summary, detail)?],
                )
                .await?;
                Ok(())
            })
        })
        .await
}

/// Every problem of a manifest for a registered hub, or the hub's absence (404).
async fn check_manifest(state: &AppState, hub: &str, doc: &Manifest) -> Result<(), ApiError> {
    let client = state.pool.get().await?;
    let row = store::require_hub(&**client, hub, false).await?;
    let errors = rules::manifest_problems(hub, &row.kind, doc);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn manifest_event(kind: &str, verb: &str, rec: &ManifestRecord) -> Result<Draft, ApiError> {
    Draft::system(
        kind,
        format!("{verb} manifest {} of hub {}", rec.version, rec.hub),
        json!({"hub": rec.hub, "manifest_id": rec.id, "version": rec.version}),
    )
}

/// Submits a manifest as a draft. The document already stored for that version (draft or in
/// force) answers with its record; a changed document replaces a draft of that version; a
/// version that was ever in force is fixed (409: bump the version).
pub async fn submit(
    state: &AppState,
    actor: &Principal,
    hub: &str,
    doc: Manifest,
) -> Result<(ManifestRecord, Outcome), ApiError> {
    rules::may_act_for(actor, hub)?;
    check_manifest(state, hub, &doc).await?;
    let actor = actor.subject.to_string();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let existing =
                    store::manifest_by_version(ctx.client(), &doc.hub, &doc.version, true).await?;
                let now = ctx.now();
                match (rules::on_submit(existing.as_ref(), &doc)?, existing) {
                    (Submission::Unchanged, Some(rec)) => Ok((rec, Outcome::Unchanged)),
                    (Submission::ReplaceDraft, Some(rec)) => {
                        let rec = store::replace_document(ctx.client(), rec.id, &doc, now).await?;
                        let e = manifest_event("manifest.updated", "Updated draft", &rec)?;
                        ctx.append(&actor, vec![e]).await?;
                        Ok((rec, Outcome::Updated))
                    }
                    _ => {
                        let rec = store::insert_manifest(ctx.client(), &doc, &actor, now).await?;
                        let e = manifest_event("manifest.submitted", "Submitted", &rec)?;
                        ctx.append(&actor, vec![e]).await?;
                        Ok((rec, Outcome::Created))
                    }
                }
            })
        })
        .await
}

/// Replaces a draft's document; `if_match` is the entity tag of the revision the caller saw.
pub async fn edit(
    state: &AppState,
    actor: &Principal,
    id: Uuid,
    if_match: Option<String>,
    doc: Manifest,
) -> Result<ManifestRecord, ApiError> {
    let hub = {
        let client = state.pool.get().await?;
        store::require_manifest(&**client, id, false).await?.hub
    };
    rules::may_act_for(actor, &hub)?;
    check_manifest(state, &hub, &doc).await?;
    let actor = actor.subject.to_string();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let rec = store::require_manifest(ctx.client(), id, true).await?;
                etag::check(if_match.as_deref(), rec.revision)?;
                rules::can_edit(&rec, &doc)?;
                if rec.manifest == doc {
                    return Ok(rec);
                }
                let now = ctx.now();
                let rec = store::replace_document(ctx.client(), id, &doc, now).await?;
                let e = manifest_event("manifest.updated", "Updated draft", &rec)?;
                ctx.append(&actor, vec![e]).await?;
                Ok(rec)
            })
        })
        .await
}

/// Puts a draft in force: retires the hub's previous manifest and moves the registered names
/// from it to this one, refusing (409) names another hub holds. All or nothing.
pub async fn activate(
    state: &AppState,
    actor: &Principal,
    id: Uuid,
    if_match: Option<String>,
) -> Result<ManifestRecord, ApiError> {
    let actor = actor.subject.to_string();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let rec = store::require_manifest(ctx.client(), id, true).await?;
                etag::check(if_match.as_deref(), rec.revision)?;
                rules::can_activate(&rec)?;
                let hub = store::require_hub(ctx.client(), &rec.hub, true).await?;
                if hub.kind != rec.manifest.kind {
                    return Err(ApiError::Conflict(format!(
                        "manifest {} declares kind `{}` but hub `{}` is now registered as `{}`; submit a manifest of its kind",
                        rec.id, rec.manifest.kind, hub.name, hub.kind
                    )));
                }
                let declared = rules::declared_types(&rec.manifest);
                let taken = store::taken_by_others(ctx.client(), &rec.hub, &declared).await?;
                rules::refuse_taken(&rec.hub, &taken)?;
                let now = ctx.now();
                let mut events = Vec::new();
                let previous = store::active_record(ctx.client(), &rec.hub, true).await?;
                if let Some(prev) = &previous {
                    store::unregister_types(ctx.client(), prev.id).await?;
                    let prev = store::set_retired(ctx.client(), prev.id, &actor, now).await?;
                    events.push(Draft::system(
                        "manifest.retired",
                        format!("Retired manifest {} of hub {} (replaced by {})", prev.version, prev.hub, rec.version),
                        json!({"hub": prev.hub, "manifest_id": prev.id, "version": prev.version, "replaced_by": rec.id}),
                    )?);
                }
                let active = store::set_active(ctx.client(), id, &actor, now).await?;
                store::register_types(ctx.client(), &active, &declared, now).await?;
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for d in &declared {
                    *counts.entry(d.registry.as_str()).or_default() += 1;
                }
                events.push(Draft::system(
                    "manifest.activated",
                    format!("Activated manifest {} of hub {}", active.version, active.hub),
                    json!({"hub": active.hub, "manifest_id": active.id, "version": active.version,
                           "registered": counts, "replaces": previous.as_ref().map(|p| p.id)}),
                )?);
                ctx.append(&actor, events).await?;
                Ok(active)
            })
        })
        .await
}

/// Retires a draft or the manifest in force; the names it registered are freed.
pub async fn retire(
    state: &AppState,
    actor: &Principal,
    id: Uuid,
    if_match: Option<String>,
) -> Result<ManifestRecord, ApiError> {
    let actor = actor.subject.to_string();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let rec = store::require_manifest(ctx.client(), id, true).await?;
                etag::check(if_match.as_deref(), rec.revision)?;
                rules::can_retire(&rec)?;
                let was = rec.status;
                let freed = if was == ManifestStatus::Active {
                    store::unregister_types(ctx.client(), id).await?
                } else {
                    0
                };
                let now = ctx.now();
                let rec = store::set_retired(ctx.client(), id, &actor, now).await?;
                let summary = format!(
                    "Retired {} manifest {} of hub {}",
                    rules::status_str(was),
                    rec.version,
                    rec.hub
                );
                let detail = json!({"hub": rec.hub, "manifest_id": rec.id, "version": rec.version,
                                    "was": rules::status_str(was), "types_removed": freed});
                ctx.append(
                    &actor,
                    vec![Draft::system("manifest.retired", summary, detail)?],
                )
                .await?;
                Ok(rec)
            })
        })
        .await
}
