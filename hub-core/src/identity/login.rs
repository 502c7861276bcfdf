//! The login pages and their endpoints: OIDC start and callback, break-glass, logout, the
//! person's own account page. Every outcome a person can reach is a page that says what
//! happened and what to do; nothing is created unless the whole login succeeds.

use super::flows;
use super::ledger::{record, AuditEvent, Review};
use super::oidc::{OidcError, PendingLogin};
use super::service::IdentityService;
use super::sessions::{self, LoginMethod, NewSession};
use super::users::{self, LoginIdentity};
use crate::auth::{Principal, Role, Subject};
use crate::http::problem::ApiError;
use crate::http::ratelimit::Limit;
use crate::web::{safe_next, PageError, PageResult, Pages};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeSet;

/// `?next=` on the login pages.
#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    session: Option<String>,
}

fn login_page(
    pages: &Pages,
    id: &IdentityService,
    status: StatusCode,
    next: &str,
    error: Option<String>,
    provider_down: bool,
) -> PageResult {
    let mut ctx = pages.context(None);
    ctx.insert("next", next);
    ctx.insert("error", &error);
    ctx.insert("provider_down", &provider_down);
    ctx.insert("break_glass_enabled", &id.break_glass_enabled());
    ctx.insert("sso_configured", &id.oidc.is_some());
    Ok(pages.render_status(status, "login.html", &ctx)?)
}

/// `GET /auth/login`: the page with the single sign-on button.
pub async fn login(
    pages: web::Data<Pages>,
    id: web::Data<IdentityService>,
    q: web::Query<NextQuery>,
) -> PageResult {
    let next = safe_next(q.next.as_deref());
    let error = match (q.session.as_deref(), id.oidc.is_some()) {
        (Some("ended"), _) => {
            Some("Your session has ended (time-out or logout). Log in again.".to_owned())
        }
        (_, false) => Some(
            "Web login is not configured on this hub ([identity.oidc] is missing); use an API token."
                .to_owned(),
        ),
        _ => None,
    };
    login_page(&pages, &id, StatusCode::OK, &next, error, false)
}

fn redirect(to: &str) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::SeeOther();
    b.insert_header((header::LOCATION, to.to_owned()));
    b
}

/// `GET /auth/oidc/start`: stores the flow and sends the browser to the provider.
pub async fn start(
    req: HttpRequest,
    pages: web::Data<Pages>,
    id: web::Data<IdentityService>,
    q: web::Query<NextQuery>,
) -> PageResult {
    let next = safe_next(q.next.as_deref());
    let Some(oidc) = id.oidc.clone() else {
        return Err(ApiError::NotFound("web login is not configured on this hub".into()).into());
    };
    if let Err(e) = id.limiters.check(Limit::LoginPerIp, &id.client_ip(&req)) {
        return login_page(
            &pages,
            &id,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some(e.to_string()),
            false,
        );
    }
    // Discovery may be cached from before an outage; a redirect to a dead provider would strand
    // the person on a browser error page instead of this one, which offers break-glass.
    if !oidc.provider_reachable().await {
        tracing::warn!("cannot start an OIDC login: the provider does not answer");
        let msg = "The single sign-on service does not answer. Try again in a moment.".to_owned();
        return login_page(
            &pages,
            &id,
            StatusCode::SERVICE_UNAVAILABLE,
            &next,
            Some(msg),
            true,
        );
    }
    let auth = match oidc.begin().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start an OIDC login");
            let down = e.is_provider_down();
            let status = if down {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_GATEWAY
            };
            return login_page(&pages, &id, status, &next, Some(e.to_string()), down);
        }
    };
    let pending = serde_json::to_value(&auth.pending).map_err(ApiError::internal)?;
    let client = id.pool.get().await.map_err(ApiError::from)?;
    let secret = flows::start(&**client, &pending, &next).await?;
    Ok(redirect(auth.url.as_str())
        .cookie(flows::cookie(&id.flow_cookie_name, &secret))
        .finish())
}

