//! `/registry`: the hubs with their health, the hub kinds, one hub with its manifests, one
//! manifest rendered for people to review before an admin activates it, and the type registries.

use super::form::{self, Feedback};
use crate::registry::rules::{self, Registry};
use crate::registry::{service, store};
use crate::state::AppState;
use actix_web::web;
use hub_core::api::registry::{Hub, NewHubKind};
use hub_core::auth::{Permission, Principal};
use hub_core::http::problem::ApiError;
use hub_core::web::{PageError, PageResult, Pages};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

/// The add-kind form.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct KindForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

/// The activate and retire forms: the revision the admin reviewed.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct LifecycleForm {
    #[serde(default)]
    version: String,
}

/// `?registry=` of the types page.
#[derive(Debug, Default, Deserialize)]
pub struct TypesQuery {
    #[serde(default)]
    registry: String,
}

/// The context of a registry page: what the viewer may change, so pages offer only the forms
/// the server would accept.
fn context(pages: &Pages, principal: &Principal) -> tera::Context {
    let mut ctx = super::context(pages, principal);
    ctx.insert(
        "can_administer_registry",
        &principal.has(Permission::RegistryAdmin),
    );
    ctx
}

/// `GET /registry`.
pub async fn overview(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
) -> PageResult {
    render_overview(&pages, &state, &principal, None).await
}

async fn render_overview(
    pages: &Pages,
    state: &AppState,
    principal: &Principal,
    feedback: Option<Feedback>,
) -> PageResult {
    let client = state.pool.get().await?;
    let now = chrono::Utc::now();
    let hubs: Vec<Hub> = store::hubs(&**client)
        .await?
        .iter()
        .map(|h| h.at(now))
        .collect();
    let kinds = store::kinds(&**client).await?;
    let mut ctx = context(pages, principal);
    ctx.insert("hubs", &hubs);
    ctx.insert("kinds", &kinds);
    if let Some(f) = &feedback {
        f.apply(&mut ctx);
    }
    Ok(pages.render_status(form::status(feedback.as_ref()), "registry.html", &ctx)?)
}

/// `POST /registry/kinds`: adds a hub kind.
pub async fn add_kind(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    input: web::Form<KindForm>,
) -> PageResult {
    let input = input.into_inner();
    let kind = NewHubKind {
        name: input.name.clone(),
        description: input.description.clone(),
    };
    match service::add_kind(&state, &principal, &kind).await {
        Ok(_) => Ok(form::see_other("/registry")),
        Err(e) => {
            let feedback = Feedback::refused("kind", &input, e, "hub kind")?;
            render_overview(&pages, &state, &principal, Some(feedback)).await
        }
    }
}

/// `GET /registry/hubs/{name}`.
pub async fn hub(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<String>,
) -> PageResult {
    let name = rules::path_hub(&name)?;
    let client = state.pool.get().await?;
    let row = store::require_hub(&**client, name, false).await?;
    let manifests = store::manifests(&**client, name).await?;
    let mut ctx = context(&pages, &principal);
    ctx.insert("hub", &row.at(chrono::Utc::now()));
    ctx.insert("registered_by", &row.registered_by);
    ctx.insert("manifests", &manifests);
    Ok(pages.render("registry_hub.html", &ctx)?)
}

/// `GET /registry/manifests/{id}`.
pub async fn manifest(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> PageResult {
    let id = form::path_id(&id, "manifest")?;
    render_manifest(&pages, &state, &principal, id, None).await
}

async fn render_manifest(
    pages: &Pages,
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    feedback: Option<Feedback>,
) -> PageResult {
    let client = state.pool.get().await?;
    let rec = store::require_manifest(&**client, id, false).await?;
    let mut ctx = context(pages, principal);
    ctx.insert("mf", &rec);
    ctx.insert("doc", &rec.manifest);
    if let Some(f) = &feedback {
        f.apply(&mut ctx);
    }
    Ok(pages.render_status(
        form::status(feedback.as_ref()),
        "registry_manifest.html",
        &ctx,
    )?)
}

/// Answers a lifecycle form: 303 back to the manifest when applied, else the page with why.
async fn answer(
    (pages, state, principal): (&Pages, &AppState, &Principal),
    id: Uuid,
    form_name: &'static str,
    input: &LifecycleForm,
    outcome: Result<hub_core::api::registry::ManifestRecord, ApiError>,
) -> PageResult {
    match outcome {
        Ok(rec) => Ok(form::see_other(&format!("/registry/manifests/{}", rec.id))),
        Err(e) => {
            let feedback = Feedback::refused(form_name, input, e, "manifest")?;
            render_manifest(pages, state, principal, id, Some(feedback)).await
        }
    }
}

/// `POST /registry/manifests/{id}/activate`.
pub async fn activate(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    input: web::Form<LifecycleForm>,
) -> PageResult {
    let id = form::path_id(&id, "manifest")?;
    let outcome = match form::if_match(&input.version) {
        Ok(if_match) => service::activate(&state, &principal, id, if_match).await,
        Err(e) => Err(e),
    };
    let page = (&**pages, &**state, &principal);
    answer(page, id, "activate", &input, outcome).await
}

/// `POST /registry/manifests/{id}/retire`.
pub async fn retire(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    input: web::Form<LifecycleForm>,
) -> PageResult {
    let id = form::path_id(&id, "manifest")?;
    let outcome = match form::if_match(&input.version) {
        Ok(if_match) => service::retire(&state, &principal, id, if_match).await,
        Err(e) => Err(e),
    };
    let page = (&**pages, &**state, &principal);
    answer(page, id, "retire", &input, outcome).await
}

/// `GET /registry/types`.
pub async fn types(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    q: web::Query<TypesQuery>,
) -> PageResult {
    let registry = match q.registry.as_str() {
        "" => None,
        r => Some(Registry::parse(r).ok_or_else(|| {
            PageError(ApiError::BadRequest(format!(
                "registry must be event, widget, annotation_category or policy_scope, not `{r}`"
            )))
        })?),
    };
    let client = state.pool.get().await?;
    let types = store::types(&**client, registry).await?;
    let registries: Vec<_> = Registry::ALL
        .iter()
        .filter(|r| registry.is_none_or(|only| only == **r))
        .map(|r| {
            let entries: Vec<_> = types.iter().filter(|t| t.registry == r.as_str()).collect();
            json!({"name": r.as_str(), "types": entries})
        })
        .collect();
    let mut ctx = context(&pages, &principal);
    ctx.insert("registries", &registries);
    ctx.insert("registry_filter", &q.registry);
    Ok(pages.render("registry_types.html", &ctx)?)
}
