//! The middleware that enforces a route's [`Access`] before its handler runs.

use super::permission::Access;
use super::principal::Principal;
use crate::http::problem::ApiError;
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

/// Middleware factory for one route's access rule.
#[derive(Clone, Copy)]
pub struct Authorize {
    access: Access,
}

impl Authorize {
    /// Enforces `access`.
    pub fn new(access: Access) -> Self {
        Self { access }
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
        }))
    }
}

/// The per-worker middleware instance.
pub struct AuthorizeMiddleware<S> {
    service: Rc<S>,
    access: Access,
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

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let access = self.access;
        Box::pin(async move {
            if access == Access::Public {
                return service
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_left_body);
            }
            let Some(auth) = req.app_data::<web::Data<DynAuthenticator>>().cloned() else {
                let e = ApiError::internal(anyhow::anyhow!("no authenticator registered"));
                return Ok(req.error_response(e).map_into_right_body());
            };
            let outcome = auth.authenticate(req.request()).await;
            match outcome {
                Ok(principal) if principal.allows(access) => {
                    req.extensions_mut().insert(principal);
                    service
                        .call(req)
                        .await
                        .map(ServiceResponse::map_into_left_body)
                }
                Ok(principal) => {
                    tracing::info!(subject = %principal.subject, required = %access, "permission denied");
                    let e = ApiError::Forbidden(format!(
                        "{} lacks the permission `{access}` this route requires",
                        principal.subject
                    ));
                    Ok(req.error_response(e).map_into_right_body())
                }
                Err(e) => Ok(req.error_response(e).map_into_right_body()),
            }
        })
    }
}
