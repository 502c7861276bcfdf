//! The state hub's web UI: server-rendered pages over the same services and stores the API
//! uses. A change made through a page runs the API's service function and writes the same
//! events; once applied it answers 303 to the page that shows the result, and a change that was
//! not applied shows the page again with the person's input and the reason.

pub mod admin;
pub mod capabilities;
mod dashboard;
pub mod decisions;
mod form;
pub mod journal;
pub mod plans;
pub mod registry;

pub use dashboard::dashboard;

use hub_core::auth::{Permission, Principal};
use hub_core::web::{NavItem, Pages};

/// The state hub's templates, embedded so a deployed binary needs no files beside it.
const TEMPLATES: &[(&str, &str)] = &[
    ("forms.html", include_str!("../../templates/forms.html")),
    (
        "dashboard.html",
        include_str!("../../templates/dashboard.html"),
    ),
    (
        "decisions.html",
        include_str!("../../templates/decisions.html"),
    ),
    (
        "decision.html",
        include_str!("../../templates/decision.html"),
    ),
    ("plans.html", include_str!("../../templates/plans.html")),
    (
        "workstream.html",
        include_str!("../../templates/workstream.html"),
    ),
    (
        "workplan.html",
        include_str!("../../templates/workplan.html"),
    ),
    ("journal.html", include_str!("../../templates/journal.html")),
    ("admin.html", include_str!("../../templates/admin.html")),
    (
        "admin_tokens.html",
        include_str!("../../templates/admin_tokens.html"),
    ),
    (
        "admin_token_created.html",
        include_str!("../../templates/admin_token_created.html"),
    ),
    (
        "admin_sessions.html",
        include_str!("../../templates/admin_sessions.html"),
    ),
    (
        "admin_users.html",
        include_str!("../../templates/admin_users.html"),
    ),
    (
        "registry_macros.html",
        include_str!("../../templates/registry_macros.html"),
    ),
    (
        "registry.html",
        include_str!("../../templates/registry.html"),
    ),
    (
        "registry_hub.html",
        include_str!("../../templates/registry_hub.html"),
    ),
    (
        "registry_manifest.html",
        include_str!("../../templates/registry_manifest.html"),
    ),
    (
        "registry_types.html",
        include_str!("../../templates/registry_types.html"),
    ),
    (
        "capabilities_macros.html",
        include_str!("../../templates/capabilities_macros.html"),
    ),
    (
        "capabilities.html",
        include_str!("../../templates/capabilities.html"),
    ),
    (
        "capability.html",
        include_str!("../../templates/capability.html"),
    ),
];

/// The page environment: hub-core's layout plus the state hub's templates.
pub fn pages() -> anyhow::Result<Pages> {
    let nav = vec![
        NavItem {
            label: "Dashboard",
            href: "/",
        },
        NavItem {
            label: "Decisions",
            href: "/decisions",
        },
        NavItem {
            label: "Plans",
            href: "/plans",
        },
        NavItem {
            label: "Journal",
            href: "/journal",
        },
        NavItem {
            label: "Registry",
            href: "/registry",
        },
        NavItem {
            label: "Capabilities",
            href: "/capabilities",
        },
        NavItem {
            label: "Admin",
            href: "/admin",
        },
    ];
    Pages::new("State hub", nav, TEMPLATES)
        .map_err(|e| anyhow::anyhow!("loading the state hub's templates: {e:?}"))
}

/// The context every state hub page starts from: hub-core's, plus what the viewer may change,
/// so pages offer only the forms the server would accept.
fn context(pages: &Pages, principal: &Principal) -> tera::Context {
    let mut ctx = pages.context(Some(principal));
    ctx.insert("can_decide", &principal.has(Permission::DecisionsWrite));
    ctx.insert("can_plan", &principal.has(Permission::PlansWrite));
    ctx
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        let pages = super::pages();
        assert!(pages.is_ok(), "{:?}", pages.err());
    }
}
