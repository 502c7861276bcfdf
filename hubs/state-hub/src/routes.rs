//! The route table: every route of the state hub and the permission it needs.

use crate::{
    capabilities::handlers as capabilities, decisions::handlers as decisions, events, openapi,
    plans::handlers as plans, registry::handlers as registry, tokens, ui,
};
use hub_core::auth::{Access, Permission::*};
use hub_core::http::routes::Route;
use hub_core::{page, route};

/// Every API route. Health and metrics are mounted by hub-core as public.
pub fn table() -> Vec<Route> {
    let mut table = hub_core::identity::routes();
    table.extend(pages());
    table.extend(api());
    table
}

/// The web UI.
pub fn pages() -> Vec<Route> {
    use ui::{admin, decisions, journal, plans};
    vec![
        page!(GET "/", Access::Permission(EventsRead), ui::dashboard),
        page!(GET "/decisions", Access::Permission(DecisionsRead), decisions::list),
        page!(POST "/decisions", Access::Permission(DecisionsWrite), decisions::propose),
        page!(GET "/decisions/{id}", Access::Permission(DecisionsRead), decisions::detail),
        page!(POST "/decisions/{id}/escalate", Access::Permission(DecisionsWrite), decisions::escalate),
        page!(POST "/decisions/{id}/resolve", Access::Permission(DecisionsWrite), decisions::resolve),
        page!(POST "/decisions/{id}/supersede", Access::Permission(DecisionsWrite), decisions::supersede),
        page!(POST "/decisions/{id}/tasks", Access::Permission(DecisionsWrite), decisions::link_task),
        page!(GET "/plans", Access::Permission(PlansRead), plans::workstreams),
        page!(POST "/workstreams", Access::Permission(PlansWrite), plans::create_workstream),
        page!(GET "/workstreams/{key}", Access::Permission(PlansRead), plans::workstream),
        page!(POST "/workstreams/{key}/workplans", Access::Permission(PlansWrite), plans::create_workplan),
        page!(GET "/workplans/{id}", Access::Permission(PlansRead), plans::board),
        page!(POST "/workplans/{id}/tasks", Access::Permission(PlansWrite), plans::create_task),
        page!(POST "/workplans/{id}/finish", Access::Permission(PlansWrite), plans::finish),
        page!(POST "/workplans/{id}/accept", Access::Permission(PlansWrite), plans::accept),
        page!(POST "/workplans/{id}/reopen", Access::Permission(PlansWrite), plans::reopen),
        page!(POST "/tasks/{id}/status", Access::Permission(PlansWrite), plans::task_status),
        page!(GET "/journal", Access::Permission(EventsRead), journal::journal),
        page!(GET "/admin", Access::Permission(SessionsManage), admin::overview),
        page!(GET "/admin/tokens", Access::Permission(TokensManage), admin::tokens),
        page!(POST "/admin/tokens", Access::Permission(TokensManage), admin::create_token),
        page!(POST "/admin/tokens/{id}/revoke", Access::Permission(TokensManage), admin::revoke_token),
        page!(GET "/admin/sessions", Access::Permission(SessionsManage), admin::sessions),
        page!(POST "/admin/sessions/{id}/revoke", Access::Permission(SessionsManage), admin::revoke_session),
        page!(GET "/admin/users", Access::Permission(SessionsManage), admin::users),
        page!(GET "/registry", Access::Permission(RegistryRead), ui::registry::overview),
        page!(POST "/registry/kinds", Access::Permission(RegistryAdmin), ui::registry::add_kind),
        page!(GET "/registry/hubs/{name}", Access::Permission(RegistryRead), ui::registry::hub),
        page!(GET "/registry/manifests/{id}", Access::Permission(RegistryRead), ui::registry::manifest),
        page!(POST "/registry/manifests/{id}/activate", Access::Permission(RegistryAdmin), ui::registry::activate),
        page!(POST "/registry/manifests/{id}/retire", Access::Permission(RegistryAdmin), ui::registry::retire),
        page!(GET "/registry/types", Access::Permission(RegistryRead), ui::registry::types),
        page!(GET "/capabilities", Access::Permission(RegistryRead), ui::capabilities::list),
        page!(POST "/capabilities", Access::Permission(RegistryWrite), ui::capabilities::request),
        page!(GET "/capabilities/{name}", Access::Permission(RegistryRead), ui::capabilities::detail),
        page!(POST "/capabilities/{name}/transition", Access::Permission(RegistryWrite), ui::capabilities::transition),
        page!(POST "/capabilities/{name}/credential", Access::Permission(RegistryAdmin), ui::capabilities::credential),
    ]
}

