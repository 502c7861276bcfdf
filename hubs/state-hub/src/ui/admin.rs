//! `/admin`: API tokens, everyone's sessions, the users and the role mapping. Admins only: the
//! routes need `tokens.manage` or `sessions.manage`, which only the admin role grants.

use super::form::{self, Feedback};
use crate::state::AppState;
use crate::tokens;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web;
use hub_core::api::tokens::NewTokenRequest;
use hub_core::auth::tokens as token_store;
use hub_core::auth::{Principal, PrincipalKind, Role, Scope, Subject};
use hub_core::http::problem::{ApiError, FieldError};
use hub_core::identity::{admin, sessions, users, IdentityService};
use hub_core::web::{PageResult, Pages};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Most rows an admin list shows.
const LIST_LIMIT: i64 = 1000;

/// `GET /admin`: counts and links.
pub async fn overview(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
) -> PageResult {
    let client = state.pool.get().await?;
    let now = chrono::Utc::now();
    let active_tokens = token_store::list(&**client, false)
        .await?
        .iter()
        .filter(|t| t.is_active(now))
        .count();
    let active_sessions = sessions::list_active(&**client, None, LIST_LIMIT)
        .await?
        .len();
    let people = users::list(&**client, LIST_LIMIT).await?.len();
    let mut ctx = super::context(&pages, &principal);
    ctx.insert(
        "counts",
        &json!({"tokens": active_tokens, "sessions": active_sessions, "users": people}),
    );
    Ok(pages.render("admin.html", &ctx)?)
}

/// `?all=1` shows revoked tokens too.
#[derive(Debug, Default, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    all: String,
}

/// The new-token form.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    kind: String,
    /// Role checkboxes: present when ticked.
    #[serde(default)]
    role_admin: Option<String>,
    #[serde(default)]
    role_member: Option<String>,
    #[serde(default)]
    role_viewer: Option<String>,
    /// Scopes separated by spaces, commas or lines.
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    expires_in_days: String,
}

/// `GET /admin/tokens`.
pub async fn tokens(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    q: web::Query<TokenQuery>,
) -> PageResult {
    render_tokens(&pages, &state, &principal, !q.all.is_empty(), None).await
}

async fn render_tokens(
    pages: &Pages,
    state: &AppState,
    principal: &Principal,
    include_revoked: bool,
    feedback: Option<Feedback>,
) -> PageResult {
    let client = state.pool.get().await?;
    let records = token_store::list(&**client, include_revoked).await?;
    let rows: Vec<_> = records.iter().map(tokens::info).collect();
    let mut ctx = super::context(pages, principal);
    ctx.insert("tokens", &rows);
    ctx.insert("include_revoked", &include_revoked);
    if let Some(f) = &feedback {
        f.apply(&mut ctx);
    }
    Ok(pages.render_status(form::status(feedback.as_ref()), "admin_tokens.html", &ctx)?)
}

/// The form as the API's request, or every field that is wrong.
fn token_request(input: &TokenForm) -> Result<NewTokenRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let subject = Subject::parse(input.subject.trim())
        .map_err(|m| errors.push(FieldError::new("subject", m)))
        .ok();
    let kind = PrincipalKind::parse(input.kind.trim())
        .ok_or_else(|| errors.push(FieldError::new("kind", "choose human or service")))
        .ok();
    let roles: Vec<Role> = [
        (Role::Admin, &input.role_admin),
        (Role::Member, &input.role_member),
        (Role::Viewer, &input.role_viewer),
    ]
    .into_iter()
    .filter(|(_, ticked)| ticked.is_some())
    .map(|(role, _)| role)
    .collect();
    let mut scopes = Vec::new();
    for raw in input
        .scopes
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
    {
        match Scope::parse(raw) {
            Ok(s) => scopes.push(s),
            Err(m) => errors.push(FieldError::new("scopes", m)),
        }
    }
    let expires_in_days = match form::optional(&input.expires_in_days) {
        None => None,
        Some(d) => d
            .parse::<u32>()
            .map_err(|_| {
                errors.push(FieldError::new(
                    "expires_in_days",
                    "must be a whole number of days",
                ))
            })
            .ok(),
    };
    match (subject, kind) {
        (Some(subject), Some(kind)) if errors.is_empty() => Ok(NewTokenRequest {
            name: input.name.clone(),
            subject,
            kind,
            roles,
            scopes,
            expires_in_days,
        }),
        _ => {
            // The checks the service makes, so one answer names every problem.
            errors.extend(tokens::field_problems(&input.name, &roles, expires_in_days));
            Err(errors)
        }
    }
}

