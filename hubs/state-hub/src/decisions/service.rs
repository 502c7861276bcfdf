//! The decision operations, shared by the REST handlers and the web pages: each validates its
//! input, applies the lifecycle rules to the locked row and writes its journal event in the same
//! transaction, so a refusal or a failure leaves nothing behind whichever surface asked.

use super::{rules, store};
use crate::journal::Draft;
use crate::respond;
use crate::state::AppState;
use hub_core::api::decisions::{
    Decision, DecisionStatus, NewDecision, OutcomeInput, SupersedeRequest,
};
use hub_core::auth::Principal;
use hub_core::http::etag;
use hub_core::http::problem::ApiError;
use serde_json::json;
use uuid::Uuid;

/// The event a new decision writes: `decision.proposed`, or `decision.recorded` when it
/// arrives already made.
pub(crate) fn proposed_event(d: &Decision) -> Result<Draft, ApiError> {
    let (kind, verb) = if d.outcome.is_some() {
        ("decision.recorded", "Recorded")
    } else {
        ("decision.proposed", "Proposed")
    };
    Ok(Draft::system(
        kind,
        format!("{verb} decision: {}", d.title),
        json!({"title": d.title, "options": d.options, "task_ids": d.task_ids, "outcome": d.outcome, "supersedes": d.supersedes}),
    )?
    .decision(d.id))
}

/// Proposes a decision (or records one already made, when `input` carries an outcome).
pub async fn propose(
    state: &AppState,
    actor: &Principal,
    input: &NewDecision,
) -> Result<Decision, ApiError> {
    let proposal = rules::validate_proposal(input, "")?;
    let actor = actor.subject.to_string();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let now = ctx.now();
                let d = store::insert(ctx.client(), &proposal, &actor, now, None).await?;
                ctx.append(&actor, vec![proposed_event(&d)?]).await?;
                Ok(d)
            })
        })
        .await
}

/// Escalates an open decision; `if_match` is the entity tag of the version the caller saw.
pub async fn escalate(
    state: &AppState,
    actor: &Principal,
    id: Uuid,
    if_match: Option<String>,
    reason: &str,
) -> Result<Decision, ApiError> {
    let reason = respond::reason("reason", reason)?;
    let actor = actor.subject.to_string();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let d = store::require(ctx.client(), id, true).await?;
                etag::check(if_match.as_deref(), d.version)?;
                rules::can_escalate(&d)?;
                let now = ctx.now();
                store::escalate(ctx.client(), id, &actor, &reason, now).await?;
                let summary = format!("Escalated decision: {}", d.title);
                ctx.append(
                    &actor,
                    vec![
                        Draft::system("decision.escalated", summary, json!({"reason": reason}))?
                            .decision(id),
                    ],
                )
                .await?;
                store::require(ctx.client(), id, false).await
            })
        })
        .await
}

/// Records the outcome; for an escalated decision this is the approval, which the two-person
/// rule reserves to a person other than the proposer.
pub async fn resolve(
    state: &AppState,
    actor: &Principal,
    id: Uuid,
    if_match: Option<String>,
    input: OutcomeInput,
) -> Result<Decision, ApiError> {
    let principal = actor.clone();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let d = store::require(ctx.client(), id, true).await?;
                etag::check(if_match.as_deref(), d.version)?;
                rules::can_resolve(&d, &principal)?;
                let outcome = rules::validate_outcome(&input, &d.options)?;
                let actor = principal.subject.to_string();
                let now = ctx.now();
                store::resolve(ctx.client(), id, &outcome, &actor, now).await?;
                let approved = d.status == DecisionStatus::Escalated;
                let summary = format!("Resolved decision: {} → {}", d.title, outcome.choice);
                let detail = json!({"choice": outcome.choice, "rationale": outcome.rationale, "approval": approved, "proposed_by": d.proposed_by});
                ctx.append(&actor, vec![Draft::system("decision.resolved", summary, detail)?.decision(id)]).await?;
                store::require(ctx.client(), id, false).await
            })
        })
        .await
}

/// Replaces a decision with a new proposal; returns the replacement. The old one becomes
/// `superseded`.
pub async fn supersede(
    state: &AppState,
    actor: &Principal,
    id: Uuid,
    if_match: Option<String>,
    input: &SupersedeRequest,
) -> Result<Decision, ApiError> {
    let (reason, proposal) = validate_supersede(input)?;
    let principal = actor.clone();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let old = store::require(ctx.client(), id, true).await?;
                etag::check(if_match.as_deref(), old.version)?;
                rules::can_supersede(&old, &principal)?;
                let actor = principal.subject.to_string();
                let now = ctx.now();
                let new = store::insert(ctx.client(), &proposal, &actor, now, Some(id)).await?;
                store::supersede(ctx.client(), id, new.id).await?;
                let summary = format!("Superseded decision: {} (by {})", old.title, new.title);
                let events = vec![
                    proposed_event(&new)?,
                    Draft::system(
                        "decision.superseded",
                        summary,
                        json!({"superseded_by": new.id, "reason": reason}),
                    )?
                    .decision(id),
                ];
                ctx.append(&actor, events).await?;
                Ok(new)
            })
        })
        .await
}

/// The reason and the replacement, with every invalid field reported at once.
fn validate_supersede(input: &SupersedeRequest) -> Result<(String, rules::Proposal), ApiError> {
    let reason = respond::reason("reason", &input.reason);
    let proposal = rules::validate_proposal(&input.replacement, "replacement.");
    match (reason, proposal) {
        (Ok(r), Ok(p)) => Ok((r, p)),
        (r, p) => Err(respond::merge_failures(
            [r.err(), p.err()].into_iter().flatten(),
        )),
    }
}

/// Links a task; while the decision is escalated, the task is blocked. Linking twice is a no-op.
pub async fn link_task(
    state: &AppState,
    actor: &Principal,
    id: Uuid,
    task_id: Uuid,
) -> Result<Decision, ApiError> {
    let actor = actor.subject.to_string();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let d = store::require(ctx.client(), id, true).await?;
                rules::can_link(&d)?;
                if d.task_ids.contains(&task_id) {
                    return Ok(d);
                }
                store::link_tasks(ctx.client(), id, &[task_id], &actor).await?;
                store::touch(ctx.client(), id).await?;
                let summary = format!("Linked task to decision: {}", d.title);
                ctx.append(
                    &actor,
                    vec![Draft::system("decision.linked", summary, json!({}))?
                        .decision(id)
                        .task(task_id)],
                )
                .await?;
                store::require(ctx.client(), id, false).await
            })
        })
        .await
}
