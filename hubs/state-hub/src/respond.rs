//! Small response helpers shared by the resource handlers.

use actix_web::http::header;
use actix_web::{HttpResponse, HttpResponseBuilder};
use hub_core::api::page::{DEFAULT_LIMIT, MAX_LIMIT};
use hub_core::http::etag;
use hub_core::http::problem::ApiError;
use hub_core::text;
use serde::Serialize;

/// A JSON body with its `ETag`.
pub fn tagged(
    mut builder: HttpResponseBuilder,
    version: i64,
    body: &impl Serialize,
) -> HttpResponse {
    builder
        .insert_header((header::ETAG, etag::etag(version)))
        .json(body)
}

/// Validates a `?limit=`.
pub fn limit(l: Option<i64>) -> Result<i64, ApiError> {
    match l {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        ))),
    }
}

/// Validates a required free-text reason or comment field.
pub fn reason(field: &str, value: &str) -> Result<String, ApiError> {
    text::multi_line(field, value, 1, 5_000).map_err(|m| ApiError::field(field, m))
}

/// One validation error out of several checks' failures, so a form shows every problem at once;
/// a failure that is not a validation error wins, as it would have stopped the request anyway.
pub fn merge_failures(failures: impl IntoIterator<Item = ApiError>) -> ApiError {
    let mut fields = Vec::new();
    for e in failures {
        match e {
            ApiError::Validation(mut v) => fields.append(&mut v),
            other => return other,
        }
    }
    ApiError::Validation(fields)
}
