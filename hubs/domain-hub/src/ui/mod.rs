//! The domain hub's web UI: server-rendered pages over the same functions the API uses. A form
//! that changes something answers 303 to the page showing the result; one that was refused shows
//! the page again with the reason and the person's input.

pub mod actions;
pub mod annotations;
pub mod dashboard;

use hub_core::api::manifest::Manifest;
use hub_core::auth::{Permission, Principal};
use hub_core::web::{NavItem, Pages};

/// The domain hub's templates, embedded so a deployed binary needs no files beside it.
const TEMPLATES: &[(&str, &str)] = &[
    ("forms.html", include_str!("../../templates/forms.html")),
    (
        "dashboard.html",
        include_str!("../../templates/dashboard.html"),
    ),
    (
        "annotations.html",
        include_str!("../../templates/annotations.html"),
    ),
    ("actions.html", include_str!("../../templates/actions.html")),
];

/// The page environment: hub-core's layout plus the domain hub's templates, titled with the
/// instance's name.
pub fn pages(manifest: &Manifest) -> anyhow::Result<Pages> {
    let nav = vec![
        NavItem {
            label: "Widgets",
            href: "/",
        },
        NavItem {
            label: "Annotations",
            href: "/annotations",
        },
        NavItem {
            label: "Actions",
            href: "/actions",
        },
    ];
    Pages::new(manifest.hub.clone(), nav, TEMPLATES)
        .map_err(|e| anyhow::anyhow!("loading the domain hub's templates: {e:?}"))
}

/// The context every page starts from: hub-core's, plus what the viewer may change, so pages
/// offer only the forms the server would accept.
fn context(pages: &Pages, principal: &Principal) -> tera::Context {
    let mut ctx = pages.context(Some(principal));
    ctx.insert("can_write", &principal.has(Permission::EventsWrite));
    ctx.insert(
        "viewer_scopes",
        &principal
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
    );
    ctx
}

/// A refused change's message for the page, or the error page when no form can show it.
fn refusal(
    e: hub_core::http::problem::ApiError,
) -> Result<(actix_web::http::StatusCode, String), hub_core::web::PageError> {
    use hub_core::http::problem::ApiError;
    let status = actix_web::ResponseError::status_code(&e);
    match e {
        ApiError::Validation(fields) => Ok((
            status,
            format!(
                "Not applied: {}.",
                fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )),
        ApiError::Forbidden(m)
        | ApiError::Conflict(m)
        | ApiError::BadRequest(m)
        | ApiError::Unavailable(m)
        | ApiError::TooManyRequests(m) => Ok((status, format!("Not applied: {m}."))),
        other => Err(hub_core::web::PageError(other)),
    }
}

/// 303 to the page that shows an applied change (Post/Redirect/Get).
fn see_other(location: &str) -> actix_web::HttpResponse {
    actix_web::HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location.to_owned()))
        .finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        let manifest = serde_json::from_value(serde_json::json!({
            "hub": "ops-hub", "kind": "ops", "version": "1.0.0"
        }))
        .unwrap();
        let pages = super::pages(&manifest);
        assert!(pages.is_ok(), "{:?}", pages.err());
    }
}
