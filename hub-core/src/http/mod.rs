//! The HTTP edge every hub shares: app assembly, extractor error mapping, health, metrics, the
//! health and metrics endpoints.

pub mod context;
pub mod cursor;
pub mod etag;
pub mod headers;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod ratelimit;
pub mod routes;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpRequest};
use problem::ApiError;

pub use context::RequestId;
pub use health::HealthState;
pub use metrics::HttpMetrics;

/// Maps JSON body errors to problem documents: 413 for size, 415 for media type, 400 otherwise,
/// with serde's message (it names unknown fields and the position of a syntax error).
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req: &HttpRequest| {
            let api = match &err {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => ApiError::PayloadTooLarge(limit),
                JsonPayloadError::ContentType => {
                    ApiError::UnsupportedMediaType("send the body as application/json".to_owned())
                }
                JsonPayloadError::Deserialize(e) => {
                    ApiError::BadRequest(format!("invalid JSON body: {e}"))
                }
                other => ApiError::BadRequest(format!("cannot read the request body: {other}")),
            };
            api.into()
        })
}

/// Maps query-string errors to 400 problems.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let msg = match &err {
            QueryPayloadError::Deserialize(e) => format!("invalid query string: {e}"),
            other => format!("invalid query string: {other}"),
        };
        ApiError::BadRequest(msg).into()
    })
}

/// Maps path-segment errors to 404 problems: a malformed id names nothing that exists.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        let msg = match &err {
            PathError::Deserialize(e) => format!("no such resource ({e})"),
            other => format!("no such resource ({other})"),
        };
        ApiError::NotFound(msg).into()
    })
}

/// Fallback for unknown routes.
pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Shared state the core middleware and endpoints read.
#[derive(Clone)]
pub struct CoreData {
    /// Pools and schema version for readiness.
    pub health: web::Data<HealthState>,
    /// Metrics registry.
    pub metrics: web::Data<HttpMetrics>,
    /// Body size limit.
    pub body_limit: usize,
    /// Whether HSTS applies.
    pub tls: bool,
}

/// An actix `App` with everything hub-core owns: request context, security headers, extractor
/// configs, health endpoints, the 404 fallback. The hub adds its own routes via `configure`.
pub fn app<F>(
    core: &CoreData,
    configure: F,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
>
where
    F: FnOnce(&mut web::ServiceConfig),
{
    App::new()
        .app_data(core.health.clone())
        .app_data(core.metrics.clone())
        .app_data(json_config(core.body_limit))
        .app_data(query_config())
        .app_data(path_config())
        .app_data(web::PayloadConfig::new(core.body_limit))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .configure(configure)
        .default_service(web::to(not_found))
        .wrap(headers::security_headers(core.tls))
        .wrap(from_fn(context::request_context))
}
