//! Optimistic concurrency: `ETag` from a row version, `If-Match` checked before a change.

use super::problem::ApiError;
use actix_web::http::header;
use actix_web::HttpRequest;

/// The strong entity tag of a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The `If-Match` header, if the client sent one.
pub fn if_match(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}

/// Fails with 412 when `If-Match` is present and names no current tag. `*` matches anything.
pub fn check(if_match: Option<&str>, version: i64) -> Result<(), ApiError> {
    let Some(expected) = if_match else {
        return Ok(());
    };
    let current = etag(version);
    let ok = expected
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == current);
    if ok {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed(format!(
            "If-Match {expected} does not match the current version {current}; fetch the resource again"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_semantics() {
        assert!(check(None, 3).is_ok());
        assert!(check(Some("\"3\""), 3).is_ok());
        assert!(check(Some("\"1\", \"3\""), 3).is_ok());
        assert!(check(Some("*"), 3).is_ok());
        assert!(check(Some("\"2\""), 3).is_err());
        assert!(check(Some("W/\"3\""), 3).is_err());
    }
}
