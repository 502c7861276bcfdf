//! Server-rendered pages every hub shares: the tera environment with hub-core's layout, login and
//! error templates, a JSON filter that is safe inside HTML, and the static assets (one stylesheet,
//! one script; no inline script anywhere, so the CSP can forbid it).

mod assets;
mod filters;

pub use assets::static_asset;
pub use filters::json_safe;

use crate::auth::Principal;
use crate::http::problem::ApiError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::Serialize;

/// hub-core's own templates, available to every hub (`{% extends "base.html" %}`).
const CORE_TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("login.html", include_str!("../../templates/login.html")),
    (
        "break_glass.html",
        include_str!("../../templates/break_glass.html"),
    ),
    ("denied.html", include_str!("../../templates/denied.html")),
    (
        "logged_out.html",
        include_str!("../../templates/logged_out.html"),
    ),
    ("account.html", include_str!("../../templates/account.html")),
];

/// A link in the page header.
#[derive(Debug, Clone, Serialize)]
pub struct NavItem {
    /// Link text.
    pub label: &'static str,
    /// Target path.
    pub href: &'static str,
}

/// The tera environment of one hub, registered as `web::Data<Pages>`.
pub struct Pages {
    tera: tera::Tera,
    hub_title: String,
    nav: Vec<NavItem>,
}

impl Pages {
    /// Loads hub-core's templates and the hub's own (name, source) pairs; fails on any syntax
    /// error, so a broken template stops the hub at start rather than at the first request.
    pub fn new(
        hub_title: impl Into<String>,
        nav: Vec<NavItem>,
        hub_templates: &[(&str, &str)],
    ) -> Result<Self, tera::Error> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![".html"]);
        tera.add_raw_templates(CORE_TEMPLATES.iter().chain(hub_templates.iter()).copied())?;
        // Tera's built-in json_encode does not escape `<`, so it could close a <script> block;
        // ours replaces it under the same name.
        tera.register_filter("json_encode", json_safe);
        tera.register_filter("json_safe", json_safe);
        Ok(Self {
            tera,
            hub_title: hub_title.into(),
            nav,
        })
    }

    /// The context every page starts from: hub title, navigation, the viewer and their CSRF
    /// token.
    pub fn context(&self, principal: Option<&Principal>) -> tera::Context {
        let mut ctx = tera::Context::new();
        ctx.insert("hub_title", &self.hub_title);
        ctx.insert("nav", &self.nav);
        if let Some(p) = principal {
            ctx.insert("viewer", p.subject.as_str());
            ctx.insert(
                "viewer_roles",
                &p.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            );
            ctx.insert("is_admin", &p.roles.contains(&crate::auth::Role::Admin));
            // A page opened with a bearer token has no session: forms get an empty token (a
            // cookie-less POST needs none) and the header no login badge.
            let (csrf, method) = match &p.session {
                Some(s) => (s.csrf_token(), s.method.as_str()),
                None => ("", ""),
            };
            ctx.insert("csrf_token", csrf);
            ctx.insert("login_method", method);
        }
        ctx
    }

    /// Renders `name` as a 200 page.
    pub fn render(&self, name: &str, ctx: &tera::Context) -> Result<HttpResponse, ApiError> {
        self.render_status(StatusCode::OK, name, ctx)
    }

    /// Renders `name` with `status`.
    pub fn render_status(
        &self,
        status: StatusCode,
        name: &str,
        ctx: &tera::Context,
    ) -> Result<HttpResponse, ApiError> {
        let html = self
            .tera
            .render(name, ctx)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("rendering {name}: {}", chain(&e))))?;
        Ok(HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html))
    }

    /// The template names loaded, for tests.
    pub fn template_names(&self) -> Vec<&str> {
        self.tera.get_template_names().collect()
    }
}

/// Tera nests the real cause (a missing variable, a filter error) in `source()`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Percent-encodes one query component.
pub fn encode_component(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A local path safe to redirect to after login: absolute path, no scheme, no `//host`, no
/// backslash tricks. Anything else becomes `/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.contains(['\r', '\n', '\\'])
                && n.len() <= 2000
                && !n.starts_with("/auth/") =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// An HTML error page for `e`, rendered with the hub's templates when registered.
pub fn error_page(req: &HttpRequest, e: &ApiError) -> HttpResponse {
    let problem = e.problem();
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let ApiError::Internal(cause) = e {
        tracing::error!(error = %format!("{cause:#}"), path = req.path(), "page failed");
    }
    if let Some(pages) = req.app_data::<web::Data<Pages>>() {
        let principal = req.extensions().get::<Principal>().cloned();
        let mut ctx = pages.context(principal.as_ref());
        ctx.insert("status", &problem.status);
        ctx.insert("title", &problem.title);
        ctx.insert("detail", &problem.detail);
        ctx.insert("csrf_failed", &matches!(e, ApiError::Csrf(_)));
        if let Ok(resp) = pages.render_status(status, "error.html", &ctx) {
            return resp;
        }
    }
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(format!("{}: {}", problem.title, problem.detail))
}

/// A page handler's error: rendered as an HTML page instead of problem+json.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<tokio_postgres::Error> for PageError {
    fn from(e: tokio_postgres::Error) -> Self {
        PageError(ApiError::from(e))
    }
}

impl From<deadpool_postgres::PoolError> for PageError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PageError(ApiError::from(e))
    }
}

impl actix_web::ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }
    fn error_response(&self) -> HttpResponse {
        // The request is not at hand here: the page route's Authorize middleware replaces this
        // plain-text body with the hub's error page.
        let problem = self.0.problem();
        HttpResponse::build(self.status_code())
            .content_type("text/plain; charset=utf-8")
            .body(format!("{}: {}", problem.title, problem.detail))
    }
}

/// The result type of page handlers.
pub type PageResult = Result<HttpResponse, PageError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_kept_local() {
        assert_eq!(safe_next(Some("/decisions?x=1")), "/decisions?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/auth/callback")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn every_core_template_parses() {
        let p = Pages::new("Test hub", vec![], &[]).unwrap();
        assert!(p.template_names().contains(&"base.html"));
    }
}
