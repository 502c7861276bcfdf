//! `/api/v1/capabilities` and `/api/v1/secrets`.

use super::{service, store};
use crate::respond::{self, tagged};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use hub_core::api::capabilities::{
    CallableList, Capability, CapabilityStatus, CapabilityTransition, CredentialInput,
    NewCapability, Probe, RotationReport, SecretsRecipient,
};
use hub_core::api::Page;
use hub_core::auth::Principal;
use hub_core::http::problem::{ApiError, Problem};
use hub_core::http::{cursor, etag};
use serde::Deserialize;

/// Cursor kind of capability listings.
const CURSOR_KIND: &str = "capabilities";

/// Request a capability registration; it starts as `requested`.
#[utoipa::path(
    post, path = "/api/v1/capabilities", tag = "capabilities", request_body = NewCapability,
    responses((status = 201, body = Capability, headers(("ETag" = String))), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<NewCapability>,
) -> Result<HttpResponse, ApiError> {
    let c = service::request(&state, &principal, &body).await?;
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, format!("/api/v1/capabilities/{}", c.name)));
    Ok(tagged(res, c.revision, &c))
}

/// Query of the capability listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this status.
    pub status: Option<CapabilityStatus>,
    /// Cursor from a previous page.
    pub after: Option<String>,
    /// Page size, 1–500.
    pub limit: Option<i64>,
}

/// List registrations by name (never their credentials).
#[utoipa::path(
    get, path = "/api/v1/capabilities", tag = "capabilities", params(ListQuery),
    responses((status = 200, body = Page<Capability>), (status = 400, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = respond::limit(q.limit)?;
    let after = q
        .after
        .as_deref()
        .map(|c| cursor::decode(CURSOR_KIND, c))
        .transpose()?;
    let client = state.pool.get().await?;
    let (items, next) = store::page(&**client, q.status, after.as_deref(), limit).await?;
    let next = next.map(|name| cursor::encode(CURSOR_KIND, &name));
    Ok(HttpResponse::Ok().json(Page { items, next }))
}

/// One registration (its credential only as `credential_key_id`).
#[utoipa::path(
    get, path = "/api/v1/capabilities/{name}", tag = "capabilities",
    params(("name" = String, Path, description = "Capability name")),
    responses((status = 200, body = Capability, headers(("ETag" = String))), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let c = store::require(&**client, &name, false).await?;
    Ok(tagged(HttpResponse::Ok(), c.revision, &c))
}

/// The registered contract, byte for byte the canonical JSON its `contract_sha256` is computed over.
#[utoipa::path(
    get, path = "/api/v1/capabilities/{name}/contract", tag = "capabilities",
    params(("name" = String, Path, description = "Capability name")),
    responses((status = 200, description = "The contract document", content_type = "application/json", body = Object), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn contract(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let text = store::contract(&**client, &name).await?;
    let sha = super::rules::sha256_hex(text.as_bytes());
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ETAG, format!("\"sha256:{sha}\"")))
        .body(text))
}

/// Move a registration along `requested → accepted → in_progress → ready_for_review → completed`
/// (or `rejected`, `withdrawn`). Accept, reject and complete need registry.admin; completing is
/// a review by a person other than the requester and needs a credential set.
#[utoipa::path(
    post, path = "/api/v1/capabilities/{name}/transition", tag = "capabilities", request_body = CapabilityTransition,
    params(("name" = String, Path, description = "Capability name"), ("If-Match" = Option<String>, Header, description = "ETag of the version you saw")),
    responses((status = 200, body = Capability), (status = 403, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, description = "Invalid note or target status", body = Problem)),
    security(("bearer" = []))
)]
pub async fn transition(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Json<CapabilityTransition>,
) -> Result<HttpResponse, ApiError> {
    let c = service::transition(&state, &principal, &name, etag::if_match(&req), &body).await?;
    Ok(tagged(HttpResponse::Ok(), c.revision, &c))
}

/// Set the credential: a bearer token in clear text, or an age file sealed to the hub's
/// recipient. Only its sealed form is stored; responses show its key id, never the value.
#[utoipa::path(
    put, path = "/api/v1/capabilities/{name}/credential", tag = "capabilities", request_body = CredentialInput,
    params(("name" = String, Path, description = "Capability name"), ("If-Match" = Option<String>, Header, description = "ETag of the version you saw")),
    responses((status = 200, body = Capability), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
pub async fn set_credential(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Json<CredentialInput>,
) -> Result<HttpResponse, ApiError> {
    let c = service::set_credential(
        &state,
        &principal,
        &name,
        etag::if_match(&req),
        &body.credential,
    )
    .await?;
    Ok(tagged(HttpResponse::Ok(), c.revision, &c))
}

/// Query of the probe history.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProbesQuery {
    /// Most probes returned, 1–500 (newest first).
    pub limit: Option<i64>,
}

/// The probe history of a registration, newest first (the newest 500 are kept).
#[utoipa::path(
    get, path = "/api/v1/capabilities/{name}/probes", tag = "capabilities",
    params(("name" = String, Path, description = "Capability name"), ProbesQuery),
    responses((status = 200, body = Vec<Probe>), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn probes(
    state: web::Data<AppState>,
    name: web::Path<String>,
    q: web::Query<ProbesQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = respond::limit(q.limit)?;
    Ok(HttpResponse::Ok().json(service::probes(&state, &name, limit).await?))
}

/// What the caller may call: a hub (`hub:<name>`) gets the completed registrations its active
/// manifest uses, with credentials; an admin gets every completed one without credentials.
#[utoipa::path(
    get, path = "/api/v1/capabilities/callable", tag = "capabilities",
    responses((status = 200, body = CallableList), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn callable(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    let list = service::callable(&state, &principal).await?;
    // The body holds credentials: no cache anywhere may keep it.
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(list))
}

/// The state hub's age recipient: seal credentials to it with `hubctl secret encrypt -r` or `age -r`.
#[utoipa::path(
    get, path = "/api/v1/secrets/recipient", tag = "secrets",
    responses((status = 200, body = SecretsRecipient), (status = 409, body = Problem)),
    security(("bearer" = []))
)]
pub async fn recipient(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(service::recipient(&state)?))
}

/// Re-seal every stored credential to the current identity (the first of `[secrets] age_identity_files`).
#[utoipa::path(
    post, path = "/api/v1/secrets/rotate", tag = "secrets",
    responses((status = 200, body = RotationReport), (status = 409, body = Problem)),
    security(("bearer" = []))
)]
pub async fn rotate(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(service::rotate(&state, &principal).await?))
}