/// `GET /auth/callback` query.
#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/callback`: the provider sends the browser back here with a code.
pub async fn callback(
    req: HttpRequest,
    pages: web::Data<Pages>,
    id: web::Data<IdentityService>,
    q: web::Query<CallbackQuery>,
) -> PageResult {
    let Some(oidc) = id.oidc.clone() else {
        return Err(ApiError::NotFound("web login is not configured on this hub".into()).into());
    };
    let ip = id.client_ip(&req);
    let fail = |status: StatusCode, msg: String| {
        login_page(&pages, &id, status, "/", Some(msg), false).map(|mut r| {
            r.add_removal_cookie(&sessions::removal_cookie(&id.flow_cookie_name))
                .ok();
            r
        })
    };
    if let Err(e) = id.limiters.check(Limit::LoginPerIp, &ip) {
        return fail(StatusCode::TOO_MANY_REQUESTS, e.to_string());
    }
    if let Some(err) = &q.error {
        // Only the code, never the free-text description: it is attacker-controllable text.
        let code: String = err
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        tracing::info!(error = %code, "the provider refused the login");
        return fail(
            StatusCode::FORBIDDEN,
            format!("The sign-on service did not log you in ({code}). Try again."),
        );
    }
    let (Some(code), Some(state)) = (q.code.as_deref(), q.state.as_deref()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-on service's answer has no code or state. Start the login again.".into(),
        );
    };
    let Some(flow_cookie) = req.cookie(&id.flow_cookie_name) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "This login was not started in this browser, or took longer than 10 minutes. Start again."
                .into(),
        );
    };
    let client = id.pool.get().await.map_err(ApiError::from)?;
    let Some(flow) = flows::take(&**client, flow_cookie.value()).await? else {
        return fail(
            StatusCode::BAD_REQUEST,
            "This login was already used or has expired. Start again.".into(),
        );
    };
    drop(client);
    let pending: PendingLogin = serde_json::from_value(flow.pending).map_err(ApiError::internal)?;
    let who = match oidc.complete(&pending, state, code).await {
        Ok(who) => who,
        Err(e) => {
            tracing::warn!(error = %e, client_ip = %ip, "OIDC login refused");
            let status = match e {
                OidcError::ProviderUnreachable(_) | OidcError::Discovery(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::BAD_REQUEST,
            };
            return fail(status, format!("Login failed: {e}. Start again."));
        }
    };
    let Some(username) = who
        .username
        .as_deref()
        .map(str::to_lowercase)
        .and_then(|u| Subject::parse(&u).ok())
    else {
        return fail(
            StatusCode::FORBIDDEN,
            "The sign-on service sent no usable user name (preferred_username). Ask an administrator."
                .into(),
        );
    };
    let identity = LoginIdentity {
        issuer: who.issuer,
        subject: who.subject,
        username,
        display_name: who.display_name,
        email: who.email,
        groups: who.groups,
    };
    finish_login(
        &req,
        &pages,
        &id,
        identity,
        LoginMethod::Oidc,
        &flow.next_path,
    )
    .await
}

