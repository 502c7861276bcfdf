//! Running an action: the checks that must pass before anything reaches the cluster (scope,
//! callable capability, approved decision), the call, and its record.

use super::store::{self, Finish, NewRun};
use super::{ActionRequest, ActionRun};
use crate::state::AppState;
use crate::state_hub::StateHubError;
use hub_core::api::decisions::DecisionStatus;
use hub_core::api::manifest::ActionDecl;
use hub_core::auth::{Principal, Scope};
use hub_core::capability::CapabilityError;
use hub_core::http::problem::ApiError;
use serde_json::{json, Value};
use uuid::Uuid;

/// Largest `params` object sent to the cluster.
const MAX_PARAMS_BYTES: usize = 64 * 1024;

/// A run and whether it was recorded before (a retried request).
#[derive(Debug)]
pub struct Outcome {
    /// The run.
    pub run: ActionRun,
    /// True when the request repeated one that had already executed.
    pub replayed: bool,
}

/// Checks and runs action `name` for `principal`. `key` (the caller's Idempotency-Key, else the
/// decision) makes a retried request the same run: it executes at most once.
pub async fn run(
    state: &AppState,
    principal: &Principal,
    name: &str,
    req: &ActionRequest,
    key: Option<String>,
) -> Result<Outcome, ApiError> {
    let action = state
        .manifest
        .action(name)
        .ok_or_else(|| ApiError::NotFound(format!("this hub has no action `{name}`")))?;
    check_scope(action, principal)?;
    check_params(&req.params)?;
    if action.requires_decision && req.decision_id.is_none() {
        return Err(ApiError::Conflict(format!(
            "the action `{name}` needs an approved decision: propose it in the state hub, have \
             someone else approve (resolve) it, and send its id as decision_id"
        )));
    }
    let request_key = key
        .or_else(|| req.decision_id.map(|d| format!("decision:{d}")))
        .unwrap_or_else(|| format!("once:{}", Uuid::now_v7()));
    let existing = {
        let client = state.pool.get().await?;
        store::find(&**client, name, &request_key).await?
    };
    if let Some(run) = &existing {
        if run.params != req.params || run.decision_id != req.decision_id {
            return Err(ApiError::Conflict(format!(
                "this request key was used for run {} with other params or another decision",
                run.id
            )));
        }
        if run.status == "executed" {
            return Ok(Outcome {
                run: run.clone(),
                replayed: true,
            });
        }
    }
    if !state.cluster.is_callable(&action.capability) {
        return Err(ApiError::Conflict(format!(
            "capability `{}` is not callable: the state hub lists no completed registration of \
             it for this hub; nothing was sent to the cluster",
            action.capability
        )));
    }
    if let Some(decision) = req.decision_id {
        check_decision(state, decision).await?;
    }
    let run = match existing {
        Some(run) => run,
        None => {
            let client = state.pool.get().await?;
            store::insert_pending(
                &**client,
                &NewRun {
                    id: Uuid::now_v7(),
                    action: name,
                    request_key: &request_key,
                    params: &req.params,
                    decision_id: req.decision_id,
                    caller: principal.subject.as_str(),
                },
            )
            .await?
        }
    };
    if run.status == "executed" {
        return Ok(Outcome {
            run,
            replayed: true,
        });
    }
    execute(state, action, principal, run).await
}

fn check_scope(action: &ActionDecl, principal: &Principal) -> Result<(), ApiError> {
    let allowed = Scope::parse(&action.scope)
        .map(|s| principal.scopes.contains(&s))
        .unwrap_or(false);
    if allowed {
        Ok(())
    } else {
        tracing::info!(subject = %principal.subject, action = %action.name, scope = %action.scope, "action refused: scope missing");
        Err(ApiError::Forbidden(format!(
            "{} lacks the scope `{}` the action `{}` requires",
            principal.subject, action.scope, action.name
        )))
    }
}

