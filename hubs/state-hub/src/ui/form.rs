//! What a page needs to answer a form: the redirect after a change that was applied, and, for one
//! that was not, the person's input with each field's message or one message for the whole change.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use hub_core::http::etag;
use hub_core::http::problem::{ApiError, FieldError};
use hub_core::web::PageError;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A form that was not applied, shown again on its page.
#[derive(Debug)]
pub struct Feedback {
    /// The status the page answers with (422 for invalid fields, 409/412/403/429 for refusals).
    pub status: StatusCode,
    form: &'static str,
    values: serde_json::Value,
    errors: BTreeMap<String, String>,
    message: String,
}

impl Feedback {
    /// Feedback for a change the service refused. Errors no page can show a form for (missing
    /// object, database down, internal) become the hub's error page instead.
    pub fn refused(
        form: &'static str,
        values: &impl Serialize,
        error: ApiError,
        noun: &str,
    ) -> Result<Feedback, PageError> {
        let status = actix_web::ResponseError::status_code(&error);
        let message = match &error {
            ApiError::Validation(fields) => return Ok(Feedback::fields(form, values, fields)),
            ApiError::PreconditionFailed(_) => format!(
                "This {noun} was changed by someone else after you opened this page, so your \
                 change was not applied. The page now shows the current version: check it and \
                 send the form again."
            ),
            ApiError::Forbidden(m)
            | ApiError::InvalidTransition(m)
            | ApiError::Conflict(m)
            | ApiError::BadRequest(m)
            | ApiError::TooManyRequests(m) => format!("Not applied: {m}."),
            _ => return Err(PageError(error)),
        };
        Ok(Feedback {
            status,
            form,
            values: serde_json::to_value(values).unwrap_or_default(),
            errors: BTreeMap::new(),
            message,
        })
    }

    /// Feedback for invalid fields, each message keyed by the input it belongs to.
    pub fn fields(form: &'static str, values: &impl Serialize, fields: &[FieldError]) -> Feedback {
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        for f in fields {
            let (key, message) = input_message(f);
            errors
                .entry(key)
                .and_modify(|m| {
                    m.push_str("; ");
                    m.push_str(&message);
                })
                .or_insert(message);
        }
        Feedback {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            form,
            values: serde_json::to_value(values).unwrap_or_default(),
            errors,
            message: "Nothing was saved: correct the marked fields and send the form again."
                .to_owned(),
        }
    }

    /// Uses another status (a filter form on a GET page answers 400, not 422).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Uses another message for the whole form (a filter saves nothing, so it says so).
    pub fn with_message(mut self, message: &str) -> Self {
        message.clone_into(&mut self.message);
        self
    }

    /// Files a field's message under the input that shows it (the API's `task_ids` is the
    /// link form's `task_id`).
    pub fn rename_field(mut self, from: &str, to: &str) -> Self {
        if let Some(m) = self.errors.remove(from) {
            self.errors.insert(to.to_owned(), m);
        }
        self
    }

    /// Puts the input, the messages and the refusal into a page's context, as
    /// `input.<form>.<field>`, `errors.<form>.<field>` and `refusal`.
    pub fn apply(&self, ctx: &mut tera::Context) {
        ctx.insert("input", &json!({ self.form: self.values }));
        ctx.insert("errors", &json!({ self.form: self.errors }));
        ctx.insert("refusal", &self.message);
    }
}

/// The input a field error belongs to, and its message: `replacement.title` is the `title`
/// input; `options[2]` is line 3 of the `options` text area.
fn input_message(f: &FieldError) -> (String, String) {
    let last = f.field.rsplit('.').next().unwrap_or(&f.field);
    match last.split_once('[') {
        Some((name, rest)) => {
            let line = rest.trim_end_matches(']').parse::<usize>().ok();
            let message = match line {
                Some(i) => format!("line {}: {}", i + 1, f.message),
                None => f.message.clone(),
            };
            (name.to_owned(), message)
        }
        None => (last.to_owned(), f.message.clone()),
    }
}

/// The status of a rendered page: the feedback's, else 200.
pub fn status(feedback: Option<&Feedback>) -> StatusCode {
    feedback.map_or(StatusCode::OK, |f| f.status)
}

/// 303 to the page that shows the result of an applied change (Post/Redirect/Get), so a reload
/// does not send the form again.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .finish()
}

/// The `If-Match` precondition a form's hidden `version` field stands for. A form without one
/// changes the current version, as an API call without `If-Match` does.
pub fn if_match(version: &str) -> Result<Option<String>, ApiError> {
    let v = version.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<i64>()
        .map(|n| Some(etag::etag(n)))
        .map_err(|_| ApiError::PreconditionFailed(format!("the form's version `{v}` is not one")))
}

/// The non-empty lines of a text area, trimmed (decision options, one per line).
pub fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A text input's value, or `None` when left empty.
pub fn optional(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// An id from the path; anything else is a page that does not exist.
pub fn path_id(raw: &str, what: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(raw).map_err(|_| PageError(ApiError::NotFound(format!("no {what} {raw}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_land_on_their_inputs() {
        let f = Feedback::fields(
            "supersede",
            &json!({"title": ""}),
            &[
                FieldError::new("replacement.title", "title must not be empty"),
                FieldError::new("replacement.options[1]", "duplicate option `a`"),
                FieldError::new("replacement.options[2]", "options[2] must not be empty"),
            ],
        );
        assert_eq!(f.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(f.errors["title"], "title must not be empty");
        assert_eq!(
            f.errors["options"],
            "line 2: duplicate option `a`; line 3: options[2] must not be empty"
        );
    }

    #[test]
    fn versions_become_preconditions() {
        assert_eq!(if_match("3").ok().flatten().as_deref(), Some("\"3\""));
        assert_eq!(if_match(" ").ok().flatten(), None);
        assert!(matches!(
            if_match("3\", *"),
            Err(ApiError::PreconditionFailed(_))
        ));
    }

    #[test]
    fn stale_versions_and_refusals_are_explained_and_missing_objects_are_error_pages() {
        let stale = Feedback::refused(
            "resolve",
            &json!({}),
            ApiError::PreconditionFailed("x".into()),
            "decision",
        );
        let stale = stale.ok().map(|f| (f.status, f.message));
        assert!(
            matches!(stale, Some((StatusCode::PRECONDITION_FAILED, m)) if m.contains("changed by someone else"))
        );
        let missing = Feedback::refused(
            "resolve",
            &json!({}),
            ApiError::NotFound("x".into()),
            "decision",
        );
        assert!(missing.is_err());
    }
}
