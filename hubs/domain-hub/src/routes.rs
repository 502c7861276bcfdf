//! The route table: every route of the domain hub and the permission it needs. Reading needs
//! `events.read` (viewers); annotating and running actions need `events.write` (members), since
//! both are journaled; an action also needs its manifest scope, checked by the action itself.

use crate::{actions, annotations, observations, openapi, status, ui, widgets};
use hub_core::auth::{Access, Permission::*};
use hub_core::http::routes::Route;
use hub_core::{page, route};

/// Every route. Health and metrics are mounted by hub-core as public.
pub fn table() -> Vec<Route> {
    let mut table = hub_core::identity::routes();
    table.extend(pages());
    table.extend(api());
    table
}

/// The web UI.
pub fn pages() -> Vec<Route> {
    vec![
        page!(GET "/", Access::Permission(EventsRead), ui::dashboard::dashboard),
        page!(GET "/annotations", Access::Permission(EventsRead), ui::annotations::list),
        page!(POST "/annotations", Access::Permission(EventsWrite), ui::annotations::add),
        page!(GET "/actions", Access::Permission(EventsRead), ui::actions::list),
        page!(POST "/actions/{name}", Access::Permission(EventsWrite), ui::actions::run),
    ]
}

/// The REST API.
pub fn api() -> Vec<Route> {
    vec![
        route!(GET "/api/v1/openapi.json", Access::Authenticated, openapi::document),
        route!(GET "/api/v1/status", Access::Permission(EventsRead), status::status),
        route!(GET "/api/v1/widgets", Access::Permission(EventsRead), widgets::list),
        route!(GET "/api/v1/observations", Access::Permission(EventsRead), observations::list),
        route!(GET "/api/v1/annotations", Access::Permission(EventsRead), annotations::list),
        route!(POST "/api/v1/annotations", Access::Permission(EventsWrite), annotations::create),
        route!(GET "/api/v1/actions", Access::Permission(EventsRead), actions::list),
        route!(POST "/api/v1/actions/{name}", Access::Permission(EventsWrite), actions::run),
        route!(GET "/api/v1/action-runs", Access::Permission(EventsRead), actions::runs),
        route!(GET "/api/v1/action-runs/{id}", Access::Permission(EventsRead), actions::get_run),
        route!(GET "/api/v1/outbox", Access::Permission(EventsRead), crate::outbox::list),
    ]
}

#[cfg(test)]
mod tests {
    use hub_core::auth::Access;

    #[test]
    fn every_route_names_its_access_and_only_identity_routes_are_public() {
        for r in super::table() {
            if r.access == Access::Public {
                assert!(
                    r.path.starts_with("/auth/") || r.path.starts_with("/static/"),
                    "{} {} is public",
                    r.method,
                    r.path
                );
                if r.method != actix_web::http::Method::GET {
                    assert!(
                        hub_core::identity::PUBLIC_MUTATIONS.contains(&r.path),
                        "{} {} changes state without authentication",
                        r.method,
                        r.path
                    );
                }
            }
        }
    }
}
