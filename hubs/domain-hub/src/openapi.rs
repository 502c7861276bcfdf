//! The OpenAPI 3.1 document of the domain hub's API, generated from the handlers' annotations.

use crate::{actions, annotations, observations, outbox, status, widgets};
use actix_web::HttpResponse;
use hub_core::api::manifest as m;
use hub_core::http::openapi::ProblemResponses;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The domain hub API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Hubplane domain hub", description = "Widgets from polled capabilities, observations, annotations, actions and the outbox to the state hub, of one domain hub instance. Errors are RFC 9457 problem documents."),
    modifiers(&BearerAuth, &ProblemResponses),
    paths(
        status::status, widgets::list, observations::list, annotations::list, annotations::create,
        actions::list, actions::run, actions::runs, actions::get_run, outbox::list,
    ),
    components(schemas(
        status::StatusReport, status::CapabilityView, status::BreakerView,
        crate::state_hub::registrar::LinkStatus, crate::polling::store::PollState,
        outbox::store::Backlog, outbox::OutboxRow, outbox::OutboxListing,
        widgets::WidgetList, widgets::WidgetView, widgets::Freshness, widgets::FreshnessState,
        observations::Observation, observations::ObservationList,
        annotations::Annotation, annotations::NewAnnotation, annotations::AnnotationList,
        actions::ActionInfo, actions::ActionList, actions::ActionRequest, actions::ActionRun, actions::RunList,
        m::ActionDecl, m::WidgetRender, hub_core::api::registry::HubHealth,
        hub_core::http::problem::Problem, hub_core::http::problem::FieldError,
    )),
    tags(
        (name = "status", description = "How the hub is doing"),
        (name = "widgets", description = "The manifest's widgets with their freshness"),
        (name = "observations", description = "What the pollers stored"),
        (name = "annotations", description = "Notes on widgets and items"),
        (name = "actions", description = "The manifest's actions and their runs"),
        (name = "outbox", description = "Events on their way to the state hub"),
    )
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert_eq!(
            hub_core::http::openapi::unresolved_refs(&doc),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_api_route_is_documented() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for r in crate::routes::api() {
            if r.path == "/api/v1/openapi.json" {
                continue;
            }
            let method = r.method.as_str().to_ascii_lowercase();
            assert!(
                doc["paths"][r.path][&method].is_object(),
                "{} {} is missing from the OpenAPI document",
                r.method,
                r.path
            );
        }
    }
}
