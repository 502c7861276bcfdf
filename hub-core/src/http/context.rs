//! Per-request context: a request id on every request, response and log line, plus HTTP metrics.

use super::metrics::HttpMetrics;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use std::time::Instant;
use tracing::Instrument;

/// Header carrying the request id in both directions.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the current request, in request extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Accepts a caller's id only when it is short and plain, so it cannot forge log lines.
fn acceptable(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Middleware: assigns the request id, opens the request span, records metrics, logs the outcome.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    let method = req.method().clone();
    let span =
        tracing::info_span!("request", request_id = %id, method = %method, path = %req.path());
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    let elapsed = started.elapsed();
    let status = res.status();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    if let Some(m) = metrics {
        m.observe(method.as_str(), &route, status.as_u16(), elapsed);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    span.in_scope(|| {
        let ms = elapsed.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            let cause = res
                .response()
                .error()
                .map(|e| format!("{:?}", e))
                .unwrap_or_default();
            tracing::error!(status = status.as_u16(), elapsed_ms = ms, %route, error = %cause, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), elapsed_ms = ms, %route, "request done");
        }
    });
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn only_plain_ids_are_accepted() {
        assert!(acceptable("0192f7a1-aaaa-bbbb"));
        assert!(!acceptable("short"));
        assert!(!acceptable("evil\nINFO forged log line"));
        assert!(!acceptable(&"a".repeat(65)));
    }
}