/// Records the login (user, session, events) in one ledger transaction and answers with the
/// session cookie, or with the 403 page for someone in no mapped group.
async fn finish_login(
    req: &HttpRequest,
    pages: &Pages,
    id: &IdentityService,
    who: LoginIdentity,
    method: LoginMethod,
    next: &str,
) -> PageResult {
    let roles = id.cfg.roles.roles_for(&who.groups);
    let scopes = id.cfg.scopes_for(&who.groups);
    let username = who.username.to_string();
    if roles.is_empty() {
        let detail = json!({"username": username, "issuer": who.issuer, "groups": who.groups, "method": method.as_str()});
        let summary = format!("{username} was refused: in no group that grants a role");
        record(&*id.ledger, &username, move |_| {
            Box::pin(
                async move { Ok(((), vec![AuditEvent::new("login.denied", summary, detail)])) },
            )
        })
        .await?;
        let mut ctx = pages.context(None);
        ctx.insert("username", &username);
        ctx.insert("groups", &who.groups);
        let mapping: Vec<_> = id
            .cfg
            .roles
            .rows()
            .iter()
            .map(|(r, g)| json!({"role": r.as_str(), "groups": g}))
            .collect();
        ctx.insert("mapping", &mapping);
        let mut resp = pages.render_status(StatusCode::FORBIDDEN, "denied.html", &ctx)?;
        resp.add_removal_cookie(&sessions::removal_cookie(&id.flow_cookie_name))
            .ok();
        return Ok(resp);
    }
    let ip = id.client_ip(req);
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let previous = req.cookie(&id.cookie_name).map(|c| c.value().to_owned());
    let session_cfg = id.cfg.sessions.clone();
    let review = (method == LoginMethod::BreakGlass).then(|| Review {
        title: format!("Review break-glass login of {username}"),
        context: format!(
            "{username} logged in by LDAP bind from {ip} while single sign-on was unreachable. \
             Confirm this was legitimate and resolve this decision; if it was not, revoke the \
             session and rotate the account's password."
        ),
    });
    let secret: SecretString = record(&*id.ledger, &username, move |client| {
        Box::pin(async move {
            let recorded = users::record_login(client, &who, &roles, &scopes).await?;
            let user = &recorded.user;
            if let Some(old) = previous {
                // Rotation: whatever session this browser had ends with the new login.
                sessions::revoke_by_secret(client, &old, "replaced by a new login").await?;
            }
            let (session_id, secret) = sessions::create(
                client,
                &NewSession {
                    user_id: user.id,
                    method,
                    client_ip: Some(&ip),
                    user_agent: user_agent.as_deref(),
                },
                &session_cfg,
            )
            .await?;
            let role_names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            let mut events = Vec::new();
            if recorded.created {
                events.push(AuditEvent::new(
                    "user.created",
                    format!("{} logged in for the first time", user.username),
                    json!({"user_id": user.id, "issuer": user.issuer, "roles": role_names}),
                ));
            } else if recorded.previous_roles != roles {
                events.push(roles_changed(user.id, &user.username, &recorded.previous_roles, &roles));
            }
            let detail = json!({"user_id": user.id, "session_id": session_id, "method": method.as_str(),
                                "roles": role_names, "client_ip": ip});
            let mut login = match method {
                LoginMethod::Oidc => AuditEvent::new(
                    "session.login",
                    format!("{} logged in", user.username),
                    detail,
                ),
                LoginMethod::BreakGlass => AuditEvent::new(
                    "session.break_glass",
                    format!("{} logged in by break-glass (LDAP bind)", user.username),
                    detail,
                ),
            };
            login.review = review;
            events.push(login);
            Ok((secret, events))
        })
    })
    .await?;
    tracing::info!(user = %username, method = method.as_str(), "logged in");
    let mut resp = redirect(next)
        .cookie(sessions::cookie(
            &id.cookie_name,
            &secret,
            id.cfg.sessions.absolute(),
        ))
        .finish();
    resp.add_removal_cookie(&sessions::removal_cookie(&id.flow_cookie_name))
        .ok();
    Ok(resp)
}

/// The event for a change of someone's roles.
pub fn roles_changed(
    user_id: uuid::Uuid,
    username: &str,
    before: &BTreeSet<Role>,
    after: &BTreeSet<Role>,
) -> AuditEvent {
    let names = |s: &BTreeSet<Role>| s.iter().map(|r| r.as_str()).collect::<Vec<_>>();
    AuditEvent::new(
        "user.roles_changed",
        format!(
            "roles of {username}: [{}] → [{}]",
            names(before).join(", "),
            names(after).join(", ")
        ),
        json!({"user_id": user_id, "before": names(before), "after": names(after)}),
    )
}

