//! The route table: every route names the access it needs, and the table itself enforces it.
//!
//! Handlers are mounted only through [`Route::mount`], which wraps each resource in the
//! [`Authorize`](crate::auth::Authorize) middleware for that route's [`Access`]. A route cannot be
//! registered without saying who may call it, and a test walks each hub's table.

use crate::auth::{Access, Authorize, Surface};
use actix_web::http::Method;
use actix_web::web;

/// One row of a hub's route table.
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path pattern, actix syntax.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// API or page: decides how refusals are answered.
    pub surface: Surface,
    /// Registers the handler (built by the [`route!`](crate::route) macro).
    pub register: fn(&mut web::ServiceConfig, Authorize),
}

impl Route {
    /// Mounts this route with its authorization middleware.
    pub fn mount(&self, cfg: &mut web::ServiceConfig) {
        (self.register)(cfg, Authorize::new(self.access, self.surface))
    }
}

/// Mounts a whole table.
pub fn mount_all(table: &[Route], cfg: &mut web::ServiceConfig) {
    for r in table {
        r.mount(cfg);
    }
}

/// Builds an API [`Route`]: `route!(GET "/api/v1/events", Access::Permission(Permission::EventsRead), handler)`.
#[macro_export]
macro_rules! route {
    ($method:ident $path:literal, $access:expr, $handler:path) => {
        $crate::__route!($crate::auth::Surface::Api, $method $path, $access, $handler)
    };
}

/// Builds a page [`Route`]; refusals redirect to the login page or render an HTML error.
#[macro_export]
macro_rules! page {
    ($method:ident $path:literal, $access:expr, $handler:path) => {
        $crate::__route!($crate::auth::Surface::Page, $method $path, $access, $handler)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __route {
    ($surface:expr, $method:ident $path:literal, $access:expr, $handler:path) => {
        $crate::http::routes::Route {
            method: ::actix_web::http::Method::$method,
            path: $path,
            access: $access,
            surface: $surface,
            register: |cfg: &mut ::actix_web::web::ServiceConfig, auth: $crate::auth::Authorize| {
                cfg.service(
                    ::actix_web::web::resource($path)
                        .guard(::actix_web::guard::Method(
                            ::actix_web::http::Method::$method,
                        ))
                        .wrap(auth)
                        .route(::actix_web::web::route().to($handler)),
                );
            },
        }
    };
}
