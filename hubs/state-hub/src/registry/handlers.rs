//! `/api/v1/hub-kinds`, `/api/v1/hubs`, `/api/v1/manifests` and `/api/v1/types`.

use super::rules::{self, Registry};
use super::service::{self, Outcome};
use super::store;
use crate::respond::tagged;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use hub_core::api::manifest::Manifest;
use hub_core::api::registry::{
    Heartbeat, Hub, HubKind, HubRegistration, ManifestRecord, NewHubKind, RegisteredType,
};
use hub_core::auth::Principal;
use hub_core::http::etag;
use hub_core::http::problem::{ApiError, Problem};
use serde::Deserialize;
use uuid::Uuid;

fn status_of(outcome: Outcome) -> HttpResponseBuilder {
    match outcome {
        Outcome::Created => HttpResponse::Created(),
        Outcome::Updated | Outcome::Unchanged => HttpResponse::Ok(),
    }
}

/// List hub kinds.
#[utoipa::path(
    get, path = "/api/v1/hub-kinds", tag = "registry",
    responses((status = 200, body = Vec<HubKind>)),
    security(("bearer" = []))
)]
pub async fn list_kinds(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(store::kinds(&**client).await?))
}

/// Add a hub kind (admins). The same kind again is a no-op (200); another description, 409.
#[utoipa::path(
    post, path = "/api/v1/hub-kinds", tag = "registry", request_body = NewHubKind,
    responses((status = 201, body = HubKind), (status = 200, description = "Already there", body = HubKind),
              (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
pub async fn create_kind(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<NewHubKind>,
) -> Result<HttpResponse, ApiError> {
    let (kind, outcome) = service::add_kind(&state, &principal, &body).await?;
    Ok(status_of(outcome).json(kind))
}

/// List hubs with their judged health.
#[utoipa::path(
    get, path = "/api/v1/hubs", tag = "registry",
    responses((status = 200, body = Vec<Hub>)),
    security(("bearer" = []))
)]
pub async fn list_hubs(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let now = chrono::Utc::now();
    let hubs: Vec<Hub> = store::hubs(&**client)
        .await?
        .iter()
        .map(|h| h.at(now))
        .collect();
    Ok(HttpResponse::Ok().json(hubs))
}

