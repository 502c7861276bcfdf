//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use crate::{capabilities, decisions, events, plans, registry, tokens};
use actix_web::HttpResponse;
use hub_core::api::capabilities as c;
use hub_core::api::decisions as d;
use hub_core::api::events as e;
use hub_core::api::manifest as m;
use hub_core::api::plans as p;
use hub_core::api::registry as r;
use hub_core::api::tokens as t;
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

/// The state hub API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Hubplane state hub", description = "Decisions, workstreams/workplans/tasks and the hash-chained journal of progress events. Errors are RFC 9457 problem documents."),
    modifiers(&BearerAuth),
    paths(
        events::post_event, events::post_batch, events::list, events::get, events::stream, events::head,
        decisions::handlers::create, decisions::handlers::list, decisions::handlers::get,
        decisions::handlers::escalate, decisions::handlers::resolve, decisions::handlers::supersede,
        decisions::handlers::link_task,
        plans::handlers::create_workstream, plans::handlers::list_workstreams, plans::handlers::get_workstream,
        plans::handlers::create_workplan, plans::handlers::list_workplans, plans::handlers::get_workplan,
        plans::handlers::finish, plans::handlers::accept, plans::handlers::reopen,
        plans::handlers::create_task, plans::handlers::list_tasks, plans::handlers::get_task, plans::handlers::patch_task,
        tokens::create, tokens::list, tokens::revoke, tokens::whoami,
        registry::handlers::list_kinds, registry::handlers::create_kind, registry::handlers::list_hubs,
        registry::handlers::get_hub, registry::handlers::put_hub, registry::handlers::heartbeat,
        registry::handlers::submit_manifest, registry::handlers::list_manifests,
        registry::handlers::active_manifest, registry::handlers::get_manifest,
        registry::handlers::put_manifest, registry::handlers::activate, registry::handlers::retire,
        registry::handlers::list_types,
        capabilities::handlers::create, capabilities::handlers::list, capabilities::handlers::callable,
        capabilities::handlers::get, capabilities::handlers::contract, capabilities::handlers::transition,
        capabilities::handlers::set_credential, capabilities::handlers::probes,
        capabilities::handlers::recipient, capabilities::handlers::rotate,
    ),
    components(schemas(
        e::Event, e::NewEvent, e::NewEventBatch, e::EventBatchResult, e::ChainHead, e::EventType,
        events::StreamEvent, crate::journal::store::Order,
        d::Decision, d::NewDecision, d::OutcomeInput, d::Outcome, d::EscalateRequest, d::SupersedeRequest,
        d::LinkTaskRequest, d::DecisionStatus, d::DecisionType,
        p::Workstream, p::NewWorkstream, p::Workplan, p::NewWorkplan, p::WorkplanStatus, p::AcceptRequest,
        p::ReopenRequest, p::Task, p::NewTask, p::TaskPatch, p::TaskStatus,
        t::NewTokenRequest, t::TokenInfo, t::CreatedToken, t::WhoAmI,
        r::HubKind, r::NewHubKind, r::HubHealth, r::Hub, r::HubRegistration, r::Heartbeat,
        r::ManifestStatus, r::ManifestRecord, r::RegisteredType,
        m::Manifest, m::EventTypeDecl, m::NamedDecl, m::WidgetRender, m::WidgetTypeDecl,
        m::CapabilityUse, m::ActionDecl,
        c::Capability, c::NewCapability, c::CapabilityStatus, c::CapabilityTransition, c::CredentialInput,
        c::Probe, c::ProbeHealth, c::CallableCapability, c::CallableList, c::SecretsRecipient, c::RotationReport,
        hub_core::http::problem::Problem, hub_core::http::problem::FieldError,
    )),
    tags(
        (name = "events", description = "The append-only journal"),
        (name = "decisions", description = "Decisions and their approvals"),
        (name = "plans", description = "Workstreams, workplans, tasks"),
        (name = "tokens", description = "API tokens"),
        (name = "audit", description = "Hash chain"),
        (name = "registry", description = "Hub kinds, hubs, heartbeats, manifests and the type registries"),
        (name = "capabilities", description = "The capability registry: requests, lifecycle, credentials, probes"),
        (name = "secrets", description = "The age identity that seals stored credentials"),
    )
)]
pub struct ApiDoc;

/// The whole document: the state hub's operations, hub-core's identity API, and the problem
/// responses hub-core's HTTP edge gives every one of them.
pub fn full() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(hub_core::identity::admin::IdentityApiDoc::openapi());
    ProblemResponses.modify(&mut doc);
    doc
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(full())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_reference_resolves() {
        let doc = serde_json::to_value(super::full()).unwrap();
        assert_eq!(
            hub_core::http::openapi::unresolved_refs(&doc),
            Vec::<String>::new()
        );
    }
}