/// `GET /auth/break-glass`: the form, with a fresh flow cookie to bind its token to.
pub async fn break_glass_form(
    pages: web::Data<Pages>,
    id: web::Data<IdentityService>,
    q: web::Query<NextQuery>,
) -> PageResult {
    if !id.break_glass_enabled() {
        return Err(
            ApiError::NotFound("break-glass login is not configured on this hub".into()).into(),
        );
    }
    let next = safe_next(q.next.as_deref());
    let client = id.pool.get().await.map_err(ApiError::from)?;
    let secret = flows::start(&**client, &json!({"break_glass": true}), &next).await?;
    let mut ctx = pages.context(None);
    ctx.insert("next", &next);
    ctx.insert("flow_csrf", &flows::form_token(secret.expose_secret()));
    let mut resp = pages.render("break_glass.html", &ctx)?;
    resp.add_cookie(&flows::cookie(&id.flow_cookie_name, &secret))
        .map_err(ApiError::internal)?;
    Ok(resp)
}

/// The break-glass form.
#[derive(Deserialize)]
pub struct BreakGlassForm {
    username: String,
    password: SecretString,
    csrf_token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /auth/break-glass`: LDAP bind while the provider is down.
pub async fn break_glass(
    req: HttpRequest,
    pages: web::Data<Pages>,
    id: web::Data<IdentityService>,
    form: web::Form<BreakGlassForm>,
) -> PageResult {
    let (Some(directory), Some(oidc), Some(group)) = (
        id.directory.clone(),
        id.oidc.clone(),
        id.cfg.break_glass.group.clone(),
    ) else {
        return Err(
            ApiError::NotFound("break-glass login is not configured on this hub".into()).into(),
        );
    };
    let form = form.into_inner();
    let username = form.username.trim().to_lowercase();
    let next = safe_next(form.next.as_deref());
    let again = |status: StatusCode, msg: String| -> PageResult {
        // A refused attempt gets a fresh form; the old flow cookie is spent.
        let mut ctx = pages.context(None);
        ctx.insert("next", &next);
        ctx.insert("username", &username);
        ctx.insert("error", &msg);
        ctx.insert("flow_csrf", "");
        let mut resp = pages.render_status(status, "break_glass.html", &ctx)?;
        resp.add_removal_cookie(&sessions::removal_cookie(&id.flow_cookie_name))
            .ok();
        Ok(resp)
    };
    let ip = id.client_ip(&req);
    if let Err(e) = id.limiters.check(Limit::LoginPerIp, &ip) {
        return again(StatusCode::TOO_MANY_REQUESTS, e.to_string());
    }
    if let Err(e) = id.limiters.check(Limit::LoginPerAccount, &username) {
        return again(StatusCode::TOO_MANY_REQUESTS, e.to_string());
    }
    let Some(flow_cookie) = req.cookie(&id.flow_cookie_name) else {
        return again(
            StatusCode::FORBIDDEN,
            "The form expired; open the break-glass page again.".into(),
        );
    };
    let expected = flows::form_token(flow_cookie.value());
    let client = id.pool.get().await.map_err(ApiError::from)?;
    let flow = flows::take(&**client, flow_cookie.value()).await?;
    drop(client);
    let token_ok = flow.is_some()
        && expected.len() == form.csrf_token.len()
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            form.csrf_token.as_bytes(),
        ));
    if !token_ok {
        tracing::warn!(client_ip = %ip, "break-glass form with a missing or wrong token");
        return again(
            StatusCode::FORBIDDEN,
            "The form expired or did not come from this hub; open the break-glass page again."
                .into(),
        );
    }
    if oidc.provider_reachable().await {
        return again(
            StatusCode::FORBIDDEN,
            "Single sign-on is working: break-glass login is only for when it is down.".into(),
        );
    }
    let user = match directory.verify_password(&username, &form.password).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            tracing::warn!(user = %username, client_ip = %ip, "break-glass bind refused");
            return again(
                StatusCode::UNAUTHORIZED,
                "Wrong user name or password.".into(),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "break-glass: directory unavailable");
            return again(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("The directory cannot be reached either ({e}); break-glass login is impossible right now."),
            );
        }
    };
    if !user.groups.iter().any(|g| g == &group) {
        tracing::warn!(user = %username, "break-glass refused: not in the break-glass group");
        let detail = json!({"username": username, "method": "break_glass", "reason": "not in the break-glass group"});
        let summary = format!("{username} was refused break-glass login: not in group {group}");
        record(&*id.ledger, &username, move |_| {
            Box::pin(
                async move { Ok(((), vec![AuditEvent::new("login.denied", summary, detail)])) },
            )
        })
        .await?;
        return again(
            StatusCode::FORBIDDEN,
            format!("{username} is not in the break-glass group ({group})."),
        );
    }
    let Ok(subject) = Subject::parse(&user.uid.to_lowercase()) else {
        return again(
            StatusCode::FORBIDDEN,
            "This directory user name cannot be used here.".into(),
        );
    };
    let issuer = id.ldap_issuer().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("break-glass without [identity.ldap]"))
    })?;
    let who = LoginIdentity {
        issuer,
        subject: user.entry_uuid.clone().unwrap_or_else(|| user.dn.clone()),
        username: subject,
        display_name: user.display_name,
        email: user.email,
        groups: user.groups,
    };
    finish_login(&req, &pages, &id, who, LoginMethod::BreakGlass, &next).await
}

/// `POST /auth/logout`: ends this session.
pub async fn logout(
    pages: web::Data<Pages>,
    id: web::Data<IdentityService>,
    principal: Principal,
) -> PageResult {
    let Some(session) = principal.session.clone() else {
        return Err(PageError(ApiError::BadRequest(
            "log out ends a browser session; API tokens are revoked instead".into(),
        )));
    };
    let actor = principal.subject.to_string();
    record(&*id.ledger, &actor.clone(), move |client| {
        Box::pin(async move {
            sessions::revoke(client, session.id, "logout").await?;
            Ok((
                (),
                vec![AuditEvent::new(
                    "session.logout",
                    format!("{actor} logged out"),
                    json!({"session_id": session.id}),
                )],
            ))
        })
    })
    .await?;
    logged_out(&pages, &id, "You are logged out of this hub.")
}

/// `POST /auth/logout-everywhere`: ends every session of this person.
pub async fn logout_everywhere(
    pages: web::Data<Pages>,
    id: web::Data<IdentityService>,
    principal: Principal,
) -> PageResult {
    let Some(session) = principal.session.clone() else {
        return Err(PageError(ApiError::BadRequest(
            "log out ends browser sessions; API tokens are revoked instead".into(),
        )));
    };
    let actor = principal.subject.to_string();
    let n = record(&*id.ledger, &actor.clone(), move |client| {
        Box::pin(async move {
            let n =
                sessions::revoke_all_for_user(client, session.user_id, "logout everywhere").await?;
            Ok((
                n,
                vec![AuditEvent::new(
                    "session.revoked_all",
                    format!("{actor} logged out everywhere ({n} sessions)"),
                    json!({"user_id": session.user_id, "sessions": n}),
                )],
            ))
        })
    })
    .await?;
    logged_out(
        &pages,
        &id,
        &format!("All your sessions on this hub have ended ({n})."),
    )
}

fn logged_out(pages: &Pages, id: &IdentityService, message: &str) -> PageResult {
    let mut ctx = pages.context(None);
    ctx.insert("message", message);
    let mut resp = pages.render("logged_out.html", &ctx)?;
    resp.add_removal_cookie(&sessions::removal_cookie(&id.cookie_name))
        .ok();
    Ok(resp)
}

/// `GET /account`: who you are, your sessions, "log out everywhere".
pub async fn account(
    pages: web::Data<Pages>,
    id: web::Data<IdentityService>,
    principal: Principal,
) -> PageResult {
    let Some(session) = principal.session.clone() else {
        return Err(PageError(ApiError::BadRequest(
            "the account page is for browser sessions".into(),
        )));
    };
    let client = id.pool.get().await.map_err(ApiError::from)?;
    let user = users::get(&**client, session.user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("your user record is gone; log in again".into()))?;
    let list = sessions::list_active(&**client, Some(session.user_id), 100).await?;
    let mut ctx = pages.context(Some(&principal));
    ctx.insert("user", &user);
    ctx.insert("sessions", &list);
    ctx.insert("current_session", &session.id);
    Ok(pages.render("account.html", &ctx)?)
}