/// `POST /admin/tokens`: issues a token and shows its secret, this once. The page is the POST's
/// answer rather than a redirect: the secret must not travel in a URL or be stored to be shown
/// later, and `no-store` keeps it out of the browser's cache.
pub async fn create_token(
    req: actix_web::HttpRequest,
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    input: web::Form<TokenForm>,
) -> PageResult {
    let input = input.into_inner();
    let outcome = match token_request(&input) {
        Ok(request) => tokens::issue(&state, &principal, &req, request).await,
        Err(errors) => Err(ApiError::Validation(errors)),
    };
    match outcome {
        Ok((secret, record)) => {
            let mut ctx = super::context(&pages, &principal);
            ctx.insert("secret", secret.expose_secret());
            ctx.insert("token", &tokens::info(&record));
            let mut res = pages.render("admin_token_created.html", &ctx)?;
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(res)
        }
        Err(e) => {
            let feedback = Feedback::refused("token", &input, e, "token")?;
            render_tokens(&pages, &state, &principal, false, Some(feedback)).await
        }
    }
}

/// `POST /admin/tokens/{id}/revoke`.
pub async fn revoke_token(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> PageResult {
    let id = form::path_id(&id, "token")?;
    tokens::revoke_token(&state, &principal, id).await?;
    Ok(form::see_other("/admin/tokens"))
}

/// `GET /admin/sessions`: everyone's active sessions.
pub async fn sessions(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
) -> PageResult {
    render_sessions(&pages, &state, &principal, None).await
}

async fn render_sessions(
    pages: &Pages,
    state: &AppState,
    principal: &Principal,
    feedback: Option<Feedback>,
) -> PageResult {
    let client = state.pool.get().await?;
    let rows = sessions::list_active(&**client, None, LIST_LIMIT).await?;
    let mut ctx = super::context(pages, principal);
    ctx.insert("sessions", &rows);
    ctx.insert("current_session", &principal.session.as_ref().map(|s| s.id));
    if let Some(f) = &feedback {
        f.apply(&mut ctx);
    }
    Ok(pages.render_status(form::status(feedback.as_ref()), "admin_sessions.html", &ctx)?)
}

/// `POST /admin/sessions/{id}/revoke`: through the identity API's own revoke, so the session
/// ends and `session.revoked` is written exactly as `DELETE /api/v1/sessions/{id}` does.
pub async fn revoke_session(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    identity: web::Data<IdentityService>,
    principal: Principal,
    id: web::Path<String>,
) -> PageResult {
    let id = form::path_id(&id, "session")?;
    match admin::revoke_session(identity, principal.clone(), web::Path::from(id)).await {
        Ok(_) => Ok(form::see_other("/admin/sessions")),
        Err(e) => {
            let feedback = Feedback::refused("revoke", &json!({}), e, "session")?;
            render_sessions(&pages, &state, &principal, Some(feedback)).await
        }
    }
}

/// `GET /admin/users`: who has logged in, their groups and roles, and the mapping that grants
/// them.
pub async fn users(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    identity: web::Data<IdentityService>,
    principal: Principal,
) -> PageResult {
    let client = state.pool.get().await?;
    let people = users::list(&**client, LIST_LIMIT).await?;
    let mapping: Vec<_> = identity
        .cfg
        .roles
        .rows()
        .iter()
        .map(|(role, groups)| json!({"role": role.as_str(), "groups": groups}))
        .collect();
    let mut ctx = super::context(&pages, &principal);
    ctx.insert("users", &people);
    ctx.insert("mapping", &mapping);
    ctx.insert("break_glass_group", &identity.cfg.break_glass.group);
    Ok(pages.render("admin_users.html", &ctx)?)
}
