//! CSRF: a synchronizer token bound to the session. Forms carry it as the hidden field
//! `csrf_token`, scripts as the `X-CSRF-Token` header. Only cookie-borne requests need it: a
//! bearer token is never sent by a browser on its own.

use crate::http::problem::ApiError;
use actix_web::dev::{Payload, ServiceRequest};
use actix_web::http::{header, Method};
use actix_web::web::BytesMut;
use actix_web::HttpMessage;
use futures_util::StreamExt;
use subtle::ConstantTimeEq;

/// The header scripts send.
pub const HEADER: &str = "x-csrf-token";
/// The form field pages render.
pub const FIELD: &str = "csrf_token";
/// Largest form body inspected for the field; larger urlencoded forms must use the header.
const FORM_LIMIT: usize = 256 * 1024;

/// Methods that change nothing and need no token.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn matches(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// Checks the header, or the form field of an urlencoded body (which is put back for the
/// handler). Fails with a 403 problem that says which token is missing or wrong.
pub async fn verify(req: &mut ServiceRequest, expected: &str) -> Result<(), ApiError> {
    if let Some(v) = req.headers().get(HEADER) {
        let given = v.to_str().unwrap_or_default();
        return if matches(given, expected) {
            Ok(())
        } else {
            Err(ApiError::Csrf(
                "the X-CSRF-Token header does not match this session; reload the page and try again"
                    .into(),
            ))
        };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(ApiError::Csrf(
            "this change was sent with a session cookie but without a CSRF token (X-CSRF-Token \
             header or csrf_token form field)"
                .into(),
        ));
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the form: {e}")))?;
        if body.len() + chunk.len() > FORM_LIMIT {
            return Err(ApiError::PayloadTooLarge(FORM_LIMIT));
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    let found = form_field(&body, FIELD);
    req.set_payload(Payload::from(body));
    match found {
        Some(given) if matches(&given, expected) => Ok(()),
        Some(_) => Err(ApiError::Csrf(
            "the form's csrf_token does not match this session; reload the page and try again"
                .into(),
        )),
        None => Err(ApiError::Csrf(
            "the form has no csrf_token field; reload the page and try again".into(),
        )),
    }
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[actix_web::test]
    async fn header_and_form_field_are_checked_and_the_body_survives() {
        let mut req = TestRequest::post()
            .insert_header((HEADER, "abc"))
            .to_srv_request();
        assert!(verify(&mut req, "abc").await.is_ok());
        let mut req = TestRequest::post()
            .insert_header((HEADER, "abd"))
            .to_srv_request();
        assert!(matches!(
            verify(&mut req, "abc").await,
            Err(ApiError::Csrf(_))
        ));

        let mut req = TestRequest::post()
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload("title=x&csrf_token=abc")
            .to_srv_request();
        assert!(verify(&mut req, "abc").await.is_ok());
        let mut rest = req.take_payload();
        let mut got = Vec::new();
        while let Some(c) = rest.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        assert_eq!(got, b"title=x&csrf_token=abc");

        let mut req = TestRequest::post()
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload("title=x")
            .to_srv_request();
        assert!(matches!(
            verify(&mut req, "abc").await,
            Err(ApiError::Csrf(_))
        ));

        let mut req = TestRequest::post()
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload("{}")
            .to_srv_request();
        assert!(matches!(
            verify(&mut req, "abc").await,
            Err(ApiError::Csrf(_))
        ));
    }
}
