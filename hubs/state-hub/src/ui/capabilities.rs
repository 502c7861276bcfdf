//! `/capabilities`: the registry with its request form, and one registration with its contract
//! hash, the lifecycle steps the viewer may take, the credential form for admins (which never
//! shows the value, only its key id), the probe history and a warning when the contract drifted.

use super::form::{self, Feedback};
use crate::capabilities::rules::{self, TransitionSubject};
use crate::capabilities::{service, store};
use crate::state::AppState;
use actix_web::web;
use hub_core::api::capabilities::{
    Capability, CapabilityStatus, CapabilityTransition, NewCapability, ProbeHealth,
};
use hub_core::auth::{Permission, Principal};
use hub_core::http::problem::ApiError;
use hub_core::web::{PageResult, Pages};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Registrations per list page (the registry is small; the API pages through more).
const PAGE_SIZE: i64 = 500;
/// Probes shown on a registration's page.
const PROBES_SHOWN: i64 = 50;

/// The request form.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RequestForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    owning_service: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    health_path: String,
    #[serde(default)]
    contract_path: String,
    /// The contract document as JSON text.
    #[serde(default)]
    contract: String,
    #[serde(default)]
    version: String,
}

/// A lifecycle step.
#[derive(Debug, Deserialize, Serialize)]
pub struct TransitionForm {
    #[serde(default)]
    version: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    note: String,
}

/// The credential form. Not `Serialize` and not `Debug`: the value is never shown again.
#[derive(Deserialize)]
pub struct CredentialForm {
    #[serde(default)]
    version: String,
    credential: SecretString,
}

/// `GET /capabilities`.
pub async fn list(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
) -> PageResult {
    render_list(&pages, &state, &principal, None).await
}

async fn render_list(
    pages: &Pages,
    state: &AppState,
    principal: &Principal,
    feedback: Option<Feedback>,
) -> PageResult {
    let client = state.pool.get().await?;
    let (items, _) = store::page(&**client, None, None, PAGE_SIZE).await?;
    let mut ctx = context(pages, principal);
    ctx.insert("capabilities", &items);
    if let Some(f) = &feedback {
        f.apply(&mut ctx);
    }
    Ok(pages.render_status(form::status(feedback.as_ref()), "capabilities.html", &ctx)?)
}

/// `POST /capabilities`: request a registration.
pub async fn request(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    input: web::Form<RequestForm>,
) -> PageResult {
    let input = input.into_inner();
    let outcome = match serde_json::from_str::<serde_json::Value>(&input.contract) {
        Ok(contract) => {
            let request = NewCapability {
                name: input.name.trim().to_owned(),
                owning_service: input.owning_service.clone(),
                base_url: input.base_url.clone(),
                health_path: input.health_path.trim().to_owned(),
                contract_path: input.contract_path.trim().to_owned(),
                contract,
                version: input.version.clone(),
            };
            service::request(&state, &principal, &request).await
        }
        Err(e) => Err(ApiError::field(
            "contract",
            format!("contract is not JSON: {e}"),
        )),
    };
    match outcome {
        Ok(c) => Ok(form::see_other(&format!("/capabilities/{}", c.name))),
        Err(e) => {
            let feedback = Feedback::refused("request", &input, e, "capability")?;
            render_list(&pages, &state, &principal, Some(feedback)).await
        }
    }
}

/// `GET /capabilities/{name}`.
pub async fn detail(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<String>,
) -> PageResult {
    render_detail(&pages, &state, &principal, &name, None).await
}

/// A lifecycle step offered on the page, or why it is not.
#[derive(Debug, Serialize)]
struct Step {
    to: &'static str,
    allowed: bool,
    why: Option<String>,
}

fn steps(c: &Capability, principal: &Principal) -> Vec<Step> {
    let subject = TransitionSubject {
        name: &c.name,
        status: c.status,
        requested_by: &c.requested_by,
        has_credential: c.credential_key_id.is_some(),
    };
    rules::next_statuses(c.status)
        .iter()
        .map(|to| {
            let verdict = if principal.has(Permission::RegistryWrite) {
                rules::check_transition(&subject, *to, principal)
            } else {
                Err(ApiError::Forbidden("needs registry.write".to_owned()))
            };
            Step {
                to: rules::status_str(*to),
                allowed: verdict.is_ok(),
                why: verdict.err().map(|e| e.to_string()),
            }
        })
        .collect()
}

async fn render_detail(
    pages: &Pages,
    state: &AppState,
    principal: &Principal,
    name: &str,
    feedback: Option<Feedback>,
) -> PageResult {
    let client = state.pool.get().await?;
    let c = store::require(&**client, name, false).await?;
    let probes = store::probes(&**client, c.id, PROBES_SHOWN).await?;
    let live_sha = probes
        .iter()
        .find(|p| p.contract_sha256.is_some())
        .and_then(|p| p.contract_sha256.clone());
    let mut ctx = context(pages, principal);
    ctx.insert("steps", &steps(&c, principal));
    ctx.insert("drifted", &(c.health == ProbeHealth::Drifted));
    ctx.insert("live_sha256", &live_sha);
    ctx.insert(
        "takes_credential",
        &!matches!(
            c.status,
            CapabilityStatus::Rejected | CapabilityStatus::Withdrawn
        ),
    );
    ctx.insert("c", &c);
    ctx.insert("probes", &probes);
    if let Some(f) = &feedback {
        f.apply(&mut ctx);
    }
    Ok(pages.render_status(form::status(feedback.as_ref()), "capability.html", &ctx)?)
}

/// `POST /capabilities/{name}/transition`.
pub async fn transition(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<String>,
    input: web::Form<TransitionForm>,
) -> PageResult {
    let outcome = match (
        form::if_match(&input.version),
        rules::parse_status(input.to.trim()),
    ) {
        (Ok(if_match), Some(to)) => {
            let step = CapabilityTransition {
                to,
                note: form::optional(&input.note),
            };
            service::transition(&state, &principal, &name, if_match, &step).await
        }
        (Err(e), _) => Err(e),
        (_, None) => Err(ApiError::BadRequest(format!(
            "`{}` is not a capability status",
            input.to.chars().take(40).collect::<String>()
        ))),
    };
    match outcome {
        Ok(c) => Ok(form::see_other(&format!("/capabilities/{}", c.name))),
        Err(e) => {
            let feedback = Feedback::refused("transition", &*input, e, "capability")?;
            render_detail(&pages, &state, &principal, &name, Some(feedback)).await
        }
    }
}

/// `POST /capabilities/{name}/credential`: seals and stores the credential.
pub async fn credential(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<String>,
    input: web::Form<CredentialForm>,
) -> PageResult {
    let outcome = match form::if_match(&input.version) {
        Ok(if_match) => {
            service::set_credential(&state, &principal, &name, if_match, &input.credential).await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(c) => Ok(form::see_other(&format!("/capabilities/{}", c.name))),
        Err(e) => {
            // The form comes back empty: the value is never written into a page.
            let shown = json!({ "version": input.version });
            let feedback = Feedback::refused("credential", &shown, e, "capability")?;
            render_detail(&pages, &state, &principal, &name, Some(feedback)).await
        }
    }
}

fn context(pages: &Pages, principal: &Principal) -> tera::Context {
    let mut ctx = super::context(pages, principal);
    ctx.insert("can_request", &principal.has(Permission::RegistryWrite));
    ctx.insert(
        "is_registry_admin",
        &principal.has(Permission::RegistryAdmin),
    );
    ctx
}