/// The REST API.
pub fn api() -> Vec<Route> {
    vec![
        route!(GET "/api/v1/openapi.json", Access::Authenticated, openapi::document),
        route!(GET "/api/v1/whoami", Access::Authenticated, tokens::whoami),
        route!(POST "/api/v1/events", Access::Permission(EventsWrite), events::post_event),
        route!(POST "/api/v1/events/batch", Access::Permission(EventsWrite), events::post_batch),
        route!(GET "/api/v1/events", Access::Permission(EventsRead), events::list),
        route!(GET "/api/v1/events/stream", Access::Permission(EventsRead), events::stream),
        route!(GET "/api/v1/events/{key}", Access::Permission(EventsRead), events::get),
        route!(GET "/api/v1/audit/head", Access::Permission(AuditRead), events::head),
        route!(POST "/api/v1/decisions", Access::Permission(DecisionsWrite), decisions::create),
        route!(GET "/api/v1/decisions", Access::Permission(DecisionsRead), decisions::list),
        route!(GET "/api/v1/decisions/{id}", Access::Permission(DecisionsRead), decisions::get),
        route!(POST "/api/v1/decisions/{id}/escalate", Access::Permission(DecisionsWrite), decisions::escalate),
        route!(POST "/api/v1/decisions/{id}/resolve", Access::Permission(DecisionsWrite), decisions::resolve),
        route!(POST "/api/v1/decisions/{id}/supersede", Access::Permission(DecisionsWrite), decisions::supersede),
        route!(POST "/api/v1/decisions/{id}/tasks", Access::Permission(DecisionsWrite), decisions::link_task),
        route!(POST "/api/v1/workstreams", Access::Permission(PlansWrite), plans::create_workstream),
        route!(GET "/api/v1/workstreams", Access::Permission(PlansRead), plans::list_workstreams),
        route!(GET "/api/v1/workstreams/{key}", Access::Permission(PlansRead), plans::get_workstream),
        route!(POST "/api/v1/workstreams/{key}/workplans", Access::Permission(PlansWrite), plans::create_workplan),
        route!(GET "/api/v1/workplans", Access::Permission(PlansRead), plans::list_workplans),
        route!(GET "/api/v1/workplans/{id}", Access::Permission(PlansRead), plans::get_workplan),
        route!(POST "/api/v1/workplans/{id}/finish", Access::Permission(PlansWrite), plans::finish),
        route!(POST "/api/v1/workplans/{id}/accept", Access::Permission(PlansWrite), plans::accept),
        route!(POST "/api/v1/workplans/{id}/reopen", Access::Permission(PlansWrite), plans::reopen),
        route!(POST "/api/v1/workplans/{id}/tasks", Access::Permission(PlansWrite), plans::create_task),
        route!(GET "/api/v1/tasks", Access::Permission(PlansRead), plans::list_tasks),
        route!(GET "/api/v1/tasks/{id}", Access::Permission(PlansRead), plans::get_task),
        route!(PATCH "/api/v1/tasks/{id}", Access::Permission(PlansWrite), plans::patch_task),
        route!(POST "/api/v1/tokens", Access::Permission(TokensManage), tokens::create),
        route!(GET "/api/v1/tokens", Access::Permission(TokensManage), tokens::list),
        route!(DELETE "/api/v1/tokens/{id}", Access::Permission(TokensManage), tokens::revoke),
        route!(GET "/api/v1/hub-kinds", Access::Permission(RegistryRead), registry::list_kinds),
        route!(POST "/api/v1/hub-kinds", Access::Permission(RegistryAdmin), registry::create_kind),
        route!(GET "/api/v1/hubs", Access::Permission(RegistryRead), registry::list_hubs),
        route!(GET "/api/v1/hubs/{name}", Access::Permission(RegistryRead), registry::get_hub),
        route!(PUT "/api/v1/hubs/{name}", Access::Permission(RegistryWrite), registry::put_hub),
        route!(POST "/api/v1/hubs/{name}/heartbeat", Access::Permission(RegistryWrite), registry::heartbeat),
        route!(POST "/api/v1/hubs/{name}/manifests", Access::Permission(RegistryWrite), registry::submit_manifest),
        route!(GET "/api/v1/hubs/{name}/manifests", Access::Permission(RegistryRead), registry::list_manifests),
        route!(GET "/api/v1/hubs/{name}/manifest/active", Access::Permission(RegistryRead), registry::active_manifest),
        route!(GET "/api/v1/manifests/{id}", Access::Permission(RegistryRead), registry::get_manifest),
        route!(PUT "/api/v1/manifests/{id}", Access::Permission(RegistryWrite), registry::put_manifest),
        route!(POST "/api/v1/manifests/{id}/activate", Access::Permission(RegistryAdmin), registry::activate),
        route!(POST "/api/v1/manifests/{id}/retire", Access::Permission(RegistryAdmin), registry::retire),
        route!(GET "/api/v1/types", Access::Permission(RegistryRead), registry::list_types),
        route!(POST "/api/v1/capabilities", Access::Permission(RegistryWrite), capabilities::create),
        route!(GET "/api/v1/capabilities", Access::Permission(RegistryRead), capabilities::list),
        // Before `{name}`, which would take `callable` as a name (the rules reserve it).
        route!(GET "/api/v1/capabilities/callable", Access::Permission(RegistryRead), capabilities::callable),
        route!(GET "/api/v1/capabilities/{name}", Access::Permission(RegistryRead), capabilities::get),
        route!(GET "/api/v1/capabilities/{name}/contract", Access::Permission(RegistryRead), capabilities::contract),
        route!(POST "/api/v1/capabilities/{name}/transition", Access::Permission(RegistryWrite), capabilities::transition),
        route!(PUT "/api/v1/capabilities/{name}/credential", Access::Permission(RegistryAdmin), capabilities::set_credential),
        route!(GET "/api/v1/capabilities/{name}/probes", Access::Permission(RegistryRead), capabilities::probes),
        route!(GET "/api/v1/secrets/recipient", Access::Permission(RegistryAdmin), capabilities::recipient),
        route!(POST "/api/v1/secrets/rotate", Access::Permission(RegistryAdmin), capabilities::rotate),
    ]
}
