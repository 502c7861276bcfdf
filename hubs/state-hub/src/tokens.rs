//! `/api/v1/tokens` and `/api/v1/whoami`.

use crate::journal::Draft;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use hub_core::api::tokens::{CreatedToken, NewTokenRequest, TokenInfo, WhoAmI};
use hub_core::auth::tokens::{self as store, NewToken, TokenRecord};
use hub_core::auth::{Permission, Principal, Role};
use hub_core::http::problem::{ApiError, FieldError, Problem};
use hub_core::http::ratelimit::Limit;
use hub_core::text;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

/// The listing form of a token record.
pub fn info(r: &TokenRecord) -> TokenInfo {
    TokenInfo {
        id: r.id,
        name: r.name.clone(),
        prefix: r.prefix.clone(),
        subject: r.subject.to_string(),
        kind: r.kind,
        roles: r.roles.iter().copied().collect(),
        scopes: r.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        created_by: r.created_by.clone(),
        created_at: r.created_at,
        expires_at: r.expires_at,
        revoked_at: r.revoked_at,
        last_used_at: r.last_used_at,
        active: r.is_active(chrono::Utc::now()),
    }
}

/// The field problems of a token request: a name, at least one role, a sane expiry.
pub fn field_problems(name: &str, roles: &[Role], expires_in_days: Option<u32>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Err(m) = text::single_line("name", name, 1, 100) {
        errors.push(FieldError::new("name", m));
    }
    if roles.is_empty() {
        errors.push(FieldError::new(
            "roles",
            "at least one role (admin, member, viewer)",
        ));
    }
    if let Some(d) = expires_in_days {
        if !(1..=3650).contains(&d) {
            errors.push(FieldError::new(
                "expires_in_days",
                "must be between 1 and 3650",
            ));
        }
    }
    errors
}

/// Issues a token and writes `token.created`; the secret is returned here and never again
/// (only its hash is stored). Shared by the API and the admin page.
pub async fn issue(
    state: &AppState,
    actor: &Principal,
    client: &actix_web::HttpRequest,
    request: NewTokenRequest,
) -> Result<(SecretString, TokenRecord), ApiError> {
    let ip = hub_core::http::ratelimit::client_ip(client, &state.trusted_proxies)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    state.limiters.check(Limit::TokenIssuePerIp, &ip)?;
    state
        .limiters
        .check(Limit::TokenIssue, actor.subject.as_str())?;
    let errors = field_problems(&request.name, &request.roles, request.expires_in_days);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let new = NewToken {
        name: request.name.trim().to_owned(),
        subject: request.subject,
        kind: request.kind,
        roles: request.roles.into_iter().collect(),
        scopes: request.scopes.into_iter().collect(),
        expires_at: request
            .expires_in_days
            .map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d))),
    };
    let secret = store::generate();
    let stored = SecretString::from(secret.expose_secret().to_owned());
    let actor = actor.subject.to_string();
    let record = state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let r = store::insert(ctx.client(), &new, &stored, &actor).await?;
                let detail = json!({"token_id": r.id, "name": r.name, "subject": r.subject, "kind": r.kind,
                    "roles": r.roles, "scopes": r.scopes, "expires_at": r.expires_at});
                ctx.append(&actor, vec![Draft::system("token.created", format!("API token created: {} for {}", r.name, r.subject), detail)?])
                    .await?;
                Ok(r)
            })
        })
        .await?;
    Ok((secret, record))
}

/// Revokes a token and writes `token.revoked`; effective on its next request on this replica,
/// within seconds on others.
pub async fn revoke_token(
    state: &AppState,
    actor: &Principal,
    id: Uuid,
) -> Result<TokenRecord, ApiError> {
    let actor = actor.subject.to_string();
    let record = state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let r = store::revoke(ctx.client(), id, &actor)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("no token {id}")))?;
                let detail = json!({"token_id": r.id, "name": r.name, "subject": r.subject});
                ctx.append(
                    &actor,
                    vec![Draft::system(
                        "token.revoked",
                        format!("API token revoked: {} ({})", r.name, r.subject),
                        detail,
                    )?],
                )
                .await?;
                Ok(r)
            })
        })
        .await?;
    state.tokens.invalidate();
    Ok(record)
}

/// Create a token. The secret is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn create(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<NewTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let (secret, record) = issue(&state, &principal, &req, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(CreatedToken {
        token: secret.expose_secret().to_owned(),
        info: info(&record),
    }))
}

/// Query of the token listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Include revoked tokens.
    pub include_revoked: Option<bool>,
}

/// List tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(ListQuery),
    responses((status = 200, body = Vec<TokenInfo>)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let c = state.pool.get().await?;
    let records = store::list(&**c, q.include_revoked.unwrap_or(false)).await?;
    Ok(HttpResponse::Ok().json(records.iter().map(info).collect::<Vec<_>>()))
}

/// Revoke a token; effective on its next request on this replica, within seconds on others.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = Uuid, Path, description = "Token id")),
    responses((status = 200, body = TokenInfo), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn revoke(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let record = revoke_token(&state, &principal, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(info(&record)))
}

/// Who the server thinks you are.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "tokens",
    responses((status = 200, body = WhoAmI), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn whoami(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(WhoAmI {
        subject: principal.subject.to_string(),
        kind: principal.kind,
        roles: principal.roles.iter().copied().collect(),
        scopes: principal
            .scopes
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        permissions: Permission::ALL
            .iter()
            .filter(|p| principal.has(**p))
            .map(|p| p.as_str().to_owned())
            .collect(),
    })
}
