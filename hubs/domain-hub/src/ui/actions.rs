//! `/actions`: the manifest's actions, a form for each, and the latest runs.

use crate::actions::{service, store, ActionRequest};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::web;
use hub_core::auth::Principal;
use hub_core::http::problem::ApiError;
use hub_core::web::{PageResult, Pages};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

/// The run form. `request_key` is made when the page is rendered, so sending the same form
/// twice (a double click, a reload) is one run.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RunForm {
    #[serde(default)]
    params: String,
    #[serde(default)]
    decision_id: String,
    #[serde(default)]
    request_key: String,
}

/// `GET /actions`.
pub async fn list(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
) -> PageResult {
    render(&pages, &state, &principal, None, None).await
}

async fn render(
    pages: &Pages,
    state: &AppState,
    principal: &Principal,
    input: Option<(&str, &RunForm)>,
    refused: Option<(StatusCode, String)>,
) -> PageResult {
    let client = state.pool.get().await?;
    let runs = store::newest(&**client, 20).await?;
    let items: Vec<Value> = state
        .manifest
        .actions
        .iter()
        .map(|a| {
            let sent = input.filter(|(name, _)| *name == a.name).map(|(_, f)| f);
            json!({
                "name": a.name, "description": a.description, "capability": a.capability,
                "path": a.path, "scope": a.scope, "requires_decision": a.requires_decision,
                "callable": state.cluster.is_callable(&a.capability),
                "allowed": principal.scopes.iter().any(|s| s.as_str() == a.scope),
                "params": sent.map_or("{}", |f| f.params.as_str()),
                "decision_id": sent.map_or("", |f| f.decision_id.as_str()),
                "request_key": Uuid::now_v7(),
            })
        })
        .collect();
    let mut ctx = super::context(pages, principal);
    ctx.insert("actions", &items);
    ctx.insert("runs", &runs);
    let status = match refused {
        Some((status, message)) => {
            ctx.insert("refusal", &message);
            status
        }
        None => StatusCode::OK,
    };
    Ok(pages.render_status(status, "actions.html", &ctx)?)
}

/// `POST /actions/{name}`.
pub async fn run(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<String>,
    form: web::Form<RunForm>,
) -> PageResult {
    let result = async {
        let params: Value = serde_json::from_str(form.params.trim())
            .map_err(|e| ApiError::field("params", format!("not JSON: {e}")))?;
        let decision_id = match form.decision_id.trim() {
            "" => None,
            d => Some(
                Uuid::parse_str(d)
                    .map_err(|_| ApiError::field("decision_id", "not a decision id"))?,
            ),
        };
        let key = match form.request_key.trim() {
            "" => None,
            k => Some(format!("form:{k}")),
        };
        let req = ActionRequest {
            params,
            decision_id,
        };
        service::run(&state, &principal, &name, &req, key).await
    }
    .await;
    match result {
        Ok(outcome) => Ok(super::see_other(&format!(
            "/actions#run-{}",
            outcome.run.id
        ))),
        Err(e) => {
            let refused = super::refusal(e)?;
            render(
                &pages,
                &state,
                &principal,
                Some((&name, &form)),
                Some(refused),
            )
            .await
        }
    }
}