/// One hub. Its `ETag` versions the registration (heartbeats do not change it).
#[utoipa::path(
    get, path = "/api/v1/hubs/{name}", tag = "registry",
    params(("name" = String, Path, description = "Hub instance name")),
    responses((status = 200, body = Hub, headers(("ETag" = String))), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn get_hub(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = rules::path_hub(&name)?;
    let client = state.pool.get().await?;
    let row = store::require_hub(&**client, name, false).await?;
    Ok(tagged(
        HttpResponse::Ok(),
        row.version,
        &row.at(chrono::Utc::now()),
    ))
}

/// Register a hub or update its registration (the hub itself, `hub:<name>`, or an admin).
/// 201 the first time, 200 after; the kind must have been added by an admin.
#[utoipa::path(
    put, path = "/api/v1/hubs/{name}", tag = "registry", request_body = HubRegistration,
    params(("name" = String, Path, description = "Hub instance name"),
           ("If-Match" = Option<String>, Header, description = "ETag of the registration you saw")),
    responses((status = 201, body = Hub), (status = 200, body = Hub), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
pub async fn put_hub(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Json<HubRegistration>,
) -> Result<HttpResponse, ApiError> {
    let (hub, version, outcome) =
        service::register(&state, &principal, &name, etag::if_match(&req), &body).await?;
    let mut res = status_of(outcome);
    if outcome == Outcome::Created {
        res.insert_header((header::LOCATION, format!("/api/v1/hubs/{}", hub.name)));
    }
    Ok(tagged(res, version, &hub))
}

/// Heartbeat: the hub's own view of its health. Only a change of status is journaled.
#[utoipa::path(
    post, path = "/api/v1/hubs/{name}/heartbeat", tag = "registry", request_body = Heartbeat,
    params(("name" = String, Path, description = "Hub instance name")),
    responses((status = 204, description = "Recorded"), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
pub async fn heartbeat(
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<String>,
    body: web::Json<Heartbeat>,
) -> Result<HttpResponse, ApiError> {
    let name = rules::path_hub(&name)?;
    service::heartbeat(&state, &principal, name, &body).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Submit a manifest as a draft (the hub itself or an admin). Every problem is reported at once
/// (422). The same document again answers 200 with the stored record; a changed document
/// replaces a draft of its version; a version that was ever active is fixed (409).
#[utoipa::path(
    post, path = "/api/v1/hubs/{name}/manifests", tag = "registry", request_body = Manifest,
    params(("name" = String, Path, description = "Hub instance name")),
    responses((status = 201, body = ManifestRecord), (status = 200, description = "Already stored, or the draft updated", body = ManifestRecord),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)),
    security(("bearer" = []))
)]
pub async fn submit_manifest(
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<String>,
    body: web::Json<Manifest>,
) -> Result<HttpResponse, ApiError> {
    let name = rules::path_hub(&name)?;
    let (rec, outcome) = service::submit(&state, &principal, name, body.into_inner()).await?;
    let mut res = status_of(outcome);
    if outcome == Outcome::Created {
        res.insert_header((header::LOCATION, format!("/api/v1/manifests/{}", rec.id)));
    }
    Ok(tagged(res, rec.revision, &rec))
}

/// A hub's manifests, newest first.
#[utoipa::path(
    get, path = "/api/v1/hubs/{name}/manifests", tag = "registry",
    params(("name" = String, Path, description = "Hub instance name")),
    responses((status = 200, body = Vec<ManifestRecord>), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_manifests(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = rules::path_hub(&name)?;
    let client = state.pool.get().await?;
    store::require_hub(&**client, name, false).await?;
    Ok(HttpResponse::Ok().json(store::manifests(&**client, name).await?))
}

/// The hub's manifest in force, or 404.
#[utoipa::path(
    get, path = "/api/v1/hubs/{name}/manifest/active", tag = "registry",
    params(("name" = String, Path, description = "Hub instance name")),
    responses((status = 200, body = ManifestRecord, headers(("ETag" = String))), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn active_manifest(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = rules::path_hub(&name)?;
    let client = state.pool.get().await?;
    store::require_hub(&**client, name, false).await?;
    let rec = store::active_record(&**client, name, false)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("hub `{name}` has no active manifest")))?;
    Ok(tagged(HttpResponse::Ok(), rec.revision, &rec))
}

/// One manifest.
#[utoipa::path(
    get, path = "/api/v1/manifests/{id}", tag = "registry",
    params(("id" = Uuid, Path, description = "Manifest id")),
    responses((status = 200, body = ManifestRecord, headers(("ETag" = String))), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn get_manifest(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let rec = store::require_manifest(&**client, *id, false).await?;
    Ok(tagged(HttpResponse::Ok(), rec.revision, &rec))
}

/// Replace a draft's document (the hub itself or an admin); 409 once it is active or retired.
#[utoipa::path(
    put, path = "/api/v1/manifests/{id}", tag = "registry", request_body = Manifest,
    params(("id" = Uuid, Path, description = "Manifest id"),
           ("If-Match" = Option<String>, Header, description = "ETag of the revision you saw")),
    responses((status = 200, body = ManifestRecord), (status = 403, body = Problem), (status = 409, body = Problem),
              (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
pub async fn put_manifest(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<Manifest>,
) -> Result<HttpResponse, ApiError> {
    let rec = service::edit(
        &state,
        &principal,
        *id,
        etag::if_match(&req),
        body.into_inner(),
    )
    .await?;
    Ok(tagged(HttpResponse::Ok(), rec.revision, &rec))
}

/// Activate a draft (admins): retires the hub's previous manifest and registers the declared
/// types; 409 naming every name another hub already holds, and then nothing changes.
#[utoipa::path(
    post, path = "/api/v1/manifests/{id}/activate", tag = "registry",
    params(("id" = Uuid, Path, description = "Manifest id"),
           ("If-Match" = Option<String>, Header, description = "ETag of the revision you saw")),
    responses((status = 200, body = ManifestRecord), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = []))
)]
pub async fn activate(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let rec = service::activate(&state, &principal, *id, etag::if_match(&req)).await?;
    Ok(tagged(HttpResponse::Ok(), rec.revision, &rec))
}

/// Retire a draft or the active manifest (admins); its types leave the registries.
#[utoipa::path(
    post, path = "/api/v1/manifests/{id}/retire", tag = "registry",
    params(("id" = Uuid, Path, description = "Manifest id"),
           ("If-Match" = Option<String>, Header, description = "ETag of the revision you saw")),
    responses((status = 200, body = ManifestRecord), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = []))
)]
pub async fn retire(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let rec = service::retire(&state, &principal, *id, etag::if_match(&req)).await?;
    Ok(tagged(HttpResponse::Ok(), rec.revision, &rec))
}

/// Query of the type listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TypesQuery {
    /// Only this registry: `event`, `widget`, `annotation_category` or `policy_scope`.
    pub registry: Option<String>,
}

/// The type registries: names declared by active manifests.
#[utoipa::path(
    get, path = "/api/v1/types", tag = "registry", params(TypesQuery),
    responses((status = 200, body = Vec<RegisteredType>), (status = 400, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_types(
    state: web::Data<AppState>,
    q: web::Query<TypesQuery>,
) -> Result<HttpResponse, ApiError> {
    let registry = q
        .registry
        .as_deref()
        .map(|r| {
            Registry::parse(r).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "registry must be event, widget, annotation_category or policy_scope, not `{r}`"
                ))
            })
        })
        .transpose()?;
    let client = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(store::types(&**client, registry).await?))
}
