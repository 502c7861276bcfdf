//! The middleware that enforces a route's [`Access`] before its handler runs.

use super::permission::Access;
use super::principal::Principal;
use crate::http::problem::ApiError;
use crate::identity::csrf;
use actix_web::body::EitherBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{web, HttpMessage, HttpRequest};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use std::rc::Rc;
use std::sync::Arc;

/// Turns request credentials into a principal. Token auth is built in; a hub with a web UI adds
/// session cookies by wrapping this.
pub trait Authenticator: Send + Sync + 'static {
    /// Authenticates the request, or says why not (401).
    fn authenticate<'a>(
        &'a self,
        req: &'a HttpRequest,
    ) -> LocalBoxFuture<'a, Result<Principal, ApiError>>;
}

/// The authenticator a hub registers as app data: `web::Data<DynAuthenticator>`.
pub type DynAuthenticator = Arc<dyn Authenticator>;

/// Who a route answers: programs (problem+json errors) or people in a browser (a redirect to the
/// login page, HTML error pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// JSON API.
    Api,
    /// Server-rendered page.
    Page,
}

/// Middleware factory for one route's access rule.
#[derive(Clone, Copy)]
pub struct Authorize {
    access: Access,
    surface: Surface,
}

impl Authorize {
    /// Enforces `access`, answering failures in the way `surface` expects.
    pub fn new(access: Access, surface: Surface) -> Self {
        Self { access, surface }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Authorize
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = AuthorizeMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AuthorizeMiddleware {
            service: Rc::new(service),
            access: self.access,
            surface: self.surface,
        }))
    }
}

/// The per-worker middleware instance.
pub struct AuthorizeMiddleware<S> {
    service: Rc<S>,
    access: Access,
    surface: Surface,
}

impl<S, B> Service<ServiceRequest> for AuthorizeMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let (access, surface) = (self.access, self.surface);
        Box::pin(async move {
            if access == Access::Public {
                let res = service.call(req).await?;
                return Ok(finish(res, surface));
            }
            let Some(auth) = req.app_data::<web::Data<DynAuthenticator>>().cloned() else {
                let e = ApiError::internal(anyhow::anyhow!("no authenticator registered"));
                return Ok(req.error_response(e).map_into_right_body());
            };
            let outcome = auth.authenticate(req.request()).await;
            let refusal = match outcome {
                Ok(principal) if principal.allows(access) => {
                    if let Some(session) = &principal.session {
                        if !csrf::is_safe(req.method()) {
                            let expected = session.csrf_token().to_owned();
                            if let Err(e) = csrf::verify(&mut req, &expected).await {
                                tracing::warn!(subject = %principal.subject, path = req.path(), "CSRF check failed");
                                return Ok(refuse(req, e, surface).map_into_right_body());
                            }
                        }
                    }
                    req.extensions_mut().insert(principal);
                    let res = service.call(req).await?;
                    return Ok(finish(res, surface));
                }
                Ok(principal) => {
                    tracing::info!(subject = %principal.subject, required = %access, "permission denied");
                    ApiError::Forbidden(format!(
                        "{} lacks the permission `{access}` this route requires",
                        principal.subject
                    ))
                }
                Err(e) => e,
            };
            Ok(refuse(req, refusal, surface).map_into_right_body())
        })
    }
}

/// A page handler's [`PageError`](crate::web::PageError) becomes the hub's HTML error page;
/// everything else passes through.
fn finish<B>(res: ServiceResponse<B>, surface: Surface) -> ServiceResponse<EitherBody<B>> {
    if surface == Surface::Page {
        let page_error = res
            .response()
            .error()
            .and_then(|e| e.as_error::<crate::web::PageError>())
            .map(|pe| crate::web::error_page(res.request(), &pe.0));
        if let Some(html) = page_error {
            return res.into_response(html).map_into_right_body();
        }
    }
    res.map_into_left_body()
}

/// The response to a refused request: problem+json for the API; for pages, a redirect to the
/// login page when nobody is logged in, else an HTML error page.
fn refuse(req: ServiceRequest, e: ApiError, surface: Surface) -> ServiceResponse {
    match (surface, &e) {
        (Surface::Api, _) => req.error_response(e),
        (Surface::Page, ApiError::Unauthorized(_)) => {
            let next = match req.query_string() {
                "" => req.path().to_owned(),
                q => format!("{}?{q}", req.path()),
            };
            // A session cookie that no longer works means it ended; the login page says so
            // (a fixed text: nothing from the request is echoed).
            let had_session = req
                .cookies()
                .map(|cs| cs.iter().any(|c| c.name().ends_with("-session")))
                .unwrap_or(false);
            let to = format!(
                "/auth/login?next={}{}",
                crate::web::encode_component(&next),
                if had_session { "&session=ended" } else { "" }
            );
            let resp = actix_web::HttpResponse::SeeOther()
                .insert_header((actix_web::http::header::LOCATION, to))
                .finish();
            req.into_response(resp)
        }
        (Surface::Page, _) => {
            let resp = crate::web::error_page(req.request(), &e);
            req.into_response(resp)
        }
    }
}