fn check_params(params: &Value) -> Result<(), ApiError> {
    if !params.is_object() {
        return Err(ApiError::field("params", "must be a JSON object"));
    }
    if serde_json::to_vec(params).map_or(0, |v| v.len()) > MAX_PARAMS_BYTES {
        return Err(ApiError::field(
            "params",
            format!("must serialize to at most {MAX_PARAMS_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// The decision must exist in the state hub and be resolved; when the state hub cannot say,
/// nothing is sent.
async fn check_decision(state: &AppState, id: Uuid) -> Result<(), ApiError> {
    match state.state_hub.decision(id).await {
        Ok(Some(d)) if d.status == DecisionStatus::Resolved => Ok(()),
        Ok(Some(d)) => Err(ApiError::Conflict(format!(
            "decision {id} is {}, not resolved: it must be approved before this action runs; \
             nothing was sent to the cluster",
            d.status.as_str()
        ))),
        Ok(None) => Err(ApiError::Conflict(format!(
            "the state hub has no decision {id}; nothing was sent to the cluster"
        ))),
        Err(e) => {
            tracing::warn!(decision = %id, error = %e, "cannot check a decision");
            Err(ApiError::Unavailable(format!(
                "the state hub cannot confirm that decision {id} is approved ({}); nothing was \
                 sent to the cluster, try again when it answers",
                short(&e)
            )))
        }
    }
}

fn short(e: &StateHubError) -> String {
    match e {
        StateHubError::Unreachable(_) => "it is unreachable".to_owned(),
        StateHubError::Status { status, .. } => format!("it answered HTTP {status}"),
        StateHubError::Decode(_) => "its answer cannot be read".to_owned(),
        StateHubError::Config(_) => "the client is misconfigured".to_owned(),
    }
}

/// Calls the capability with the run's idempotency key and records the outcome and its event in
/// one transaction.
async fn execute(
    state: &AppState,
    action: &ActionDecl,
    principal: &Principal,
    run: ActionRun,
) -> Result<Outcome, ApiError> {
    let cluster_key = format!("{}:action:{}", state.outbox.hub(), run.id);
    let result = state
        .cluster
        .client
        .post(
            &action.capability,
            &action.path,
            &run.params,
            Some(&cluster_key),
        )
        .await;
    let caller = principal.subject.as_str();
    let hub = state.outbox.hub().to_owned();
    let (finish_status, response_status, response, error) = match &result {
        Ok(r) => (
            "executed",
            Some(i32::from(r.status)),
            Some(
                serde_json::from_slice::<Value>(&r.body)
                    .unwrap_or_else(|_| json!({"text": String::from_utf8_lossy(&r.body)})),
            ),
            None,
        ),
        Err(e) => (
            "failed",
            match e {
                CapabilityError::Status(s) => Some(i32::from(*s)),
                _ => None,
            },
            None,
            Some(e.to_string()),
        ),
    };
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let finished = store::finish(
        &*tx,
        run.id,
        &Finish {
            status: finish_status,
            response_status,
            response: response.as_ref(),
            error: error.as_deref(),
        },
    )
    .await?;
    let decided = run
        .decision_id
        .map(|d| format!(" (decision {d})"))
        .unwrap_or_default();
    let detail = json!({
        "run_id": run.id, "action": action.name, "capability": action.capability,
        "path": action.path, "params": run.params, "decision_id": run.decision_id,
        "response_status": response_status, "error": error,
    });
    let event = match &result {
        Ok(_) => state.outbox.event(
            "action.executed",
            format!("{caller} ran {} on {hub}{decided}", action.name),
            caller,
            detail,
        )?,
        Err(e) => state.outbox.event(
            "action.failed",
            format!("{caller} ran {} on {hub}{decided}: {e}", action.name),
            caller,
            detail,
        )?,
    };
    state.outbox.enqueue(&*tx, &event, None).await?;
    tx.commit().await?;
    state.outbox.wake();
    match result {
        Ok(_) => {
            tracing::info!(action = %action.name, run = %run.id, caller, "action executed");
            Ok(Outcome {
                run: finished,
                replayed: false,
            })
        }
        Err(e) => {
            tracing::warn!(action = %action.name, run = %run.id, caller, error = %e, "action failed");
            Err(refusal(&e, run.id))
        }
    }
}

/// The answer to a run the cluster did not accept; a retry with the same request key sends it
/// again under the same idempotency key.
fn refusal(e: &CapabilityError, run: Uuid) -> ApiError {
    match e {
        CapabilityError::UnknownCapability(_) => ApiError::Conflict(format!(
            "run {run} failed: {e}; nothing was sent to the cluster"
        )),
        CapabilityError::Status(s) if *s < 500 => {
            ApiError::Conflict(format!("run {run} failed: the cluster refused it ({e})"))
        }
        _ => ApiError::Unavailable(format!(
            "run {run} failed: {e}; retry with the same request to send it again"
        )),
    }
}
